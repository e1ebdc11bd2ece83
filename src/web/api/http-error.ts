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

export function problemsOf(error: z.ZodError): FieldProblem[] {
  return error.issues.map((issue) => ({
    field: issue.path.length === 0 ? '(body)' : issue.path.map(String).join('.'),
    rule: issue.message,
  }));
}

/** Validates a request part; a bad one is a 400 naming each field and its rule. */
export function parseInput<T>(schema: z.ZodType<T>, value: unknown, part: 'query' | 'body' | 'path'): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = problemsOf(result.error);
  throw new HttpError(
    400,
    `invalid ${part}: ${problems.map((p) => `${p.field}: ${p.rule}`).join('; ')}`,
    problems,
  );
}
