/**
 * `POST /api/generate` and `POST /api/chat`: the same life cycle with two wire shapes.
 *
 * 1. Parse and validate (400), find the model (404), read keep_alive (400).
 * 2. keep_alive 0 without a prompt unloads (any model, embedding ones too). Then what the
 *    model cannot do is refused with 400, in Ollama's words: an embedding model
 *    `"<model>" does not support chat` (`generate`), even to load it; `tools` to a model
 *    without tools `registry.ollama.ai/library/<model> does not support tools`; images to a
 *    model without vision `"<model>" does not support vision`.
 * 3. Load-only requests (empty prompt / no messages) load the model and answer
 *    `done_reason: "load"`; with keep_alive 0 they unload it instead (`"unload"`).
 * 4. Otherwise wait for a slot on the loaded model (the scheduler may load and evict, or
 *    refuse: 500 too large, 503 queue full), then play the answer out (answer-plan.ts: text,
 *    tool calls, JSON for `format`), streamed as NDJSON or whole. Errors before the answer
 *    starts keep their HTTP status. Tool calls go out whole, as Ollama sends them: one line
 *    with `message.tool_calls` once the call's tokens have been generated, then the final line.
 * 5. A client that goes away (socket closed) stops everything at once: it leaves the queue,
 *    or its token loop stops and its slot is given back.
 *
 * Durations are wall-clock nanoseconds, measured like Ollama does: load_duration runs from
 * the request's arrival until it holds a slot (queueing included), total_duration until the
 * last line. With time_scale < 1 they are shorter than the simulated GPU would need, exactly
 * as the client observes them.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  isOllamaLoadOnlyChat,
  isOllamaLoadOnlyGenerate,
  OllamaChatRequest,
  ollamaContent,
  OllamaGenerateRequest,
  ollamaLifecycleLine,
  ollamaTimestamp,
  type OllamaChatLine,
  type OllamaChatMessage,
  type OllamaOptions,
  type OllamaStreamLine,
  type OllamaTool,
  type OllamaToolCall,
} from '@switchyard/protocol';
import { planAnswer, type ToolChoice, type ToolResult } from '../answer-plan.js';
import { elapsedNs, monotonicNs, runGeneration } from '../generation.js';
import type { ModelSpec } from '../model-spec.js';
import { NdjsonResponse } from '../ndjson-response.js';
import { readJsonBody, validateBody } from '../request-body.js';
import type { SimContext } from '../sim-context.js';
import { SimError, isAbortError } from '../sim-error.js';
import { promptTokenCount, promptTokenIds, type GeneratedToken } from '../token-generator.js';
import { abandon, acquireLease, numCtxFor, quoted, readKeepAlive, registryName, resolveModel, watchClient } from './route-support.js';

type Kind = 'generate' | 'chat';

interface InferenceRequest {
  kind: Kind;
  /** The model name as the client wrote it; Ollama echoes it back unchanged. */
  modelName: string;
  model: ModelSpec;
  stream: boolean;
  keepAliveMs: number;
  /** undefined for load-only requests. */
  promptText: string | undefined;
  /** What the answer is drawn from when it differs from `promptText` (see chatAnswerText). */
  answerText?: string | undefined;
  /** The assistant's partial answer a chat ends with, to be continued (not answered anew). */
  continues?: string;
  /** Token ids of a previous generate's `context`, prepended to the prompt. */
  priorContext: number[];
  /** Whether the final generate line carries `context` (not in raw mode). */
  returnContext: boolean;
  options: OllamaOptions | null | undefined;
  /** `format` as sent ("json", a schema, or nothing). */
  format: unknown;
  /** Chat only: the tools offered, `tool_choice`, `parallel_tool_calls`. */
  tools: OllamaTool[];
  toolChoice: ToolChoice;
  parallelToolCalls: boolean | undefined;
  /** Chat only: the role of the last message (after a continued partial answer is taken off). */
  lastRole?: string | undefined;
  /** Chat only: the `tool` messages the conversation ends with. */
  toolResults: ToolResult[];
  /** All images of the request (generate's `images`, or every chat message's). */
  images: string[];
}

/** What the model cannot do for this request: Ollama's 400 (see the module comment). */
function checkCapabilities(req: InferenceRequest): void {
  const { model } = req;
  if (model.embedding) throw new SimError('bad_request', `${quoted(req.modelName)} does not support ${req.kind}`);
  if (req.tools.length > 0 && !model.tools) throw new SimError('bad_request', `${registryName(model)} does not support tools`);
  if (req.images.length > 0 && !model.vision) throw new SimError('bad_request', `${quoted(req.modelName)} does not support vision`);
}

function parseGenerate(ctx: SimContext, body: unknown): InferenceRequest {
  const request = validateBody(OllamaGenerateRequest, body);
  const model = resolveModel(ctx, request.model);
  return {
    kind: 'generate',
    modelName: request.model,
    model,
    stream: request.stream ?? true,
    keepAliveMs: readKeepAlive(request.keep_alive, ctx.config.keep_alive),
    promptText: isOllamaLoadOnlyGenerate(request) ? undefined : [request.system, request.prompt, request.suffix].filter((part) => part).join('\n'),
    priorContext: request.context ?? [],
    returnContext: request.raw !== true,
    options: request.options,
    format: request.format,
    tools: [],
    toolChoice: undefined,
    parallelToolCalls: undefined,
    toolResults: [],
    images: request.images ?? [],
  };
}

/** A message as a prompt line: `role: content`, and an assistant's tool calls as JSON after it. */
function promptLine(message: OllamaChatMessage): string {
  const calls = message.tool_calls && message.tool_calls.length > 0 ? ` ${JSON.stringify(message.tool_calls)}` : '';
  return `${message.role}: ${message.content ?? ''}${calls}`;
}

/** The `tool` messages a conversation ends with. */
function trailingToolResults(messages: readonly OllamaChatMessage[]): ToolResult[] {
  const results: ToolResult[] = [];
  for (let i = messages.length - 1; i >= 0 && messages[i]?.role === 'tool'; i--) {
    const message = messages[i] as OllamaChatMessage;
    results.unshift({ content: message.content ?? '', toolName: message.tool_name ?? undefined });
  }
  return results;
}

/**
 * The text a chat's answer is drawn from (its prompt text, `role: content` lines, is what
 * holds match and prompt tokens count). A single turn (a user message, after an optional
 * system one) draws from what the generate request of the same system and prompt does, as
 * Ollama's templates make them the same model input: so a generate continued as a chat (how
 * an agent resumes one) continues the same answer.
 */
function chatAnswerText(messages: Array<{ role: string; content?: string | null | undefined }>): string | undefined {
  const [first, second] = messages;
  const singleTurn = (messages.length === 1 && first?.role === 'user') || (messages.length === 2 && first?.role === 'system' && second?.role === 'user');
  return singleTurn
    ? messages
        .map((m) => m.content ?? '')
        .filter((part) => part)
        .join('\n')
    : undefined;
}

function parseChat(ctx: SimContext, body: unknown): InferenceRequest {
  const request = validateBody(OllamaChatRequest, body);
  const model = resolveModel(ctx, request.model);
  const all = request.messages ?? [];
  // A chat ending in the assistant's partial answer asks to continue it, as Ollama does.
  const last = all.at(-1);
  const continues = all.length > 1 && last?.role === 'assistant' && typeof last.content === 'string' && last.content !== '';
  const messages = continues ? all.slice(0, -1) : all;
  return {
    kind: 'chat',
    ...(continues && { continues: last.content as string }),
    modelName: request.model,
    model,
    stream: request.stream ?? true,
    keepAliveMs: readKeepAlive(request.keep_alive, ctx.config.keep_alive),
    promptText: isOllamaLoadOnlyChat(request) ? undefined : messages.map(promptLine).join('\n'),
    answerText: chatAnswerText(messages),
    priorContext: [],
    returnContext: false,
    options: request.options,
    format: request.format,
    tools: request.tools ?? [],
    toolChoice: request.tool_choice,
    // Not in Ollama's API: sent by Switchyard's agent beside tools (OpenAI's field).
    parallelToolCalls: typeof request['parallel_tool_calls'] === 'boolean' ? request['parallel_tool_calls'] : undefined,
    lastRole: messages.at(-1)?.role,
    toolResults: trailingToolResults(messages),
    images: all.flatMap((m) => m.images ?? []),
  };
}

function seedFor(ctx: SimContext, req: InferenceRequest): number {
  const seed = req.options?.seed;
  if (seed !== undefined && seed !== null) return seed;
  const fallback = ctx.config.default_seed;
  return fallback === 'random' ? Math.floor(Math.random() * 2 ** 31) : fallback;
}

async function handle(ctx: SimContext, kind: Kind, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const arrived = monotonicNs();
  const body = readJsonBody(request.body);
  const req = kind === 'generate' ? parseGenerate(ctx, body) : parseChat(ctx, body);
  ctx.counters.requestsTotal++;
  const log = ctx.logger.child({ model: req.model.name, endpoint: kind });

  if (req.promptText === undefined && req.keepAliveMs === 0) {
    // Ollama unloads (now, or when the model's running requests finish) without loading it first.
    ctx.scheduler.expire(req.model.name);
    return reply.send(ollamaLifecycleLine(req.kind, req.modelName, 'unload'));
  }
  checkCapabilities(req);

  // The response's 'close' before it finished means the client hung up.
  const { client, signal, detach } = watchClient(ctx, reply);

  const lease = await acquireLease(ctx, reply, { client, detach }, log, {
    model: req.model,
    numCtx: numCtxFor(ctx, req.model, req.options),
    keepAliveMs: req.keepAliveMs,
    slot: req.promptText !== undefined,
    signal,
  });
  if (!lease) return;

  if (req.promptText === undefined) {
    detach();
    return reply.send(ollamaLifecycleLine(req.kind, req.modelName, 'load'));
  }

  try {
    const loadNs = elapsedNs(arrived);
    const promptText = req.promptText;
    const promptTokens = promptTokenCount(promptText) + req.priorContext.length;
    const answer = planAnswer({
      seed: seedFor(ctx, req),
      prompt: req.answerText ?? promptText,
      numPredict: req.options?.num_predict ?? undefined,
      minTokens: ctx.config.response_tokens_min,
      maxTokens: ctx.config.response_tokens_max,
      continues: req.continues,
      tools: req.tools,
      toolChoice: req.toolChoice,
      parallelToolCalls: req.parallelToolCalls,
      lastRole: req.lastRole,
      toolResults: req.toolResults,
      format: req.format,
      images: req.images,
    });
    const { plan } = answer;
    const calls = answer.kind === 'tool_calls' ? answer.calls : undefined;
    const generated: GeneratedToken[] = [];
    const out = req.stream ? new NdjsonResponse(reply.raw) : undefined;
    if (out) reply.hijack();

    /** A chat message carrying the calls: `content` empty, as Ollama sends it. */
    const callsLine = (toolCalls: OllamaToolCall[]): OllamaChatLine => ({
      model: req.modelName,
      created_at: ollamaTimestamp(),
      message: { role: 'assistant', content: '', tool_calls: toolCalls },
      done: false,
    });
    const finalContent = () => {
      if (calls && !out) return { message: { role: 'assistant', content: '', tool_calls: calls } };
      return ollamaContent(req.kind, out || calls ? '' : generated.map((token) => token.text).join(''));
    };

    const finish = (result: Awaited<ReturnType<typeof runGeneration>>): OllamaStreamLine => ({
      model: req.modelName,
      created_at: ollamaTimestamp(),
      ...finalContent(),
      done: true,
      done_reason: result.doneReason,
      ...(req.kind === 'generate' && req.returnContext ? { context: [...req.priorContext, ...promptTokenIds(promptText), ...generated.map((token) => token.id)] } : {}),
      total_duration: elapsedNs(arrived),
      load_duration: loadNs,
      prompt_eval_count: promptTokens,
      prompt_eval_duration: result.promptEvalNs,
      eval_count: result.evalCount,
      eval_duration: result.evalNs,
    });

    try {
      const result = await runGeneration({
        plan,
        promptTokens,
        tokensPerS: req.model.tokens_per_s ?? ctx.config.tokens_per_s,
        promptTokensPerS: req.model.prompt_tokens_per_s ?? ctx.config.prompt_tokens_per_s,
        timeScale: ctx.config.time_scale,
        signal,
        counters: ctx.counters,
        pause: ctx.holds.catch(promptText),
        onToken: (token) => {
          generated.push(token);
          // A tool call is generated token by token but sent whole, once complete.
          if (out && !calls) {
            const line: OllamaStreamLine = { model: req.modelName, created_at: ollamaTimestamp(), ...ollamaContent(req.kind, token.text), done: false };
            return out.send(line);
          }
        },
      });
      if (calls) ctx.counters.toolCallsTotal += calls.length;
      if (!out) return reply.send(finish(result));
      if (calls) await out.send(callsLine(calls));
      await out.send(finish(result));
      out.end();
    } catch (error) {
      if (client.aborted) {
        ctx.counters.cancelledTotal++;
        log.debug({ tokens: generated.length }, 'client left, generation stopped');
        if (out) out.destroy();
        else abandon(reply);
        return;
      }
      const failure = isAbortError(error)
        ? new SimError('shutting_down', 'server is shutting down')
        : error instanceof SimError
          ? error
          : new SimError('internal', (error as Error).message);
      if (!out) throw failure;
      ctx.counters.errorsTotal++;
      if (failure.code === 'shutting_down') log.info('generation cut short by shutdown');
      else log.warn({ err: error }, 'generation failed');
      out.fail(failure.status, failure.message);
    }
  } finally {
    lease.release();
    detach();
  }
}

export function registerInferenceRoutes(app: FastifyInstance, ctx: SimContext): void {
  app.post('/api/generate', (request, reply) => handle(ctx, 'generate', request, reply));
  app.post('/api/chat', (request, reply) => handle(ctx, 'chat', request, reply));
}
