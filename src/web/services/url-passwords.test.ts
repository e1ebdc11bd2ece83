import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createSecretScrubber } from './secret-scrubber.ts';
import { redactUrlPasswords, type ScanMeter } from './url-passwords.ts';

/** The expression the scanner replaces (quadratic: 20,000 letters took 2.2 s). The oracle. */
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@\s/]+@/gi;
const oracle = (text: string): string => text.replace(URL_PASSWORD, '$1:***@');

function steps(text: string): number {
  const meter: ScanMeter = { steps: 0 };
  redactUrlPasswords(text, meter);
  return meter.steps;
}

describe('redactUrlPasswords', () => {
  it('finds exactly what the regular expression finds', () => {
    for (const text of [
      'postgres://u:pw@h/db and amqp://x:y@z',
      'a://b://c:d@e',
      '1a://u:p@h',
      '+://u:p@h',
      'x://u:@h',
      'x://u:p q@h',
      'X-Y.z+1://user:p:w@host',
      'x://u:p@h://v:q@i',
      'redis://:pw@r:6379/0',
    ]) {
      expect(redactUrlPasswords(text), text).toBe(oracle(text));
    }
    const alphabet = fc.constantFrom(...'ab1+.-:/@ \nX');
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 40 }), (chars) => {
        const text = chars.join('');
        expect(redactUrlPasswords(text)).toBe(oracle(text));
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
    ['a scheme run before many "://"', (n: number) => `${'s'.repeat(n / 2)}${'://x'.repeat(n / 8)}`],
  ] as const)('is linear on %s: 40,000 characters cost at most 40× 1,000 (×1.2)', ([, make]) => {
    const small = make(1000);
    const large = make(40_000);
    expect(steps(large)).toBeLessThanOrEqual(steps(small) * 40 * 1.2 + 100);
    expect(steps(large)).toBeLessThanOrEqual(4 * large.length);
  });

  it('a 40,000-character argument is scrubbed whole, its URL passwords too', () => {
    const scrub = createSecretScrubber({ urls: [], secrets: ['dashboard-pw'] });
    const text = `${'p'.repeat(40_000)} postgres://app:hunter2@db/x dashboard-pw`;
    expect(scrub.value({ note: text })).toEqual({
      note: `${'p'.repeat(40_000)} postgres://app:***@db/x ***`,
    });
  });
});
