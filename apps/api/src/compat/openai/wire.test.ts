import { describe, expect, it } from 'vitest';
import { argumentFragments, base64Embedding, ChunkWriter, completionBody, embeddingsBody, type AnswerMeta } from './wire.js';

const meta: AnswerMeta = { endpoint: 'chat', jobId: 'J1', model: 'm:1', created: 1 };
const usage = { prompt_tokens: 3, completion_tokens: 4 };
const call = { id: 'call_J1_0', name: 'get_weather', arguments: { city: 'Paris', days: 2 } };

/** The JSON bodies of an SSE text (`data: [DONE]` left out). */
function chunks(sse: string): any[] {
  return sse
    .split('\n\n')
    .filter((frame) => frame.startsWith('data: ') && frame !== 'data: [DONE]')
    .map((frame) => JSON.parse(frame.slice('data: '.length)));
}

describe('OpenAI answers with tool calls', () => {
  it('answers calls with content null, JSON-string arguments and finish_reason tool_calls', () => {
    const body = completionBody(meta, '', 'stop', usage, [call]);
    expect(body.choices[0]).toEqual({
      index: 0,
      message: {
        role: 'assistant',
        content: null,
        refusal: null,
        tool_calls: [{ id: 'call_J1_0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","days":2}' } }],
      },
      logprobs: null,
      finish_reason: 'tool_calls',
    });
    expect(completionBody(meta, 'let me look', 'tool_calls', usage, [call]).choices[0]).toMatchObject({ message: { content: 'let me look' } });
    expect(completionBody(meta, 'hi', 'stop', usage).choices[0]).toMatchObject({ message: { content: 'hi' }, finish_reason: 'stop' });
    expect(completionBody(meta, 'hi', 'stop', usage).choices[0]).not.toHaveProperty('message.tool_calls');
  });

  it('streams a call as an opening chunk (id, type, name, empty arguments) and argument fragments, then finish_reason tool_calls', () => {
    const writer = new ChunkWriter(meta, false);
    const second = { id: 'call_J1_1', name: 'get_time', arguments: {} };
    const sent = chunks(writer.toolCall(call) + writer.toolCall(second) + writer.finish('stop', usage));
    const deltas = sent.map((chunk) => chunk.choices[0].delta);
    expect(deltas[0]).toEqual({ tool_calls: [{ index: 0, id: 'call_J1_0', type: 'function', function: { name: 'get_weather', arguments: '' } }] });
    const firstFragments = deltas.filter((delta) => delta.tool_calls?.[0].index === 0).slice(1);
    expect(firstFragments.length).toBeGreaterThan(1);
    for (const delta of firstFragments) expect(Object.keys(delta.tool_calls[0]).sort()).toEqual(['function', 'index']);
    expect(firstFragments.map((delta) => delta.tool_calls[0].function.arguments).join('')).toBe(JSON.stringify(call.arguments));
    const secondDeltas = deltas.filter((delta) => delta.tool_calls?.[0].index === 1);
    expect(secondDeltas[0].tool_calls[0]).toMatchObject({ id: 'call_J1_1', function: { name: 'get_time', arguments: '' } });
    expect(
      secondDeltas
        .slice(1)
        .map((delta) => delta.tool_calls[0].function.arguments)
        .join(''),
    ).toBe('{}');
    expect(sent.at(-1).choices[0]).toEqual({ index: 0, delta: {}, logprobs: null, finish_reason: 'tool_calls' });
    for (const chunk of sent.slice(0, -1)) expect(chunk.choices[0].finish_reason).toBeNull();
  });

  it('cuts arguments in a few fragments that join to the whole', () => {
    for (const text of ['', '{}', '{"a":1}', JSON.stringify({ long: 'x'.repeat(500) })]) {
      const fragments = argumentFragments(text);
      expect(fragments.join('')).toBe(text);
      expect(fragments.length).toBeLessThanOrEqual(3);
    }
  });
});

describe('OpenAI embeddings answer', () => {
  it('lists one embedding per input, in order, with the usage', () => {
    expect(embeddingsBody('e:1', [[0.5], [1, 2]], 7, 'float')).toEqual({
      object: 'list',
      data: [
        { object: 'embedding', index: 0, embedding: [0.5] },
        { object: 'embedding', index: 1, embedding: [1, 2] },
      ],
      model: 'e:1',
      usage: { prompt_tokens: 7, total_tokens: 7 },
    });
  });

  it('encodes base64 as little-endian float32, as openai-node decodes it', () => {
    const vector = [0.25, -1.5, 3.1415927, 0];
    const encoded = base64Embedding(vector);
    // openai-node's decoding: Float32Array over the base64 bytes.
    const bytes = Buffer.from(encoded, 'base64');
    expect(bytes.length).toBe(16);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const decoded = vector.map((_, index) => view.getFloat32(index * 4, true));
    decoded.forEach((value, index) => expect(value).toBeCloseTo(vector[index]!, 6));
    expect(embeddingsBody('e:1', [vector], 1, 'base64').data[0]!.embedding).toBe(encoded);
  });
});
