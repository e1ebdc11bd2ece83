/**
 * An expected failure at run time (a server unreachable, a database missing, a run in the wrong
 * state): the program prints the message, which says what happened and what to do, on one line
 * without a stack, and exits with code 1.
 */
export class OperationalError extends Error {
  override readonly name = 'OperationalError';
}
