import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { z } from 'zod';

export interface FieldProblem {
  field: string;
  rule: string;
}

/** An answer other than 2xx that a route decides on: 400 (with the fields), 404, 409. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: ContentfulStatusCode,
    message: string,
    readonly problems: readonly FieldProblem[] = [],
  ) {
    super(message);
  }
}

export function notFound(what: string): HttpError {
  return new HttpError(404, `${what} not found`);
}

/** Each issue's field: its path, or `root` for the value itself (a body, or a named path parameter). */
export function problemsOf(error: z.ZodError, root = '(body)'): FieldProblem[] {
  return error.issues.map((issue) => ({
    field: issue.path.length === 0 ? root : issue.path.map(String).join('.'),
    rule: issue.message,
  }));
}

/**
 * Validates a request part; a bad one is a 400 naming each field and its rule. `field` names a
 * value that is not an object (a path parameter); a body is `(body)`.
 */
export function parseInput<T>(
  schema: z.ZodType<T>,
  value: unknown,
  part: 'query' | 'body' | 'path',
  field = '(body)',
): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = problemsOf(result.error, field);
  throw new HttpError(
    400,
    `invalid ${part}: ${problems.map((p) => `${p.field}: ${p.rule}`).join('; ')}`,
    problems,
  );
}
