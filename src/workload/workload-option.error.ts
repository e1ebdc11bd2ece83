/** A workload option (seed or traffic) is out of range. Thrown before anything is written. */
export class WorkloadOptionError extends Error {
  override readonly name = 'WorkloadOptionError';
  constructor(
    /** The option's name in the options object, e.g. `executionsPerDay`. */
    readonly field: string,
    /** What the value must be, e.g. `an integer from 1 to 3650`. */
    readonly rule: string,
    readonly value: unknown,
  ) {
    super(`${field} must be ${rule}, got ${describe(value)}`);
  }
}

function describe(value: unknown): string {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'an invalid date' : value.toISOString();
  return JSON.stringify(value) ?? String(value);
}
