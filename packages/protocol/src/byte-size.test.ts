import { describe, expect, it } from 'vitest';
import { formatGiB, parseByteSize } from './byte-size.js';

describe('parseByteSize', () => {
  it.each([
    ['24GB', 24e9],
    ['24 GiB', 24 * 2 ** 30],
    ['512MiB', 512 * 2 ** 20],
    ['4.9GB', 4.9e9],
    ['80G', 80 * 2 ** 30],
    ['1000', 1000],
    ['2kb', 2000],
  ])('reads %s', (text, bytes) => {
    expect(parseByteSize(text)).toBe(Math.round(bytes));
  });

  it('keeps numbers as bytes', () => {
    expect(parseByteSize(1234.4)).toBe(1234);
  });

  it.each(['', 'lots', '24QB', '-1GB'])('rejects %j', (text) => {
    expect(() => parseByteSize(text)).toThrow(/not a byte size/);
  });

  it('formats GiB with one decimal like Ollama', () => {
    expect(formatGiB(44 * 2 ** 30)).toBe('44.0');
    expect(formatGiB(7.6 * 2 ** 30)).toBe('7.6');
  });
});
