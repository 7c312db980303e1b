import { describe, expect, it } from 'vitest';
import { DurationError, FOREVER, isKeepAlive, KEEP_ALIVE_AS_SENT, KEEP_ALIVE_SETTING, parseGoDuration, parseKeepAlive } from './go-duration.js';

describe('parseGoDuration', () => {
  it.each([
    ['1ns', 1e-6],
    ['1us', 1e-3],
    ['1µs', 1e-3], // U+00B5 micro sign
    ['1μs', 1e-3], // U+03BC Greek mu
    ['1ms', 1],
    ['1s', 1_000],
    ['1m', 60_000],
    ['1h', 3_600_000],
  ])('reads the unit of %j', (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 12);
  });

  it.each([
    ['1h30m', 5_400_000],
    ['2h45m30s', 9_930_000],
    ['1m500ms', 60_500],
    ['1s1s', 2_000], // Go adds repeated units
    ['1.5h', 5_400_000],
    ['1.s', 1_000],
    ['.5s', 500],
    ['0.25m', 15_000],
  ])('reads the combination or decimal %j', (text, ms) => {
    expect(parseGoDuration(text)).toBe(ms);
  });

  it('reads a lone zero without a unit, signed or not, and zero with one', () => {
    expect(parseGoDuration('0')).toBe(0);
    expect(parseGoDuration('+0')).toBe(0);
    expect(parseGoDuration('-0') === 0).toBe(true); // -0, which is 0
    expect(parseGoDuration('0s')).toBe(0);
    expect(parseGoDuration('0h0m')).toBe(0);
  });

  it('keeps the sign', () => {
    expect(parseGoDuration('-1m')).toBe(-60_000);
    expect(parseGoDuration('-1h30m')).toBe(-5_400_000);
    expect(parseGoDuration('+2s')).toBe(2_000);
  });

  it.each(['', '-', '+', 'abc', 'h', '1x', '1 h', ' 1h', '1h ', '.s', '1..5s', '1e3s', '--1s', '1H', 'ms1'])('refuses %j in Go words', (text) => {
    expect(() => parseGoDuration(text)).toThrow(new DurationError(`time: invalid duration ${JSON.stringify(text)}`));
  });

  it('says which part lacks a unit', () => {
    expect(() => parseGoDuration('10')).toThrow('time: missing unit in duration "10"');
    expect(() => parseGoDuration('1h30')).toThrow('time: missing unit in duration "1h30"');
    expect(() => parseGoDuration('-1.5')).toThrow('time: missing unit in duration "-1.5"');
  });

  it('refuses a duration too large for a double', () => {
    const huge = `1${'0'.repeat(400)}h`;
    expect(() => parseGoDuration(huge)).toThrow(`time: invalid duration "${huge}"`);
  });

  it('throws DurationError, an Error', () => {
    const error = (() => {
      try {
        parseGoDuration('soon');
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(DurationError);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).name).toBe('DurationError');
  });
});

describe('parseKeepAlive (the setting reading, the default)', () => {
  it.each([
    ['10m', 600_000],
    ['30s', 30_000],
    ['1h', 3_600_000],
    ['500ms', 500],
    ['1h30m', 5_400_000],
    ['1.5s', 1_500],
    ['0', 0],
    ['0s', 0],
    ['30', 30_000],
    ['2.5', 2_500],
    ['.5', 500],
    ['1.', 1_000],
    ['+30', 30_000],
    ['  5m\n', 300_000],
  ])('reads the string %j', (text, ms) => {
    expect(parseKeepAlive(text)).toBe(ms);
  });

  it('reads numbers as seconds', () => {
    expect(parseKeepAlive(30)).toBe(30_000);
    expect(parseKeepAlive(0.25)).toBe(250);
    expect(parseKeepAlive(0)).toBe(0);
  });

  it('makes any negative value "forever"', () => {
    expect(parseKeepAlive(-1)).toBe(FOREVER);
    expect(parseKeepAlive(-0.001)).toBe(FOREVER);
    expect(parseKeepAlive('-1m')).toBe(FOREVER);
    expect(parseKeepAlive('-1')).toBe(FOREVER);
    expect(parseKeepAlive('-1ns')).toBe(FOREVER);
    expect(FOREVER).toBe(Number.POSITIVE_INFINITY);
  });

  it('rejects what Go rejects, with Go wording', () => {
    expect(() => parseKeepAlive('abc')).toThrow('time: invalid duration "abc"');
    expect(() => parseKeepAlive('5 minutes')).toThrow('time: invalid duration "5 minutes"');
    expect(() => parseKeepAlive('')).toThrow('time: invalid duration ""');
    expect(() => parseKeepAlive('forever')).toThrow(DurationError);
  });

  it('names the trimmed text in its message', () => {
    expect(() => parseKeepAlive(' soon ')).toThrow('time: invalid duration "soon"');
  });

  it('refuses non-finite numbers (they cannot come from JSON, but can from code)', () => {
    expect(() => parseKeepAlive(Number.NaN)).toThrow('invalid keep_alive NaN');
    expect(() => parseKeepAlive(Number.POSITIVE_INFINITY)).toThrow('invalid keep_alive Infinity');
  });

  it('refuses a duration too large to time, but reads an overlong number of seconds as forever', () => {
    expect(() => parseKeepAlive(`1${'0'.repeat(400)}h`)).toThrow(/^time: invalid duration/);
    expect(parseKeepAlive('9'.repeat(400))).toBe(FOREVER);
  });

  it('is the default reading', () => {
    expect(parseKeepAlive(' .5 ', KEEP_ALIVE_SETTING)).toBe(parseKeepAlive(' .5 '));
  });
});

describe('parseKeepAlive with the as-sent reading (the broker validating a body)', () => {
  it.each([
    ['10m', 600_000],
    ['1h30m', 5_400_000],
    ['0', 0],
    ['30', 30_000],
    ['2.5', 2_500],
    ['-1', FOREVER],
    ['-5m', FOREVER],
  ])('reads %j like the setting reading', (text, ms) => {
    expect(parseKeepAlive(text, KEEP_ALIVE_AS_SENT)).toBe(ms);
    expect(parseKeepAlive(text, KEEP_ALIVE_SETTING)).toBe(ms);
  });

  it('reads a signed zero as zero (unload), not as negative (forever)', () => {
    expect(parseKeepAlive('-0', KEEP_ALIVE_AS_SENT) === 0).toBe(true);
    expect(parseKeepAlive('-0s', KEEP_ALIVE_AS_SENT) === 0).toBe(true);
  });

  it('does not trim', () => {
    expect(() => parseKeepAlive(' 5m', KEEP_ALIVE_AS_SENT)).toThrow('time: invalid duration " 5m"');
    expect(() => parseKeepAlive('30 ', KEEP_ALIVE_AS_SENT)).toThrow(DurationError);
  });

  it('takes seconds only as digits with an optional fraction', () => {
    expect(() => parseKeepAlive('.5', KEEP_ALIVE_AS_SENT)).toThrow('time: missing unit in duration ".5"');
    expect(() => parseKeepAlive('1.', KEEP_ALIVE_AS_SENT)).toThrow('time: missing unit in duration "1."');
    // As Go durations the same decimals are fine.
    expect(parseKeepAlive('.5s', KEEP_ALIVE_AS_SENT)).toBe(500);
    expect(parseKeepAlive('1.s', KEEP_ALIVE_AS_SENT)).toBe(1_000);
  });

  it('checks syntax only: a duration too large for a double reads as forever', () => {
    expect(parseKeepAlive(`1${'0'.repeat(400)}h`, KEEP_ALIVE_AS_SENT)).toBe(FOREVER);
    expect(parseKeepAlive(`-1${'0'.repeat(400)}h`, KEEP_ALIVE_AS_SENT)).toBe(FOREVER);
  });
});

describe('isKeepAlive', () => {
  it('says whether parseKeepAlive would accept the value', () => {
    expect(isKeepAlive('5m')).toBe(true);
    expect(isKeepAlive(-1)).toBe(true);
    expect(isKeepAlive('soon')).toBe(false);
    expect(isKeepAlive(' 5m ')).toBe(true);
    expect(isKeepAlive(' 5m ', KEEP_ALIVE_AS_SENT)).toBe(false);
    expect(isKeepAlive('.5', KEEP_ALIVE_AS_SENT)).toBe(false);
  });
});
