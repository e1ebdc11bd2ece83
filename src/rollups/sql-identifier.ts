/** Quotes an identifier that comes from a definition (never from user input at run time). */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Quotes `schema.table`. */
export function qualified(name: string): string {
  const parts = name.split('.');
  if (parts.length !== 2) throw new Error(`expected schema.table, got ${JSON.stringify(name)}`);
  return parts.map(ident).join('.');
}

/** A string literal, for DDL that cannot take parameters (view definitions). */
export function literal(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
