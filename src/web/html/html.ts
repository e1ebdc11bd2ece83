import { html as honoHtml } from 'hono/html';

/**
 * Server-side HTML by tagged template, on Hono's `html` helper (hono/html, the dashboard's one
 * escaper): every interpolated value is escaped unless it is already `SafeHtml` (another template's
 * output, or `raw()` of markup we wrote). A task's args, result or error can hold `<script>`: it
 * reaches the page as text. Arrays are flattened; null, undefined and booleans render nothing.
 */
export class SafeHtml {
  /** What Hono's helper looks for: a value already escaped is inserted as it is. */
  readonly isEscaped = true;
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

export type HtmlChild = SafeHtml | string | number | boolean | null | undefined | readonly HtmlChild[];

export function html(strings: TemplateStringsArray, ...values: HtmlChild[]): SafeHtml {
  const out = honoHtml(strings, ...values);
  // Only a Promise among the values makes Hono's helper asynchronous; HtmlChild has none.
  if (out instanceof Promise) throw new TypeError('html: a value was a Promise');
  return new SafeHtml(out.toString());
}

/** Text escaped for HTML (`&<>"'`), by the same helper. */
export function escapeHtml(text: string): string {
  return html`${text}`.value;
}

/** Markup we wrote ourselves (an SVG chart, a script tag): inserted as is. Never for data. */
export function raw(markup: string): SafeHtml {
  return new SafeHtml(markup);
}

/** JSON for a <script type="application/json"> block: `<` is escaped so `</script>` cannot end it. */
export function jsonForScript(value: unknown): SafeHtml {
  return new SafeHtml(JSON.stringify(value ?? null).replace(/</g, '\\u003c'));
}
