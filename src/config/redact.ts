/**
 * Finds the passwords in a text in one pass: each character is looked at a bounded number of times
 * (a regular expression doing the same is quadratic on a long run of letters: every start position
 * scans the run to its end; 20,000 characters took 2.2 s, issue 15). Two kinds:
 * - a URL's: `scheme://user:PASSWORD@host`. The password runs to the last `@` of the authority (a
 *   malformed `postgres://u:sec@ret@[bad/db` hides `sec@ret` whole) and may hold `/`; the
 *   authority ends at whitespace, or at the first `/` after an `@`. What is hidden is exactly what
 *   `/([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):([^@\s]*@(?:[^@\s/]*@)*)/gi` finds (redact.test.ts).
 * - a parameter's: `…password=VALUE` (`?sentinel_password=`, a libpq `password=` keyword, an
 *   environment line), to the next `&` or whitespace, or inside its quotes.
 */

const WHITESPACE = /\s/;
const PARAMETER = /password=/gi;

function isLetter(code: number): boolean {
  return (code >= 97 && code <= 122) || (code >= 65 && code <= 90);
}

/** `[a-z0-9+.-]`, case-insensitive. */
function isSchemeChar(code: number): boolean {
  return isLetter(code) || (code >= 48 && code <= 57) || code === 43 || code === 46 || code === 45;
}

/** Counts the characters looked at; only tests read it, to show the work is linear. */
export interface ScanMeter {
  steps: number;
}

type Span = [start: number, end: number];

function urlPasswords(text: string, meter: ScanMeter, spans: Span[]): void {
  // Where the previous attempt's scheme search must stop: a scheme never reaches back into a
  // "://" already tried (it has no ':' or '/'), nor into a hidden password (it ends with '@').
  let floor = 0;
  let from = 0;
  // No '@' from a failed password scan's start to here: a later scan starting before it fails too.
  let noAtUntil = 0;
  for (;;) {
    const k = text.indexOf('://', from);
    meter.steps += (k < 0 ? text.length : k + 3) - from;
    if (k < 0) return;
    from = k + 3;
    // The scheme: the leftmost letter of the run of scheme characters that ends at "://".
    let p = k;
    while (p > floor && isSchemeChar(text.charCodeAt(p - 1))) {
      p -= 1;
      meter.steps += 1;
    }
    while (p < k && !isLetter(text.charCodeAt(p))) {
      p += 1;
      meter.steps += 1;
    }
    floor = k + 3;
    if (p === k) continue;
    // The user: anything but ':', '/', '@' and whitespace; then ':'.
    let i = k + 3;
    for (; i < text.length; i += 1) {
      const ch = text[i] as string;
      meter.steps += 1;
      if (ch === ':' || ch === '/' || ch === '@' || WHITESPACE.test(ch)) break;
    }
    if (text[i] !== ':' || i + 1 < noAtUntil) continue;
    // The password: up to the last '@' before whitespace or a '/' that follows an '@'.
    let at = -1;
    let j = i + 1;
    for (; j < text.length; j += 1) {
      const ch = text[j] as string;
      meter.steps += 1;
      if (WHITESPACE.test(ch) || (ch === '/' && at >= 0)) break;
      if (ch === '@') at = j;
    }
    if (at < 0) {
      noAtUntil = j;
      continue;
    }
    if (at > i + 1) spans.push([i + 1, at]);
    from = at + 1;
    floor = at + 1;
  }
}

function parameterPasswords(text: string, meter: ScanMeter, spans: Span[]): void {
  const key = new RegExp(PARAMETER);
  while (key.exec(text) !== null) {
    const start = key.lastIndex;
    const quote = text[start];
    let end = start;
    if (quote === '"' || quote === "'") {
      const close = text.indexOf(quote, start + 1);
      end = close < 0 ? text.length : close;
      if (end > start + 1) spans.push([start + 1, end]);
    } else {
      while (end < text.length && text[end] !== '&' && !WHITESPACE.test(text[end] as string)) end += 1;
      if (end > start) spans.push([start, end]);
    }
    meter.steps += end - start;
    key.lastIndex = end;
  }
}

/** Where the passwords of `text` are, `[start, end)`, by start. */
export function passwordSpans(text: string, meter: ScanMeter = { steps: 0 }): Span[] {
  const spans: Span[] = [];
  urlPasswords(text, meter, spans);
  parameterPasswords(text, meter, spans);
  return spans.sort((a, b) => a[0] - b[0]);
}

/** `text` with each of its passwords replaced by `***`, so it can be shown or logged. */
export function redact(text: string, meter?: ScanMeter): string {
  let out = '';
  let copied = 0;
  for (const [start, end] of passwordSpans(text, meter)) {
    if (start >= copied) out += `${text.slice(copied, start)}***`;
    copied = Math.max(copied, end);
  }
  return out + text.slice(copied);
}
