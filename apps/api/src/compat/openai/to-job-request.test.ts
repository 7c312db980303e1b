import { describe, expect, it } from 'vitest';
import { CompatError, fromZodError } from '../compat-error.js';
import { ChatCompletionRequest, CompletionRequest, EmbeddingRequest } from './request-schemas.js';
import { chatToJobRequest, completionToJobRequest, embeddingToJobRequest } from './to-job-request.js';

const chat = (body: Record<string, unknown>) => chatToJobRequest(ChatCompletionRequest.parse({ model: 'm:1', messages: [{ role: 'user', content: 'hi' }], ...body }));

/** A chat body through the route's two steps (schema, then mapping), as the route runs them. */
const chatBody = (body: Record<string, unknown>) => {
  const parsed = ChatCompletionRequest.safeParse({ model: 'm:1', messages: [{ role: 'user', content: 'hi' }], ...body });
  if (!parsed.success) throw fromZodError(parsed.error);
  return chatToJobRequest(parsed.data);
};
const embedding = (body: Record<string, unknown>) => {
  const parsed = EmbeddingRequest.safeParse({ model: 'embed:1', ...body });
  if (!parsed.success) throw fromZodError(parsed.error);
  return embeddingToJobRequest(parsed.data);
};

function failure(run: () => unknown): CompatError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(CompatError);
    return error as CompatError;
  }
  throw new Error('expected a 400');
}

function paramOf(run: () => unknown): string | null {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(CompatError);
    return (error as CompatError).param;
  }
  throw new Error('expected a 400');
}

describe('OpenAI chat request → job', () => {
  it('maps sampling fields to Ollama options', () => {
    const job = chat({ max_tokens: 10, temperature: 0.5, top_p: 0.9, seed: 3, stop: 'END', presence_penalty: 1, frequency_penalty: -1 });
    expect(job.options).toEqual({ num_predict: 10, temperature: 0.5, top_p: 0.9, seed: 3, stop: ['END'], presence_penalty: 1, frequency_penalty: -1 });
    expect(chat({ max_tokens: 10, max_completion_tokens: 20 }).options?.num_predict).toBe(20);
    expect(chat({ temperature: null, stop: null }).options).toBeUndefined();
  });

  it('joins text parts, inlines data-URL images, and maps developer/function roles', () => {
    const job = chat({
      messages: [
        { role: 'developer', content: 'be terse' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'look' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
            { type: 'text', text: 'here' },
          ],
        },
        { role: 'assistant', content: null },
        { role: 'function', content: '{}', name: 'f' },
      ],
    });
    expect(job.messages).toEqual([
      { role: 'system', content: 'be terse' },
      { role: 'user', content: 'look\nhere', images: ['AAAA'] },
      { role: 'assistant', content: '' },
      { role: 'tool', content: '{}', tool_name: 'f' },
    ]);
  });

  it('maps response_format to format', () => {
    expect(chat({ response_format: { type: 'json_object' } }).format).toBe('json');
    expect(chat({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } } }).format).toEqual({ type: 'object' });
    expect(chat({ response_format: { type: 'text' } }).format).toBeUndefined();
  });

  it('names the parameter at fault', () => {
    expect(paramOf(() => chat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: 'https://x/y.png' }] }] }))).toBe('messages[0].content[0].image_url');
    expect(paramOf(() => chat({ model: 'bad model!' }))).toBe('model');
    expect(paramOf(() => chat({ priority: 'urgent' }))).toBe('priority');
    expect(ChatCompletionRequest.safeParse({ model: 'm', messages: [{ role: 'user', content: 'x' }], n: 2 }).success).toBe(false);
  });
});

describe('OpenAI tools → job', () => {
  const weather = {
    type: 'function',
    function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
  };

  it('passes tools, tool_choice and parallel_tool_calls, dropping fields beyond a function tool', () => {
    const job = chatBody({ tools: [{ ...weather, extra: 1 }], tool_choice: { type: 'function', function: { name: 'get_weather' } }, parallel_tool_calls: false });
    expect(job.tools).toEqual([weather]);
    expect(job.tool_choice).toEqual({ type: 'function', function: { name: 'get_weather' } });
    expect(job.parallel_tool_calls).toBe(false);
    expect(chatBody({ tools: [weather], tool_choice: 'required' }).tool_choice).toBe('required');
    expect(chatBody({ tool_choice: 'none' }).tool_choice).toBe('none');
  });

  it('maps a tool round trip: calls with JSON-string arguments become objects, a tool turn is named by the call it answers', () => {
    const job = chatBody({
      tools: [weather],
      messages: [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'call_2', type: 'function', function: { name: 'get_weather', arguments: '' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_2', content: 'rainy' },
        { role: 'tool', tool_call_id: 'call_unknown', content: 'sunny' },
        { role: 'function', name: 'get_weather', content: 'legacy' },
      ],
    });
    expect(job.messages).toEqual([
      { role: 'user', content: 'Weather in Paris and Rome?' },
      {
        role: 'assistant',
        content: '',
        tool_calls: [
          { id: 'call_1', function: { name: 'get_weather', arguments: { city: 'Paris' } } },
          { id: 'call_2', function: { name: 'get_weather', arguments: {} } },
        ],
      },
      { role: 'tool', content: 'rainy', tool_name: 'get_weather', tool_call_id: 'call_2' },
      { role: 'tool', content: 'sunny', tool_call_id: 'call_unknown' },
      { role: 'tool', content: 'legacy', tool_name: 'get_weather' },
    ]);
  });

  it('names the parameter at fault in every new field', () => {
    const call = (args: unknown) => ({
      messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: args } }] }],
    });
    expect(paramOf(() => chatBody(call('{"city":')))).toBe('messages[0].tool_calls[0].function.arguments');
    expect(paramOf(() => chatBody(call('[1,2]')))).toBe('messages[0].tool_calls[0].function.arguments');
    expect(failure(() => chatBody(call('"x"'))).message).toMatch(/JSON object encoded as a string, got string/);
    expect(paramOf(() => chatBody(call({ city: 'Paris' })))).toBe('messages[0].tool_calls[0].function.arguments');
    expect(paramOf(() => chatBody({ tools: [{ type: 'function', function: { name: 'bad name!' } }] }))).toBe('tools[0].function.name');
    expect(paramOf(() => chatBody({ tools: [{ type: 'custom', custom: { name: 'x' } }] }))).toBe('tools[0].type');
    expect(paramOf(() => chatBody({ tools: [{ type: 'function', function: { name: 'f', parameters: 'object' } }] }))).toBe('tools[0].function.parameters');
    expect(paramOf(() => chatBody({ tools: 'get_weather' }))).toBe('tools');
    expect(paramOf(() => chatBody({ tools: [weather], tool_choice: 'sometimes' }))).toBe('tool_choice');
    expect(paramOf(() => chatBody({ tools: [weather], tool_choice: { type: 'function', function: { name: 'other' } } }))).toBe('tool_choice');
    expect(paramOf(() => chatBody({ tool_choice: 'required' }))).toBe('tool_choice');
    expect(paramOf(() => chatBody({ tools: [weather], parallel_tool_calls: 'yes' }))).toBe('parallel_tool_calls');
    expect(paramOf(() => chatBody({ messages: [{ role: 'assistant', content: '', tool_calls: [{ id: 'c', function: { name: 'bad name!', arguments: '{}' } }] }] }))).toBe(
      'messages[0].tool_calls[0].function.name',
    );
    expect(paramOf(() => chatBody({ functions: [{ name: 'f' }] }))).toBe('functions');
    expect(paramOf(() => chatBody({ function_call: 'auto' }))).toBe('function_call');
  });

  it('names the content part of an image that is too large or not base64', () => {
    const image = (url: string) => ({
      messages: [
        { role: 'user', content: 'first' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'look' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
            { type: 'image_url', image_url: { url } },
          ],
        },
      ],
    });
    expect(paramOf(() => chatBody(image('data:image/png;base64,not base64!')))).toBe('messages[1].content[2].image_url');
    const tooLarge = failure(() => chatBody(image(`data:image/png;base64,${'A'.repeat(14 * 1024 * 1024)}`)));
    expect(tooLarge).toMatchObject({ param: 'messages[1].content[2].image_url', status: 400 });
    expect(tooLarge.message).toMatch(/at most 10 MiB/);
  });
});

describe('OpenAI embeddings request → job', () => {
  it('maps input, dimensions and the queue extensions to an embed job', () => {
    expect(embedding({ input: 'hello', dimensions: 256, encoding_format: 'base64', user: 'u' })).toMatchObject({
      kind: 'embed',
      model: 'embed:1',
      input: 'hello',
      dimensions: 256,
    });
    expect(embedding({ input: ['a', 'b'], priority: 'batch' })).toMatchObject({ input: ['a', 'b'], priority: 'batch' });
  });

  it('refuses token arrays, as Ollama embeds text only, and names every bad field', () => {
    for (const input of [
      [1, 2, 3],
      [[1, 2], [3]],
    ]) {
      const error = failure(() => embedding({ input }));
      expect(error).toMatchObject({ status: 400, param: 'input' });
      expect(error.message).toMatch(/token arrays .* not supported: Ollama embeds text only/);
    }
    expect(paramOf(() => embedding({ input: ['text', [1, 2]] }))).toBe('input[1]');
    expect(paramOf(() => embedding({ input: ['text', { text: 'x' }] }))).toBe('input[1]');
    expect(paramOf(() => embedding({ input: ['text', ''] }))).toBe('input[1]');
    expect(paramOf(() => embedding({ input: '' }))).toBe('input');
    expect(paramOf(() => embedding({ input: [] }))).toBe('input');
    expect(paramOf(() => embedding({}))).toBe('input');
    expect(paramOf(() => embedding({ input: 42 }))).toBe('input');
    expect(paramOf(() => embedding({ input: Array.from({ length: 2049 }, () => 'x') }))).toBe('input');
    expect(paramOf(() => embedding({ input: 'x', encoding_format: 'binary' }))).toBe('encoding_format');
    expect(paramOf(() => embedding({ input: 'x', dimensions: 0 }))).toBe('dimensions');
    expect(paramOf(() => embedding({ input: 'x', dimensions: 1.5 }))).toBe('dimensions');
    expect(paramOf(() => embedding({ input: 'x', dimensions: '256' }))).toBe('dimensions');
    expect(paramOf(() => embedding({ input: 'x', model: 'bad model!' }))).toBe('model');
  });
});

describe('OpenAI completion request → job', () => {
  it('takes a prompt string or a one-element array', () => {
    expect(completionToJobRequest(CompletionRequest.parse({ model: 'm:1', prompt: 'hi', max_tokens: 3 }))).toMatchObject({ prompt: 'hi', options: { num_predict: 3 } });
    expect(completionToJobRequest(CompletionRequest.parse({ model: 'm:1', prompt: ['hi'] })).prompt).toBe('hi');
    expect(CompletionRequest.safeParse({ model: 'm:1', prompt: [1, 2, 3] }).success).toBe(false);
    expect(CompletionRequest.safeParse({ model: 'm:1', prompt: 'x', echo: true }).success).toBe(false);
  });
});
