/** A setting has a value aggjobs cannot use. The program stops at start with exit code 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly variable: string,
    readonly rule: string,
    readonly value: string,
  ) {
    super(`${variable} must be ${rule}, got ${JSON.stringify(value)}`);
  }
}
