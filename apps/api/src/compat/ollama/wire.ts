import {
  ollamaContent,
  ollamaTimestamp,
  type OllamaChatLine,
  type OllamaEndpoint,
  type OllamaFinalMetrics,
  type OllamaStreamLine,
  type StreamEvent,
  type ToolCallResult,
} from '@switchyard/protocol';

/**
 * Ollama's NDJSON lines built from Switchyard job events; the line shapes are the shared wire
 * module's (@switchyard/protocol ollama-wire.ts). Durations are nanoseconds, derived from the
 * `done` event's timings (ms since submission): the queue wait counts into `total_duration`,
 * as time waiting for Ollama's scheduler does in Ollama.
 */

type DoneEvent = Extract<StreamEvent, { type: 'done' }>;

const NS_PER_MS = 1_000_000;
/** Milliseconds as Ollama's nanosecond durations. */
export const ns = (ms: number) => Math.max(0, Math.round(ms * NS_PER_MS));

/** The count and duration fields of a final line. */
export function finalMetrics(done: DoneEvent): OllamaFinalMetrics {
  const { queued_ms, load_ms, ttft_ms, total_ms } = done.timings;
  return {
    done_reason: done.finish_reason === 'length' ? 'length' : 'stop',
    total_duration: ns(total_ms),
    load_duration: ns(load_ms),
    prompt_eval_count: done.usage.prompt_tokens,
    // From the job's start on its agent to its first token, less the model load.
    prompt_eval_duration: ns(ttft_ms - queued_ms - load_ms),
    eval_count: done.usage.completion_tokens,
    eval_duration: ns(total_ms - ttft_ms),
  };
}

/** A line (streaming) or the whole answer (`stream: false`) with `text` as its content. */
export function partLine(endpoint: OllamaEndpoint, model: string, text: string): OllamaStreamLine {
  return { model, created_at: ollamaTimestamp(), ...ollamaContent(endpoint, text), done: false };
}

/**
 * The whole answer of a non-streaming request, or the last line of a stream. A chat answer's
 * calls ride on its message (`stream: false`), as Ollama's do.
 */
export function finalLine(endpoint: OllamaEndpoint, model: string, text: string, done: DoneEvent, toolCalls: readonly ToolCallResult[] = []): OllamaStreamLine {
  const line = { ...partLine(endpoint, model, text), done: true, ...finalMetrics(done) };
  if (endpoint === 'chat' && toolCalls.length > 0) {
    const chat = line as OllamaChatLine;
    chat.message = { ...chat.message, tool_calls: toolCalls.map(ollamaToolCall) };
  }
  return line;
}

/**
 * A call on Ollama's wire: `arguments` an object, `index` its place in the answer. The id
 * Switchyard gave it (`call_<job>_<n>`) rides along, as newer Ollama versions send one.
 */
export function ollamaToolCall(call: ToolCallResult, index: number) {
  return { id: call.id, function: { index, name: call.name, arguments: call.arguments } };
}

/** A streamed line carrying calls (Ollama sends each call whole, on a line of its own). */
export function toolCallLine(model: string, call: ToolCallResult, index: number): OllamaChatLine {
  return { model, created_at: ollamaTimestamp(), message: { role: 'assistant', content: '', tool_calls: [ollamaToolCall(call, index)] }, done: false };
}

export function ndjson(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}
