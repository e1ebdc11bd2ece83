import { MAX_PARAM_CHARS, MAX_PATH_CHARS, MAX_QUERY_PARAMS, MAX_QUERY_VALUE_CHARS } from '../limits/index.ts';
import { HttpError } from './http-error.ts';

function tooLong(field: string, limit: number): HttpError {
  const rule = `at most ${limit} characters`;
  return new HttpError(400, `${field} is too long: ${rule}`, [{ field, rule }]);
}

/** A path parameter, refused (400 naming it and the limit) past MAX_PARAM_CHARS. */
export function boundedParam(field: string, value: string | undefined): string {
  const v = value ?? '';
  if (v.length > MAX_PARAM_CHARS) throw tooLong(field, MAX_PARAM_CHARS);
  return v;
}

/**
 * Checks a request's decoded path and query string against the limits before any route reads
 * them: 400 naming the field (`path`, or the query parameter) and the limit.
 */
export function checkRequestBounds(path: string, queries: Record<string, string[]>): void {
  if (path.length > MAX_PATH_CHARS) throw tooLong('path', MAX_PATH_CHARS);
  const entries = Object.entries(queries);
  if (entries.length > MAX_QUERY_PARAMS) {
    const rule = `at most ${MAX_QUERY_PARAMS} parameters`;
    throw new HttpError(400, `the query string has too many parameters: ${rule}`, [{ field: 'query', rule }]);
  }
  for (const [key, values] of entries) {
    // A key is named in the answer only when it is short enough to quote.
    if (key.length > MAX_PARAM_CHARS) throw tooLong('(query parameter name)', MAX_PARAM_CHARS);
    if (values.length > MAX_QUERY_PARAMS) {
      const rule = `at most ${MAX_QUERY_PARAMS} values`;
      throw new HttpError(400, `${key} is repeated too often: ${rule}`, [{ field: key, rule }]);
    }
    if (values.some((v) => v.length > MAX_QUERY_VALUE_CHARS)) throw tooLong(key, MAX_QUERY_VALUE_CHARS);
  }
}
