import type { FinishReason, ToolCallResult, Usage } from '@switchyard/protocol';
import type { CompatError } from '../compat-error.js';

/**
 * OpenAI's response objects, built from Switchyard job events. Ids embed the job id
 * (`chatcmpl-<jobId>`, `cmpl-<jobId>`), so a client can find the job in `/v1/jobs/:id`.
 */

export type Endpoint = 'chat' | 'completion';

export interface AnswerMeta {
  endpoint: Endpoint;
  jobId: string;
  model: string;
  /** Unix seconds, the same on every chunk of one answer. */
  created: number;
}

export function responseId(meta: Pick<AnswerMeta, 'endpoint' | 'jobId'>): string {
  return `${meta.endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${meta.jobId}`;
}

/**
 * Switchyard's finish reasons as OpenAI's (`cancelled`/`error` never reach a `done` event). An
 * answer that carries calls ends `tool_calls` whatever the backend said (Ollama says `stop`).
 */
export function finishReason(reason: FinishReason, calledTools = false): 'stop' | 'length' | 'tool_calls' {
  if (reason === 'tool_calls' || calledTools) return 'tool_calls';
  return reason === 'length' ? 'length' : 'stop';
}

/** A call as OpenAI writes it: `arguments` is a JSON string. */
export function openAiToolCall(call: ToolCallResult) {
  return { id: call.id, type: 'function' as const, function: { name: call.name, arguments: JSON.stringify(call.arguments) } };
}

/**
 * A JSON string cut in a few fragments, as a streamed call's `arguments` arrives from OpenAI
 * (clients concatenate them; none may rely on where the cuts fall).
 */
export function argumentFragments(text: string, pieces = 3): string[] {
  if (text.length <= 1) return [text];
  const size = Math.ceil(text.length / Math.min(pieces, text.length));
  const fragments: string[] = [];
  for (let start = 0; start < text.length; start += size) fragments.push(text.slice(start, start + size));
  return fragments;
}

export function openAiUsage(usage: Usage) {
  return {
    prompt_tokens: usage.prompt_tokens,
    completion_tokens: usage.completion_tokens,
    total_tokens: usage.prompt_tokens + usage.completion_tokens,
  };
}

/**
 * The whole answer of a non-streaming request. With calls, `content` is null unless the model
 * also wrote text, as OpenAI answers.
 */
export function completionBody(meta: AnswerMeta, text: string, reason: FinishReason, usage: Usage, toolCalls: readonly ToolCallResult[] = []) {
  const base = { id: responseId(meta), created: meta.created, model: meta.model };
  if (meta.endpoint === 'chat') {
    const called = toolCalls.length > 0;
    const message = {
      role: 'assistant' as const,
      content: called && text === '' ? null : text,
      refusal: null,
      ...(called && { tool_calls: toolCalls.map(openAiToolCall) }),
    };
    return {
      ...base,
      object: 'chat.completion' as const,
      choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason(reason, called) }],
      usage: openAiUsage(usage),
    };
  }
  return {
    ...base,
    object: 'text_completion' as const,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason(reason) }],
    usage: openAiUsage(usage),
  };
}

/**
 * Streaming chunks. With `include_usage`, every chunk carries `usage: null` and one last
 * chunk with `choices: []` carries the usage, as OpenAI does.
 */
export class ChunkWriter {
  /** Calls streamed so far: the next call's `index`. */
  private calls = 0;

  constructor(
    private readonly meta: AnswerMeta,
    private readonly includeUsage: boolean,
  ) {}

  get endpoint(): Endpoint {
    return this.meta.endpoint;
  }

  private chunk(choices: unknown[], usage: ReturnType<typeof openAiUsage> | null = null): string {
    const body = {
      id: responseId(this.meta),
      object: this.meta.endpoint === 'chat' ? 'chat.completion.chunk' : 'text_completion',
      created: this.meta.created,
      model: this.meta.model,
      choices,
      ...(this.includeUsage && { usage }),
    };
    return `data: ${JSON.stringify(body)}\n\n`;
  }

  /** The first chunk of a chat stream announces the role; text completions have none. */
  opening(): string | undefined {
    if (this.meta.endpoint !== 'chat') return undefined;
    return this.chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
  }

  text(text: string): string {
    if (this.meta.endpoint === 'chat') return this.chunk([{ index: 0, delta: { content: text }, logprobs: null, finish_reason: null }]);
    return this.chunk([{ index: 0, text, logprobs: null, finish_reason: null }]);
  }

  /**
   * One whole call as OpenAI streams it (chat only): a chunk that opens it (`id`, `type`,
   * `name`, empty `arguments`), then its `arguments` in fragments, each naming its `index`.
   */
  toolCall(call: ToolCallResult): string {
    const index = this.calls++;
    const delta = (toolCall: unknown) => this.chunk([{ index: 0, delta: { tool_calls: [toolCall] }, logprobs: null, finish_reason: null }]);
    let out = delta({ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } });
    for (const fragment of argumentFragments(JSON.stringify(call.arguments))) out += delta({ index, function: { arguments: fragment } });
    return out;
  }

  /** The chunk with `finish_reason`, the usage chunk if asked for, and `[DONE]`. */
  finish(reason: FinishReason, usage: Usage): string {
    const called = this.calls > 0;
    const last =
      this.meta.endpoint === 'chat'
        ? this.chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: finishReason(reason, called) }])
        : this.chunk([{ index: 0, text: '', logprobs: null, finish_reason: finishReason(reason) }]);
    return last + (this.includeUsage ? this.chunk([], openAiUsage(usage)) : '') + 'data: [DONE]\n\n';
  }
}

/** A vector as `encoding_format: "base64"` sends it: little-endian float32, base64 (what openai-node decodes). */
export function base64Embedding(vector: readonly number[]): string {
  const bytes = Buffer.alloc(vector.length * 4);
  vector.forEach((value, index) => bytes.writeFloatLE(value, index * 4));
  return bytes.toString('base64');
}

/** The answer of `POST /v1/embeddings`: one entry per input, in input order. */
export function embeddingsBody(model: string, embeddings: readonly number[][], promptTokens: number, encoding: 'float' | 'base64') {
  return {
    object: 'list' as const,
    data: embeddings.map((vector, index) => ({ object: 'embedding' as const, index, embedding: encoding === 'base64' ? base64Embedding(vector) : vector })),
    model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}

/** OpenAI's error `type` for a status (and a few codes that have their own). */
export function openAiErrorType(status: number, code: string): string {
  if (code === 'insufficient_quota') return 'insufficient_quota';
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  // OpenAI answers an unknown model with 404 and type invalid_request_error, code model_not_found.
  return 'invalid_request_error';
}

export function openAiErrorBody(error: CompatError) {
  return { error: { message: error.message, type: openAiErrorType(error.status, error.code), param: error.param, code: error.code } };
}

/** An error after the stream started: openai-node throws on a `data:` chunk with `error`. */
export function errorChunk(error: CompatError): string {
  return `data: ${JSON.stringify(openAiErrorBody(error))}\n\n`;
}
