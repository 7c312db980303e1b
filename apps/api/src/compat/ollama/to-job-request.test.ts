import { describe, expect, it } from 'vitest';
import { OllamaCompatChatRequest, OllamaCompatEmbeddingsRequest, OllamaCompatEmbedRequest, OllamaCompatGenerateRequest } from '@switchyard/protocol';
import { CompatError, fromZodError } from '../compat-error.js';
import { chatToJobRequest, embeddingsToJobRequest, embedToJobRequest, generateToJobRequest, isLoadOnlyEmbed } from './to-job-request.js';

/** Parses then maps, as the routes do; a failure is the CompatError the route answers with. */
function through<T>(schema: { safeParse(value: unknown): { success: true; data: T } | { success: false; error: any } }, map: (body: T) => unknown) {
  return (body: Record<string, unknown>) => {
    const parsed = schema.safeParse(body);
    if (!parsed.success) throw fromZodError(parsed.error);
    return map(parsed.data) as any;
  };
}
const chat = through(OllamaCompatChatRequest, chatToJobRequest);
const generate = through(OllamaCompatGenerateRequest, generateToJobRequest);
const embed = through(OllamaCompatEmbedRequest, embedToJobRequest);
const embeddings = through(OllamaCompatEmbeddingsRequest, embeddingsToJobRequest);

function failure(run: () => unknown): CompatError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(CompatError);
    return error as CompatError;
  }
  throw new Error('expected a 400');
}

const weather = {
  type: 'function',
  function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
};

describe('Ollama chat with tools → job', () => {
  it('passes tools (fields beyond a function tool dropped, a missing type read as function), calls with object arguments and tool names', () => {
    const job = chat({
      model: 'm:1',
      tools: [{ ...weather, function: { ...weather.function, extra: true } }, { function: { name: 'get_time' } }],
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        {
          role: 'assistant',
          content: '',
          tool_calls: [
            { function: { index: 0, name: 'get_weather', arguments: { city: 'Paris' } } },
            { id: 'lc-1', type: 'function', function: { name: 'get_time', arguments: {} } },
          ],
        },
        { role: 'tool', content: 'sunny', tool_name: 'get_weather' },
      ],
    });
    expect(job.tools).toEqual([weather, { type: 'function', function: { name: 'get_time' } }]);
    expect(job.messages).toEqual([
      { role: 'user', content: 'Weather in Paris?' },
      {
        role: 'assistant',
        content: '',
        tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }, { id: 'lc-1', function: { name: 'get_time', arguments: {} } }],
      },
      { role: 'tool', content: 'sunny', tool_name: 'get_weather' },
    ]);
  });

  it('names the field at fault', () => {
    expect(failure(() => chat({ model: 'm:1', messages: [{ role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: '{"a":1}' } }] }] })).param).toBe(
      'messages[0].tool_calls[0].function.arguments',
    );
    expect(failure(() => chat({ model: 'm:1', messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'bad name!' } }] })).param).toBe(
      'tools[0].function.name',
    );
    expect(failure(() => chat({ model: 'm:1', messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'retrieval', function: { name: 'f' } }] })).param).toBe(
      'tools[0].type',
    );
    expect(failure(() => chat({ model: 'm:1', messages: [{ role: 'user', content: 'x' }], tools: 'f' })).param).toBe('tools');
    expect(failure(() => chat({ model: 'm:1', messages: [{ role: 'user', content: 'x', images: ['not base64!'] }] })).param).toBe('messages[0].images[0]');
    const tooLarge = failure(() => chat({ model: 'm:1', messages: [{ role: 'user', content: 'x', images: ['A'.repeat(14 * 1024 * 1024)] }] }));
    expect(tooLarge.message).toMatch(/messages\[0\]\.images\[0\].*at most 10 MiB/);
  });

  it("names a generate request's own images field, not the chat it becomes", () => {
    expect(generate({ model: 'm:1', prompt: 'look', images: ['AAAA'] }).messages).toEqual([{ role: 'user', content: 'look', images: ['AAAA'] }]);
    expect(failure(() => generate({ model: 'm:1', prompt: 'look', images: ['AAAA', 'no!'] })).param).toBe('images[1]');
  });
});

describe('Ollama embed → job', () => {
  it('maps /api/embed to an embed job', () => {
    expect(embed({ model: 'e:1', input: ['a', 'b'], truncate: false, dimensions: 64, keep_alive: '5m', options: { num_ctx: 512 } })).toEqual({
      kind: 'embed',
      model: 'e:1',
      input: ['a', 'b'],
      truncate: false,
      dimensions: 64,
      options: { num_ctx: 512 },
      metadata: { keep_alive: '5m' },
      priority: 'interactive',
    });
    expect(embeddings({ model: 'e:1', prompt: 'hello' })).toMatchObject({ kind: 'embed', input: 'hello' });
  });

  it('reads no input as a load-only request', () => {
    for (const input of [undefined, null, '', []]) expect(isLoadOnlyEmbed(OllamaCompatEmbedRequest.parse({ model: 'e:1', input }))).toBe(true);
    expect(isLoadOnlyEmbed(OllamaCompatEmbedRequest.parse({ model: 'e:1', input: [''] }))).toBe(false);
  });

  it('names the field at fault', () => {
    expect(failure(() => embed({ model: 'e:1', input: [1, 2] })).param).toBe('input');
    expect(failure(() => embed({ model: 'e:1', input: 'x', dimensions: -1 })).param).toBe('dimensions');
    expect(failure(() => embed({ model: 'e:1', input: 'x', truncate: 'yes' })).param).toBe('truncate');
    expect(failure(() => embed({ model: 'e:1', input: Array.from({ length: 2049 }, () => 'x') })).param).toBe('input');
    expect(failure(() => embeddings({ model: 'e:1', prompt: 'x'.repeat(1_000_001) })).param).toBe('prompt');
  });
});
