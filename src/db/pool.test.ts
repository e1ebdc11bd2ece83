import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { aggjobsTypes } from './pool.ts';

describe('int8 parsing', () => {
  it('aggjobs pools read int8 as numbers; pg’s global parser, shared with the importing program, is untouched', () => {
    expect(aggjobsTypes.getTypeParser(pg.types.builtins.INT8, 'text')('42')).toBe(42);
    // Past 2^53 a number would lose precision: a program using pg itself still gets the exact string.
    expect(pg.types.getTypeParser(pg.types.builtins.INT8, 'text')('9007199254740993')).toBe(
      '9007199254740993',
    );
    // Every other type is pg's own.
    expect(aggjobsTypes.getTypeParser(pg.types.builtins.NUMERIC, 'text')('1.50')).toBe('1.50');
    expect(aggjobsTypes.getTypeParser(pg.types.builtins.INT4, 'text')('7')).toBe(7);
  });
});
