import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { redact, type ScanMeter } from './redact.ts';

/**
 * The oracles: regular expressions that find what the scanner finds, quadratic or worse on long
 * inputs (20,000 letters took 2.2 s), fine on short ones. A URL's password runs to the last '@'
 * before whitespace or a '/' after an '@'; an empty one is left as is.
 */
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):([^@\s]*@(?:[^@\s/]*@)*)/gi;
const urlOracle = (text: string): string =>
  text.replace(URL_PASSWORD, (all, head: string, password: string) =>
    password === '@' ? all : `${head}:***@`,
  );
const PARAMETER = /(password=)(?:"([^"]*)|'([^']*)|([^&\s]*))/gi;
const parameterOracle = (text: string): string =>
  text.replace(PARAMETER, (all, key: string, double?: string, single?: string, plain?: string) => {
    if (double !== undefined) return double === '' ? all : `${key}"***`;
    if (single !== undefined) return single === '' ? all : `${key}'***`;
    return plain === '' ? all : `${key}***`;
  });

function steps(text: string): number {
  const meter: ScanMeter = { steps: 0 };
  redact(text, meter);
  return meter.steps;
}

describe('redact', () => {
  it('hides every part of a URL password, malformed ones too, and password parameters', () => {
    expect(redact('redis://:s3cret@h:6379/0')).toBe('redis://:***@h:6379/0');
    const malformed = redact('could not connect to postgres://user:sec@retPW@[bad/db: refused');
    expect(malformed).toBe('could not connect to postgres://user:***@[bad/db: refused');
    for (const part of ['sec', 'retPW']) expect(malformed).not.toContain(part);
    expect(redact('redis+sentinel://u:p@ss@s1:26379,s2:26379/m?sentinel_password=sp%40ss&x=1')).toBe(
      'redis+sentinel://u:***@s1:26379,s2:26379/m?sentinel_password=***&x=1',
    );
    expect(redact('postgres://u:pa/ss@h/db?e=a@b')).toBe('postgres://u:***@h/db?e=a@b');
    expect(redact(`host=db PASSWORD='a b' user=x DB_PASSWORD=hunter2`)).toBe(
      `host=db PASSWORD='***' user=x DB_PASSWORD=***`,
    );
  });

  it('finds exactly what the regular expressions find', () => {
    for (const text of [
      'postgres://u:pw@h/db and amqp://x:y@z',
      'a://b://c:d@e',
      '1a://u:p@h',
      '+://u:p@h',
      'x://u:@h',
      'x://u:@p@h',
      'x://u:p q@h',
      'X-Y.z+1://user:p:w@host',
      'x://u:p@h://v:q@i',
      'redis://:pw@r:6379/0',
    ]) {
      expect(redact(text), text).toBe(urlOracle(text));
    }
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...'ab1+.-:/@ \nX'), { maxLength: 40 }), (chars) => {
        const text = chars.join('');
        expect(redact(text)).toBe(urlOracle(text));
      }),
      { numRuns: 3000 },
    );
    // No "://" in these: only parameters.
    const parameterPiece = fc.constantFrom('password=', 'Password=', 'x', '&', ' ', '"', "'", '=');
    fc.assert(
      fc.property(fc.array(parameterPiece, { maxLength: 20 }), (pieces) => {
        const text = pieces.join('');
        expect(redact(text)).toBe(parameterOracle(text));
      }),
      { numRuns: 3000 },
    );
  });

  // Work, not wall time: the characters looked at grow with the length, on the inputs that make
  // the regular expression quadratic (a long run of letters) and on others built to hurt a scanner.
  it.for([
    ['a run of letters', (n: number) => 'p'.repeat(n)],
    ['a URL with an endless password', (n: number) => `x://u:${'p'.repeat(n)}`],
    ['an endless user', (n: number) => `x://${'u'.repeat(n)}`],
    ['many "://"', (n: number) => 'a://'.repeat(n / 4)],
    ['many half URLs', (n: number) => 'ab://c:'.repeat(n / 7)],
    ['many half URLs, one "@" at the end', (n: number) => `${'ab://c:'.repeat(n / 7)}@`],
    ['many URLs', (n: number) => 'a://b:c@d'.repeat(n / 9)],
    ['many URLs with slashes', (n: number) => 'a://b:c/@/'.repeat(n / 10)],
    ['a scheme run before many "://"', (n: number) => `${'s'.repeat(n / 2)}${'://x'.repeat(n / 8)}`],
    ['many password parameters', (n: number) => 'password=x&'.repeat(n / 11)],
    ['open quotes', (n: number) => `password='${"password='".repeat(n / 10)}`],
  ] as const)('is linear on %s: 40,000 characters cost at most 40× 1,000 (×1.2)', ([, make]) => {
    const small = make(1000);
    const large = make(40_000);
    expect(steps(large)).toBeLessThanOrEqual(steps(small) * 40 * 1.2 + 100);
    expect(steps(large)).toBeLessThanOrEqual(4 * large.length);
  });

  it('a hostile megabyte comes back whole, every password in it hidden', () => {
    const halves = 'ab://c:'.repeat(70_000);
    const letters = 'p'.repeat(400_000);
    const text = `${letters} postgres://user:sec@retPW@[bad/db ${halves} password=tail-secret ${halves}redis://:last-pw@h`;
    expect(text.length).toBeGreaterThan(1_000_000);
    // Half URLs before a space have no password (no '@'); after the last space the first one's
    // password runs to the '@' of the Redis URL, the last '@' before the end.
    const expected = `${letters} postgres://user:***@[bad/db ${halves} password=*** ab://c:***@h`;
    const out = redact(text);
    expect(out).toBe(expected);
    for (const secret of ['sec@', 'retPW', 'tail-secret', 'last-pw']) expect(out).not.toContain(secret);
  });
});
