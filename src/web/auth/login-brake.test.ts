import { describe, expect, it } from 'vitest';
import { createLogger } from '../../log/index.ts';
import { createLoginBrake, LOGIN_BRAKE } from './login-brake.ts';

describe('login brake', () => {
  const logger = createLogger('silent');

  it('locks an address after the free failures, doubling, and forgets it after a quiet window', () => {
    let t = 0;
    const brake = createLoginBrake(logger, () => t);
    for (let i = 0; i < LOGIN_BRAKE.freeFailures; i += 1) brake.failed('a');
    expect(brake.retryAfterSeconds('a')).toBe(0);
    brake.failed('a');
    expect(brake.retryAfterSeconds('a')).toBe(1);
    t += 1000;
    brake.failed('a');
    expect(brake.retryAfterSeconds('a')).toBe(2);
    t += 2000 + LOGIN_BRAKE.windowMs;
    brake.failed('a');
    expect(brake.retryAfterSeconds('a')).toBe(0);
  });

  it('remembers a bounded number of addresses: the oldest is forgotten first', () => {
    const brake = createLoginBrake(logger, () => 0);
    const lock = (address: string) => {
      for (let i = 0; i <= LOGIN_BRAKE.freeFailures; i += 1) brake.failed(address);
    };
    lock('first');
    expect(brake.retryAfterSeconds('first')).toBe(1);
    for (let i = 0; i < LOGIN_BRAKE.maxAddresses; i += 1) lock(`10.0.${i >> 8}.${i & 255}`);
    expect(brake.retryAfterSeconds('first')).toBe(0);
    expect(
      brake.retryAfterSeconds(
        `10.0.${(LOGIN_BRAKE.maxAddresses - 1) >> 8}.${(LOGIN_BRAKE.maxAddresses - 1) & 255}`,
      ),
    ).toBe(1);
  });
});
