import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TokenCoalescer } from './token-coalescer.js';

describe('TokenCoalescer', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('emits the first token at once and batches the rest per window', () => {
    const emitted: string[] = [];
    const coalescer = new TokenCoalescer(5, (text) => emitted.push(text));
    coalescer.push('Hello');
    expect(emitted).toEqual(['Hello']);
    coalescer.push(' wor');
    coalescer.push('ld');
    expect(emitted).toEqual(['Hello']);
    vi.advanceTimersByTime(5);
    expect(emitted).toEqual(['Hello', ' world']);
    coalescer.push('!');
    coalescer.flush();
    expect(emitted).toEqual(['Hello', ' world', '!']);
    vi.advanceTimersByTime(50);
    expect(emitted).toHaveLength(3);
  });

  it('emits every token with a zero window', () => {
    const emitted: string[] = [];
    const coalescer = new TokenCoalescer(0, (text) => emitted.push(text));
    for (const t of ['a', 'b', 'c']) coalescer.push(t);
    expect(emitted).toEqual(['a', 'b', 'c']);
  });

  it('discards what it holds when told to', () => {
    const emitted: string[] = [];
    const coalescer = new TokenCoalescer(5, (text) => emitted.push(text));
    coalescer.push('a');
    coalescer.push('b');
    coalescer.discard();
    vi.advanceTimersByTime(10);
    expect(emitted).toEqual(['a']);
  });
});
