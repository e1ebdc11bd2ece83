import type { Context } from 'hono';
import { HttpError } from './http-error.ts';

/** The JSON body of a request; an empty body is `{}`; anything not JSON is a 400. */
export async function readJsonBody(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, 'the body must be JSON', [{ field: '(body)', rule: 'must be valid JSON' }]);
  }
}
