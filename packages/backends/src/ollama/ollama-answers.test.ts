import { describe, expect, it } from 'vitest';
import { readStreamLine } from './ollama-answers.js';

describe('readStreamLine', () => {
  it('reads a plain token line of either wire as its text, and leaves every other line to the schema', () => {
    expect(readStreamLine({ model: 'm', created_at: 't', message: { role: 'assistant', content: 'Hel' }, done: false })).toEqual({ kind: 'token', text: 'Hel' });
    expect(readStreamLine({ model: 'm', created_at: 't', response: 'lo', done: false })).toEqual({ kind: 'token', text: 'lo' });
    // A chat line's text is its message's, even beside a response.
    expect(readStreamLine({ message: { content: 'a' }, response: 'b', done: false })).toEqual({ kind: 'token', text: 'a' });
    // Not plain: the schema's reading.
    expect(readStreamLine({ message: { content: '' }, done: false })).toEqual({ kind: 'empty' });
    expect(readStreamLine({ error: 'model crashed', done: false })).toEqual({ kind: 'error', message: 'model crashed' });
    expect(readStreamLine({ message: { content: '', tool_calls: [{ function: { name: 'f', arguments: { x: 1 } } }] }, done: false })).toMatchObject({
      kind: 'empty',
      calls: [{ name: 'f', arguments: { x: 1 } }],
    });
    expect(readStreamLine({ message: { content: 'end' }, done: true, done_reason: 'stop', eval_count: 3 })).toMatchObject({
      kind: 'done',
      text: 'end',
      chunk: { type: 'done', done_reason: 'stop', completion_tokens: 3 },
    });
    expect(() => readStreamLine('not an object')).toThrow();
  });
});
