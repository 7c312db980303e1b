import { describe, expect, it } from 'vitest';
import { FOREVER, parseGoDuration, parseKeepAlive } from './keep-alive.js';

describe('parseKeepAlive', () => {
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
    expect(parseKeepAlive('-1m')).toBe(FOREVER);
    expect(parseKeepAlive('-1')).toBe(FOREVER);
  });

  it('rejects what Go rejects, with Go wording', () => {
    expect(() => parseKeepAlive('abc')).toThrow('time: invalid duration "abc"');
    expect(() => parseKeepAlive('5 minutes')).toThrow(/invalid duration/);
    expect(() => parseKeepAlive('')).toThrow(/invalid duration/);
    expect(() => parseGoDuration('10')).toThrow(/missing unit/);
  });
});
