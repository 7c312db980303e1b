import { describe, expect, it } from 'vitest';
import { CompatError } from '../compat-error.js';
import { ChatCompletionRequest, CompletionRequest } from './request-schemas.js';
import { chatToJobRequest, completionToJobRequest } from './to-job-request.js';

const chat = (body: Record<string, unknown>) => chatToJobRequest(ChatCompletionRequest.parse({ model: 'm:1', messages: [{ role: 'user', content: 'hi' }], ...body }));

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
      { role: 'tool', content: '{}' },
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

describe('OpenAI completion request → job', () => {
  it('takes a prompt string or a one-element array', () => {
    expect(completionToJobRequest(CompletionRequest.parse({ model: 'm:1', prompt: 'hi', max_tokens: 3 }))).toMatchObject({ prompt: 'hi', options: { num_predict: 3 } });
    expect(completionToJobRequest(CompletionRequest.parse({ model: 'm:1', prompt: ['hi'] })).prompt).toBe('hi');
    expect(CompletionRequest.safeParse({ model: 'm:1', prompt: [1, 2, 3] }).success).toBe(false);
    expect(CompletionRequest.safeParse({ model: 'm:1', prompt: 'x', echo: true }).success).toBe(false);
  });
});
