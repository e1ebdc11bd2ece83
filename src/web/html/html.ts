/**
 * Server-side HTML by tagged template: every interpolated value is escaped unless it is already
 * `SafeHtml` (another template's output, or `raw()` of markup we wrote). A task's args, result or
 * error can hold `<script>`: it reaches the page as text.
 */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

export type HtmlChild = SafeHtml | string | number | boolean | null | undefined | readonly HtmlChild[];

const entities: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => entities[c] ?? c);
}

function render(child: HtmlChild): string {
  if (child === null || child === undefined || child === false || child === true) return '';
  if (child instanceof SafeHtml) return child.value;
  if (Array.isArray(child)) return child.map((c: HtmlChild) => render(c)).join('');
  return escapeHtml(String(child));
}

export function html(strings: TemplateStringsArray, ...values: HtmlChild[]): SafeHtml {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] ?? '');
  return new SafeHtml(out);
}

/** Markup we wrote ourselves (an SVG chart, a script tag): inserted as is. Never for data. */
export function raw(markup: string): SafeHtml {
  return new SafeHtml(markup);
}

/** JSON for a <script type="application/json"> block: `<` is escaped so `</script>` cannot end it. */
export function jsonForScript(value: unknown): SafeHtml {
  return new SafeHtml(JSON.stringify(value ?? null).replace(/</g, '\\u003c'));
}
