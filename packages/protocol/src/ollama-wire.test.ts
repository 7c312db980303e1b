import { describe, expect, it } from 'vitest';
import {
  isOllamaLoadOnlyChat,
  isOllamaLoadOnlyGenerate,
  OllamaChatLine,
  OllamaChatRequest,
  OllamaClientErrorBody,
  OllamaClientModel,
  OllamaClientModelList,
  OllamaClientShowResponse,
  OllamaClientStreamLine,
  OllamaCompatChatRequest,
  OllamaCompatGenerateRequest,
  OllamaCompatKeepAlive,
  OllamaCompatShowRequest,
  ollamaContent,
  OllamaErrorBody,
  OllamaFinalMetrics,
  OllamaGenerateLine,
  OllamaGenerateRequest,
  ollamaLifecycleLine,
  OllamaLoadRequest,
  OllamaPsResponse,
  OllamaShowRequest,
  OllamaShowResponse,
  OllamaTagsResponse,
  ollamaTimestamp,
  OllamaUnloadRequest,
  OllamaVersionResponse,
} from './ollama-wire.js';

const details = { parent_model: '', format: 'gguf', family: 'llama', families: ['llama'], parameter_size: '8.0B', quantization_level: 'Q4_0' };

/** The first issue's path and message, as the simulator and the broker report it. */
function firstIssue(result: { success: boolean; error?: { issues: Array<{ path: PropertyKey[]; message: string }> } }) {
  const issue = result.error?.issues[0];
  return issue && { path: issue.path.join('.'), message: issue.message };
}

describe('request bodies (base: what Ollama and the simulator accept)', () => {
  it('takes the documented generate and chat requests', () => {
    expect(OllamaGenerateRequest.safeParse({ model: 'llama3.2', prompt: 'Why is the sky blue?', stream: false, options: { seed: 123, temperature: 0 } }).success).toBe(true);
    expect(
      OllamaGenerateRequest.safeParse({
        model: 'codellama:code',
        prompt: 'def f():',
        suffix: '    return x',
        raw: true,
        context: [1, 2, 3],
        images: ['aGk='],
        keep_alive: '5m',
        format: 'json',
      }).success,
    ).toBe(true);
    expect(OllamaChatRequest.safeParse({ model: 'llama3.2', messages: [{ role: 'user', content: 'why?', images: ['aGk='] }], keep_alive: -1 }).success).toBe(true);
  });

  it('ignores unknown fields and reads null as absent, like Go', () => {
    const parsed = OllamaGenerateRequest.parse({ model: 'm', prompt: null, think: true, tools: [], keep_alive: null, options: null });
    expect(parsed.prompt).toBeNull();
    expect(OllamaChatRequest.safeParse({ model: 'm', messages: null, stream: null }).success).toBe(true);
  });

  it('requires a model in Ollama words', () => {
    expect(firstIssue(OllamaGenerateRequest.safeParse({ prompt: 'x' }))).toEqual({ path: 'model', message: 'model is required' });
    expect(firstIssue(OllamaChatRequest.safeParse({ model: '' }))).toEqual({ path: 'model', message: 'model is required' });
  });

  it('type-checks the fields it reads, and takes any keep_alive string (its meaning is checked later, in Go words)', () => {
    expect(firstIssue(OllamaGenerateRequest.safeParse({ model: 'm', prompt: 5 }))?.path).toBe('prompt');
    expect(firstIssue(OllamaGenerateRequest.safeParse({ model: 'm', raw: 'yes' }))?.path).toBe('raw');
    expect(firstIssue(OllamaGenerateRequest.safeParse({ model: 'm', options: { num_ctx: 1.5 } }))?.path).toBe('options.num_ctx');
    expect(firstIssue(OllamaChatRequest.safeParse({ model: 'm', messages: [{ content: 'no role' }] }))?.path).toBe('messages.0.role');
    expect(OllamaGenerateRequest.safeParse({ model: 'm', keep_alive: 'soon' }).success).toBe(true);
    expect(OllamaGenerateRequest.safeParse({ model: 'm', keep_alive: true }).success).toBe(false);
    expect(OllamaGenerateRequest.safeParse({ model: 'm', format: 5 }).success).toBe(true);
  });

  it('takes model or name on /api/show', () => {
    expect(OllamaShowRequest.parse({ name: 'old:1b' }).name).toBe('old:1b');
    expect(OllamaShowRequest.safeParse({ model: 'm', verbose: 'yes' }).success).toBe(false);
  });

  it('describes load and unload requests and tells load-only ones', () => {
    expect(OllamaLoadRequest.safeParse({ model: 'm', stream: false, keep_alive: -1 }).success).toBe(true);
    expect(OllamaUnloadRequest.safeParse({ model: 'm', stream: false, keep_alive: 0 }).success).toBe(true);
    expect(OllamaUnloadRequest.safeParse({ model: 'm', keep_alive: '5m' }).success).toBe(false);
    expect(isOllamaLoadOnlyGenerate({})).toBe(true);
    expect(isOllamaLoadOnlyGenerate({ prompt: '' })).toBe(true);
    expect(isOllamaLoadOnlyGenerate({ prompt: null })).toBe(true);
    expect(isOllamaLoadOnlyGenerate({ prompt: 'x' })).toBe(false);
    expect(isOllamaLoadOnlyChat({})).toBe(true);
    expect(isOllamaLoadOnlyChat({ messages: [] })).toBe(true);
    expect(isOllamaLoadOnlyChat({ messages: [{ role: 'user' }] })).toBe(false);
  });
});

describe('request bodies, broker variant (OllamaCompat*)', () => {
  it('checks keep_alive in the schema with its own message', () => {
    for (const value of ['5m', '1h30m', '0', '30', '2.5', '-1', -1, 0, 300]) expect(OllamaCompatKeepAlive.safeParse(value).success, String(value)).toBe(true);
    for (const value of ['forever', ' 5m', '.5', '1.', '5 minutes', '']) {
      expect(OllamaCompatKeepAlive.safeParse(value).error?.issues[0]?.message, value).toBe('invalid duration (use e.g. "5m", "1h", a number of seconds, or -1)');
    }
    expect(firstIssue(OllamaCompatGenerateRequest.safeParse({ model: 'm', prompt: 'x', keep_alive: 'forever' }))?.path).toBe('keep_alive');
  });

  it('checks format, which goes into the job, where the base does not', () => {
    for (const format of ['', 'json', { type: 'object' }]) expect(OllamaCompatChatRequest.safeParse({ model: 'm', format }).success).toBe(true);
    expect(firstIssue(OllamaCompatChatRequest.safeParse({ model: 'm', format: 'yaml' }))).toEqual({
      path: 'format',
      message: 'format must be "json" or a JSON schema object',
    });
  });

  it('takes any options object (the job request checks each option) and the Switchyard fields', () => {
    expect(OllamaCompatGenerateRequest.safeParse({ model: 'm', options: { num_ctx: 1.5, temperature: 'hot' } }).success).toBe(true);
    expect(OllamaCompatGenerateRequest.safeParse({ model: 'm', options: [] }).success).toBe(false);
    expect(OllamaCompatGenerateRequest.parse({ model: 'm', priority: 'batch', deadline_ms: 5_000 })).toMatchObject({ priority: 'batch', deadline_ms: 5_000 });
    expect(firstIssue(OllamaCompatGenerateRequest.safeParse({ model: 'm', deadline_ms: 0 }))?.path).toBe('deadline_ms');
  });

  it('drops, unchecked, the fields it does not map', () => {
    const parsed = OllamaCompatGenerateRequest.parse({ model: 'm', raw: 'yes', suffix: 5, context: 'x', template: 1 });
    expect(parsed).toEqual({ model: 'm' });
    expect(OllamaCompatChatRequest.parse({ model: 'm', messages: [{ role: 'user', content: 'x', thinking: 'y' }] }).messages).toEqual([{ role: 'user', content: 'x' }]);
    expect(OllamaCompatShowRequest.safeParse({ model: 'm', verbose: 'yes' }).success).toBe(true);
  });

  it('names the first bad field in its own order (stream before messages)', () => {
    expect(firstIssue(OllamaCompatChatRequest.safeParse({ model: 'm', messages: 5, stream: 'x' }))?.path).toBe('stream');
    expect(firstIssue(OllamaChatRequest.safeParse({ model: 'm', messages: 5, stream: 'x' }))?.path).toBe('messages');
  });
});

describe('responses (base: what Ollama, the simulator and the broker send)', () => {
  it('describes /api/tags, /api/ps, /api/show and /api/version', () => {
    const tagsModel = { name: 'llama3:latest', model: 'llama3:latest', modified_at: '2023-12-07T09:32:18.757212583-08:00', size: 3825819519, digest: 'fe93', details };
    expect(OllamaTagsResponse.safeParse({ models: [tagsModel] }).success).toBe(true);
    expect(OllamaTagsResponse.safeParse({ models: [{ ...tagsModel, size: '3.8GB' }] }).success).toBe(false);
    const psModel = {
      name: 'mistral:latest',
      model: 'mistral:latest',
      size: 5137025024,
      digest: '2ae6',
      details,
      expires_at: '2024-06-04T14:38:31.83753-07:00',
      size_vram: 5137025024,
    };
    expect(OllamaPsResponse.safeParse({ models: [psModel, { ...psModel, context_length: 4096 }] }).success).toBe(true);
    expect(
      OllamaShowResponse.safeParse({ modelfile: '# …', parameters: 'num_ctx 4096', template: '{{ .Prompt }}', details, model_info: { 'general.architecture': 'llama' } })
        .success,
    ).toBe(true);
    expect(OllamaVersionResponse.safeParse({ version: '0.12.6' }).success).toBe(true);
    expect(OllamaTagsResponse.safeParse({ models: [{ ...tagsModel, details: { ...details, families: null } }] }).success).toBe(true);
  });

  it('describes stream lines, final metrics and the error body', () => {
    const final = {
      model: 'm',
      created_at: ollamaTimestamp(0),
      response: '',
      done: true,
      done_reason: 'stop',
      context: [1, 2],
      total_duration: 10,
      load_duration: 1,
      prompt_eval_count: 26,
      prompt_eval_duration: 2,
      eval_count: 3,
      eval_duration: 4,
    };
    expect(OllamaGenerateLine.safeParse(final).success).toBe(true);
    expect(OllamaFinalMetrics.safeParse(final).success).toBe(true);
    expect(OllamaFinalMetrics.safeParse({ ...final, eval_duration: -1 }).success).toBe(false);
    expect(OllamaChatLine.safeParse({ model: 'm', created_at: ollamaTimestamp(), message: { role: 'assistant', content: 'The' }, done: false }).success).toBe(true);
    expect(OllamaChatLine.safeParse({ model: 'm', created_at: ollamaTimestamp(), response: 'The', done: false }).success).toBe(false);
    expect(OllamaErrorBody.safeParse({ error: "model 'x' not found" }).success).toBe(true);
  });

  it('builds the text part and the load/unload answers in the endpoint shape', () => {
    expect(ollamaContent('chat', 'hi')).toEqual({ message: { role: 'assistant', content: 'hi' } });
    expect(ollamaContent('generate', 'hi')).toEqual({ response: 'hi' });
    const unload = ollamaLifecycleLine('chat', 'm:1', 'unload');
    expect(Object.keys(unload)).toEqual(['model', 'created_at', 'message', 'done', 'done_reason']);
    expect(unload).toMatchObject({ model: 'm:1', message: { role: 'assistant', content: '' }, done: true, done_reason: 'unload' });
    expect(OllamaChatLine.safeParse(unload).success).toBe(true);
    expect(OllamaGenerateLine.parse(ollamaLifecycleLine('generate', 'm:1', 'load'))).toMatchObject({ response: '', done_reason: 'load' });
    expect(ollamaTimestamp(0)).toBe('1970-01-01T00:00:00.000Z');
  });
});

describe('responses, client variant (OllamaClient*)', () => {
  it('reads a nil Go slice or no field as no models, and refuses other shapes', () => {
    expect(OllamaClientModelList.parse({ models: null }).models).toBeNull();
    expect(OllamaClientModelList.parse({}).models).toBeUndefined();
    expect(OllamaClientModelList.safeParse({ models: 'x' }).success).toBe(false);
    expect(OllamaClientModelList.safeParse([]).success).toBe(false);
  });

  it('reads an entry leniently, named by name or else model', () => {
    expect(OllamaClientModel.parse({ model: 'a:1', size: 'big', digest: 7, details: [1], expires_at: 5 })).toMatchObject({
      name: 'a:1',
      size: undefined,
      digest: undefined,
      details: undefined,
      expires_at: undefined,
    });
    expect(OllamaClientModel.parse({ name: '', model: 'b:1' }).name).toBe('b:1');
    expect(OllamaClientModel.safeParse({ name: '', digest: 'x' }).success).toBe(false);
    expect(OllamaClientModel.safeParse('a:1').success).toBe(false);
  });

  it('keeps pass-through objects as sent', () => {
    const passed = { family: 'llama' };
    expect(OllamaClientModel.parse({ name: 'a', details: passed }).details).toBe(passed);
    const modelInfo = { 'general.architecture': 'llama' };
    expect(OllamaClientShowResponse.parse({ model_info: modelInfo }).model_info).toBe(modelInfo);
    expect(OllamaClientShowResponse.parse({ model_info: [] }).model_info).toBeUndefined();
  });

  it('reads any object as a stream line, mistyped fields as absent', () => {
    expect(OllamaClientStreamLine.parse({ message: { content: 5 }, response: 'r', done: 'yes', eval_count: '3' })).toMatchObject({
      message: { content: undefined },
      response: 'r',
      done: undefined,
      eval_count: undefined,
    });
    expect(OllamaClientStreamLine.parse({ error: { code: 1 } }).error).toEqual({ code: 1 });
    expect(OllamaClientStreamLine.safeParse(null).success).toBe(false);
    expect(OllamaClientStreamLine.safeParse(['x']).success).toBe(false);
  });

  it('reads Ollama error bodies and OpenAI-shaped ones', () => {
    expect(OllamaClientErrorBody.parse({ error: 'boom' }).error).toBe('boom');
    expect(OllamaClientErrorBody.parse({ error: { message: 'boom', type: 'x' } }).error).toMatchObject({ message: 'boom' });
    expect(OllamaClientErrorBody.safeParse({ error: 5 }).success).toBe(false);
    expect(OllamaClientErrorBody.safeParse({ status: 'ok' }).success).toBe(false);
  });
});
