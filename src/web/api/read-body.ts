import type { Context } from 'hono';
import { MAX_JSON_DEPTH } from '../limits/index.ts';
import { HttpError } from './http-error.ts';

const OPEN_BRACKET = 0x5b;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACKET = 0x5d;
const CLOSE_BRACE = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The deepest nesting of arrays and objects in a JSON text, found in one pass without parsing it. */
export function jsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (inString) {
      if (code === BACKSLASH) i += 1;
      else if (code === QUOTE) inString = false;
    } else if (code === QUOTE) {
      inString = true;
    } else if (code === OPEN_BRACKET || code === OPEN_BRACE) {
      depth += 1;
      if (depth > deepest) deepest = depth;
    } else if (code === CLOSE_BRACKET || code === CLOSE_BRACE) {
      depth -= 1;
    }
  }
  return deepest;
}

/**
 * The path of the first key `__proto__` in a parsed value. JSON.parse makes it an own property, but
 * spreading or validating the object drops it without a word: it is refused instead.
 */
function protoKeyPath(value: unknown, path: string[]): string[] | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, child] of Object.entries(value)) {
    const here = [...path, key];
    if (key === '__proto__') return here;
    const found = protoKeyPath(child, here);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * A JSON text as a value; an empty text is `{}`. Refused with a 400 that does not echo the value:
 * text that is not JSON, nesting deeper than MAX_JSON_DEPTH (checked before parsing), a key named
 * `__proto__`.
 */
export function parseJsonText(text: string): unknown {
  if (text.trim() === '') return {};
  if (jsonDepth(text) > MAX_JSON_DEPTH) {
    const rule = `at most ${MAX_JSON_DEPTH} levels of nested arrays and objects`;
    throw new HttpError(400, `the body is nested too deeply: ${rule}`, [{ field: '(body)', rule }]);
  }
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, 'the body must be JSON', [{ field: '(body)', rule: 'must be valid JSON' }]);
  }
  const proto = protoKeyPath(value, []);
  if (proto !== undefined) {
    const field = proto.join('.');
    const rule = 'a key named __proto__ is not allowed';
    throw new HttpError(400, `${field}: ${rule}`, [{ field, rule }]);
  }
  return value;
}

/** The JSON body of a request (see parseJsonText); the size is capped before (MAX_BODY_BYTES). */
export async function readJsonBody(c: Context): Promise<unknown> {
  return parseJsonText(await c.req.text());
}
