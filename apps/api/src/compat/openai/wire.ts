import type { FinishReason, Usage } from '@switchyard/protocol';
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

/** Switchyard's finish reasons as OpenAI's (`cancelled`/`error` never reach a `done` event). */
export function finishReason(reason: FinishReason): 'stop' | 'length' {
  return reason === 'length' ? 'length' : 'stop';
}

export function openAiUsage(usage: Usage) {
  return {
    prompt_tokens: usage.prompt_tokens,
    completion_tokens: usage.completion_tokens,
    total_tokens: usage.prompt_tokens + usage.completion_tokens,
  };
}

/** The whole answer of a non-streaming request. */
export function completionBody(meta: AnswerMeta, text: string, reason: FinishReason, usage: Usage) {
  const base = { id: responseId(meta), created: meta.created, model: meta.model };
  if (meta.endpoint === 'chat') {
    return {
      ...base,
      object: 'chat.completion' as const,
      choices: [{ index: 0, message: { role: 'assistant' as const, content: text, refusal: null }, logprobs: null, finish_reason: finishReason(reason) }],
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
  constructor(
    private readonly meta: AnswerMeta,
    private readonly includeUsage: boolean,
  ) {}

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

  /** The chunk with `finish_reason`, the usage chunk if asked for, and `[DONE]`. */
  finish(reason: FinishReason, usage: Usage): string {
    const last =
      this.meta.endpoint === 'chat'
        ? this.chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: finishReason(reason) }])
        : this.chunk([{ index: 0, text: '', logprobs: null, finish_reason: finishReason(reason) }]);
    return last + (this.includeUsage ? this.chunk([], openAiUsage(usage)) : '') + 'data: [DONE]\n\n';
  }
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
