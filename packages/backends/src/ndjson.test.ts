import { describe, expect, it } from 'vitest';
import { NdjsonParseError, parseNdjson } from './ndjson.js';

const encoder = new TextEncoder();

async function* fromChunks(chunks: Array<Uint8Array | string>): AsyncGenerator<Uint8Array | string> {
  for (const chunk of chunks) yield chunk;
}

async function collect(source: AsyncIterable<Uint8Array | string>): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const value of parseNdjson(source)) out.push(value);
  return out;
}

// CRLF, a blank line, a whitespace-only line, 2-, 3- and 4-byte UTF-8 characters, and a
// last line without a newline.
const PAYLOAD =
  '{"response":"caf\u00e9"}\r\n' + '\n' + '{"response":"\u65e5\u672c"}\n' + '   \r\n' + '{"response":"\u{1F999} llama","n":[1,2]}\n' + '{"done":true,"eval_count":3}';
const EXPECTED = [{ response: 'caf\u00e9' }, { response: '\u65e5\u672c' }, { response: '\u{1F999} llama', n: [1, 2] }, { done: true, eval_count: 3 }];
const BYTES = encoder.encode(PAYLOAD);

describe('parseNdjson', () => {
  it('parses the payload in one chunk', async () => {
    expect(await collect(fromChunks([BYTES]))).toEqual(EXPECTED);
  });

  it('parses identically for every single split point, including inside multi-byte characters', async () => {
    for (let cut = 0; cut <= BYTES.length; cut++) {
      const values = await collect(fromChunks([BYTES.slice(0, cut), BYTES.slice(cut)]));
      expect(values, `split at byte ${cut}`).toEqual(EXPECTED);
    }
  });

  it('parses identically for every pair of split points (three chunks)', async () => {
    for (let a = 0; a <= BYTES.length; a++) {
      for (let b = a; b <= BYTES.length; b++) {
        const values = await collect(fromChunks([BYTES.slice(0, a), BYTES.slice(a, b), BYTES.slice(b)]));
        if (JSON.stringify(values) !== JSON.stringify(EXPECTED)) {
          expect(values, `split at bytes ${a} and ${b}`).toEqual(EXPECTED);
        }
      }
    }
  });

  it('parses one byte at a time', async () => {
    const chunks = Array.from(BYTES, (byte) => Uint8Array.of(byte));
    expect(await collect(fromChunks(chunks))).toEqual(EXPECTED);
  });

  it('accepts string chunks split mid-line', async () => {
    const chunks = [PAYLOAD.slice(0, 7), PAYLOAD.slice(7, 30), PAYLOAD.slice(30)];
    expect(await collect(fromChunks(chunks))).toEqual(EXPECTED);
  });

  it('yields nothing for an empty source or blank lines only', async () => {
    expect(await collect(fromChunks([]))).toEqual([]);
    expect(await collect(fromChunks(['\n', '\r\n  \n', '']))).toEqual([]);
  });

  it('yields each line as soon as it is complete, before the source ends', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    async function* slow(): AsyncGenerator<string> {
      yield '{"a":1}\n{"b":';
      await gate;
      yield '2}\n';
    }
    const iterator = parseNdjson(slow());
    expect(await iterator.next()).toEqual({ done: false, value: { a: 1 } });
    release();
    expect(await iterator.next()).toEqual({ done: false, value: { b: 2 } });
    expect(await iterator.next()).toEqual({ done: true, value: undefined });
  });

  it('throws an NdjsonParseError naming the bad line after yielding the good ones', async () => {
    const seen: unknown[] = [];
    const run = async (): Promise<void> => {
      for await (const value of parseNdjson(fromChunks(['{"ok":1}\n\n{"ok":', '2}\n{not json}\n{"ok":3}\n']))) {
        seen.push(value);
      }
    };
    const error = await run().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(seen).toEqual([{ ok: 1 }, { ok: 2 }]);
    expect(error).toBeInstanceOf(NdjsonParseError);
    const parseError = error as NdjsonParseError;
    expect(parseError.lineNumber).toBe(4);
    expect(parseError.lineText).toBe('{not json}');
    expect(parseError.message).toContain('line 4');
    expect(parseError.message).toContain('{not json}');
    expect(parseError.cause).toBeInstanceOf(SyntaxError);
  });

  it('reports a bad final line without a newline', async () => {
    await expect(collect(fromChunks(['{"a":1}\n{"b":']))).rejects.toMatchObject({
      name: 'NdjsonParseError',
      lineNumber: 2,
      lineText: '{"b":',
    });
  });

  it('truncates a long bad line in the error', async () => {
    const bad = `{"x":"${'y'.repeat(5_000)}`;
    const error = (await collect(fromChunks([`${bad}\n`])).catch((err: unknown) => err)) as NdjsonParseError;
    expect(error).toBeInstanceOf(NdjsonParseError);
    expect(error.lineText.length).toBeLessThanOrEqual(201);
    expect(error.lineText.startsWith('{"x":"yyy')).toBe(true);
    expect(error.message.length).toBeLessThan(300);
  });

  it('refuses a line longer than maxLineLength', async () => {
    const source = fromChunks(['{"a":"', 'x'.repeat(50), 'x'.repeat(50)]);
    const run = async (): Promise<void> => {
      for await (const _ of parseNdjson(source, { maxLineLength: 64 })) {
        // drain
      }
    };
    await expect(run()).rejects.toThrow(/exceeds 64 characters/);
  });

  it('closes the source when the consumer stops early', async () => {
    let closed = false;
    async function* source(): AsyncGenerator<string> {
      try {
        yield '{"a":1}\n{"a":2}\n';
        yield '{"a":3}\n';
      } finally {
        closed = true;
      }
    }
    for await (const value of parseNdjson(source())) {
      expect(value).toEqual({ a: 1 });
      break;
    }
    expect(closed).toBe(true);
  });
});
