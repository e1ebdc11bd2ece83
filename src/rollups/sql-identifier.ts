/**
 * Quoting for names that come from definitions (never from user input at run time) and for string
 * literals in DDL that cannot take parameters (view definitions): pg's own functions.
 */
import { escapeIdentifier, escapeLiteral } from 'pg';

export { escapeIdentifier as ident, escapeLiteral as literal };

/** Quotes `schema.table`. */
export function qualified(name: string): string {
  const parts = name.split('.');
  if (parts.length !== 2) throw new Error(`expected schema.table, got ${JSON.stringify(name)}`);
  return parts.map((part) => escapeIdentifier(part)).join('.');
}
