import { UnrecoverableError, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { BackendError, type Backend, type ChatMessageInput, type GenerateRequest } from '@switchyard/backends';
import type { Attempt, JobLifecycle, TransitionOutcome } from '@switchyard/redis';
import {
  JobData,
  JobErrorCode,
  formatGB,
  formatJobFailure,
  jobContextVramBytes,
  jobKind,
  queueNameToModel,
  splitQueueModel,
  statusOfEnd,
  type FinishReason,
  type JobResult,
  type StreamEventBody,
  type ToolCallResult,
} from '@switchyard/protocol';
import { EmbedBatcher } from './embed-batcher.js';
import { TokenCoalescer } from './token-coalescer.js';
import type { ModelInventory } from './model-inventory.js';

export interface JobRunnerDeps {
  agentId: string;
  backend: Backend;
  lifecycle: JobLifecycle;
  inventory: ModelInventory;
  logger: Logger;
  /** Total VRAM of the node (all GPUs), against which a job's own context is judged. */
  vramTotalBytes: number;
  tokenCoalesceMs: number;
  /** Combines this agent's concurrent embed jobs per model into one backend call (default: one with 64 inputs a call, no window). */
  embedder?: EmbedBatcher;
  keepAlive: string | number;
  /** A request with nothing from its backend this long while the backend's health reads fail is hung (default 5 s). */
  hungAfterMs?: number;
  /** Jobs whose cancellation was heard before this agent started them. */
  wasCancelled(jobId: string): boolean;
  /**
   * The backend finished the attempt holding lock `token` (its final line came): its slot
   * there is free now, while this job's last writes (the terminal event, BullMQ's completion)
   * still go out. The pull scheduler claims the next job in parallel with them.
   */
  backendFreed?(token: string): void;
}

/** A failure that ends the job at once (no retry) with a stable code the API reads back. */
function jobFailure(code: string, message: string): UnrecoverableError {
  return new UnrecoverableError(formatJobFailure(code, message));
}

/** A request with nothing from its backend for this long, while the backend's health reads fail, is hung. */
const HUNG_AFTER_MS = 5_000;

/**
 * Whether a backend failure is the request's own doing (the backend answered 4xx: bad
 * options, a model it does not have, input the model refused): such a job fails. Anything
 * else — no answer, a cut connection, a stream that stopped, a 5xx — is the backend's, and
 * the job is restarted.
 */
function causedByRequest(error: unknown): boolean {
  return error instanceof BackendError && error.status !== undefined && error.status >= 400 && error.status < 500;
}

/** A failure of the connection itself (nothing answered, or it was cut): the backend looks down. */
function isTransportFailure(error: unknown): boolean {
  return error instanceof BackendError && (error.code === 'unavailable' || (error.status === undefined && error.cause !== undefined));
}

/**
 * The request that continues `streamed`, the answer so far: as a chat whose last message is
 * that partial answer from the assistant, which Ollama continues rather than answers anew
 * (a generate request becomes the chat of its system and prompt).
 */
function continuation(request: JobData['request'], streamed: string): Pick<GenerateRequest, 'messages'> {
  const history = request.messages ?? [
    ...(request.system !== undefined ? [{ role: 'system' as const, content: request.system }] : []),
    { role: 'user' as const, content: request.prompt ?? '' },
  ];
  return { messages: [...history, { role: 'assistant' as const, content: streamed }] };
}

/** The request's tools as the backend gets them: `none` sends none, a named choice only that tool. */
export function toolsFor(request: JobData['request']): Pick<GenerateRequest, 'tools' | 'tool_choice' | 'parallel_tool_calls'> {
  const tools = request.tools;
  const choice = request.tool_choice;
  if (tools === undefined || tools.length === 0 || choice === 'none') return {};
  const offered = typeof choice === 'object' ? tools.filter((tool) => tool.function.name === choice.function.name) : tools;
  return {
    tools: offered,
    ...(choice !== undefined && { tool_choice: choice }),
    ...(request.parallel_tool_calls !== undefined && { parallel_tool_calls: request.parallel_tool_calls }),
  };
}

/**
 * The history in Ollama's shape: calls without their OpenAI ids, and a `tool` turn that
 * answers a call by id (`tool_call_id`) named by that call's tool when it names none.
 */
export function backendMessages(messages: NonNullable<JobData['request']['messages']>): ChatMessageInput[] {
  const toolOfCall = new Map<string, string>();
  return messages.map((message) => {
    const out: ChatMessageInput = { role: message.role, content: message.content };
    if (message.images !== undefined) out.images = message.images;
    if (message.tool_calls !== undefined) {
      out.tool_calls = message.tool_calls.map((call) => {
        if (call.id !== undefined) toolOfCall.set(call.id, call.function.name);
        return { function: { name: call.function.name, arguments: call.function.arguments } };
      });
    }
    const toolName = message.tool_name ?? (message.tool_call_id !== undefined ? toolOfCall.get(message.tool_call_id) : undefined);
    if (toolName !== undefined) out.tool_name = toolName;
    return out;
  });
}

/** A backend's refusal of what the model cannot do (tools, embeddings, images, ...): Ollama says "does not support". */
function unsupportedByModel(error: unknown): boolean {
  return error instanceof BackendError && error.status === 400 && /does not support/i.test(error.message);
}

/**
 * Runs one dequeued job against the backend and streams its events, through the job's
 * transitions (`JobLifecycle`: claim, start, stream, finish). This is the BullMQ processor:
 * it declares `signal` so BullMQ hands it an AbortSignal that `worker.cancelJob` fires when
 * a cancellation reaches this agent; its lock token names the attempt, so a write from an
 * attempt that lost the job is refused and the backend request is aborted.
 */
export function createJobProcessor(deps: JobRunnerDeps) {
  const embedder = deps.embedder ?? new EmbedBatcher(deps.backend);
  return async function processJob(job: Job<unknown, JobResult>, token: string | undefined, signal?: AbortSignal): Promise<JobResult> {
    const jobId = job.id!;
    const log = deps.logger.child({ jobId });
    const attempt: Attempt = { token: token ?? `${deps.agentId}:${job.attemptsStarted}`, number: job.attemptsStarted };
    // The backend request's signal: BullMQ's (a cancellation heard here), or a refused write
    // (another attempt holds the job, or it ended). One controller rather than
    // AbortSignal.any, which costs more per job than the rest of this setup.
    const lost = new AbortController();
    let lostJob = false;
    signal?.addEventListener('abort', () => lost.abort(signal.reason), { once: true });
    const refused = (outcome: TransitionOutcome, type: string) => {
      if (outcome.taken || lostJob) return;
      lostJob = true;
      log.warn({ why: outcome.why, status: outcome.status, type }, 'job write refused: this attempt no longer holds the job; backend request aborted');
      lost.abort(
        jobFailure(
          JobErrorCode.cancelled,
          `agent ${deps.agentId} no longer holds the job (${outcome.why === 'fenced' ? 'another attempt does' : `it is ${outcome.status ?? 'gone'}`})`,
        ),
      );
    };
    // The claim goes out first and is not waited for: every later write is chained behind it
    // on the same connection, so Redis runs it first, and a refused claim (the job ended
    // before this agent got to it: a cancel raced the claim, or maintenance gave up on it)
    // aborts the backend request like any refused write, within a round trip.
    // A retry continues the text already streamed (`resumed`), unless the request asked to
    // start over (`on_restart: "restart"`, e.g. for one sample of a fixed seed).
    // A job with tools starts over too: a call is not text to continue, and a continuation
    // would offer the model a half answer it cannot call from.
    const requested = (job.data as { request?: { on_restart?: unknown; tools?: unknown; kind?: unknown } } | undefined)?.request;
    const restarts = requested?.on_restart === 'restart' || (Array.isArray(requested?.tools) && requested.tools.length > 0) || requested?.kind === 'embed';
    const continuing = job.attemptsStarted > 1 && !restarts;
    const claim = deps.lifecycle.claim(jobId, deps.agentId, attempt, JobErrorCode.agentLost, job.data, { resume: continuing });
    claim.then((outcome) => refused(outcome, 'claim')).catch((error) => log.error({ err: error }, 'could not write the claim'));
    let writes: Promise<unknown> = claim;
    // Writes go out in call order on one connection; keep the chain so the job is not
    // marked completed before its last event is in Redis. A failed write is logged here;
    // callers wait on `writes`, not on one write, so emit hands back no promise to drop.
    const emit = (event: Extract<StreamEventBody, { type: 'started' | 'token' | 'tool_call' }>): void => {
      const write = event.type === 'started' ? deps.lifecycle.start(jobId, attempt, event) : deps.lifecycle.stream(jobId, attempt, event);
      writes = writes.then(() => write);
      write.then((outcome) => refused(outcome, event.type)).catch((error) => log.error({ err: error, type: event.type }, 'could not write stream event'));
    };
    const finish = async (event: Extract<StreamEventBody, { type: 'done' | 'error' }>, result?: JobResult): Promise<void> => {
      await writes.catch(() => undefined);
      // The ledger's release is not waited for: BullMQ's moveToFinished can go out with it.
      const outcome = await deps.lifecycle.finish(jobId, attempt, event, result, { waitForLedger: false });
      refused(outcome, event.type);
    };
    const fail = async (code: string, message: string): Promise<never> => {
      await finish({ type: 'error', code, message }).catch((error) => log.error({ err: error }, 'could not write the terminal event'));
      throw jobFailure(code, message);
    };

    /**
     * The backend stopped answering mid-job (refused, reset, cut off, timed out, or answered a
     * server error): not the request's fault, so the job runs again elsewhere while the
     * attempt budget lasts (BullMQ's retry; the record goes back to queued and the next claim
     * writes `restarted`), and a dead backend makes this agent stop claiming. On the last
     * attempt it fails with backend_error.
     */
    const backendLost = async (error: unknown): Promise<never> => {
      if (isTransportFailure(error)) deps.inventory.markUnreachable(error);
      const message = error instanceof Error ? error.message : String(error);
      if (job.attemptsStarted >= (job.opts.attempts ?? 1)) return fail(JobErrorCode.backendError, message);
      await writes.catch(() => undefined);
      await deps.lifecycle.requeue(jobId, attempt).catch((caught: unknown) => log.error({ err: caught }, 'could not record the job as queued again'));
      log.warn({ err: error, attempt: job.attemptsStarted }, 'backend lost mid-job: the job goes back to its queue for another agent');
      throw new Error(`backend_lost: ${message}`);
    };

    const cancelHeard = () => signal?.aborted === true || deps.wasCancelled(jobId);
    const cancelled = () => {
      log.info('job cancelled; backend request aborted');
      return fail(JobErrorCode.cancelled, String(signal?.reason ?? 'cancelled'));
    };

    const parsed = JobData.safeParse(job.data);
    if (!parsed.success) {
      const detail = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
      log.warn({ detail }, 'job data failed validation');
      return fail(JobErrorCode.invalidJob, `job data is invalid: ${detail}`);
    }
    const data = parsed.data;
    const startedAt = Date.now();
    if (cancelHeard()) return fail(JobErrorCode.cancelled, 'cancelled before it started');
    if (data.deadline_at !== undefined && data.deadline_at <= startedAt) {
      return fail(JobErrorCode.deadlineExceeded, `deadline passed ${startedAt - data.deadline_at} ms before an agent could start the job`);
    }
    // The inventory model serving this queue: the model, or the old build's rollout copy.
    const queueKey = queueNameToModel(job.queueName);
    const served = splitQueueModel(queueKey).model === data.model ? deps.inventory.modelOfQueue(queueKey) : data.model;
    const backendModel = deps.inventory.backendName(served);
    if (!backendModel) return fail(JobErrorCode.modelNotFound, `agent ${deps.agentId} no longer has model ${data.model}`);
    // The backend would reload the model for the job's context and fail (or spill to CPU and
    // evict what this agent placed): refuse it by the rule admission applied, as admission would have.
    const contextBytes = jobContextVramBytes(deps.inventory.get(served)?.vramProfile, data.request.options);
    if (contextBytes !== undefined && contextBytes > deps.vramTotalBytes) {
      return fail(
        JobErrorCode.modelTooLarge,
        `model ${data.model} with num_ctx ${data.request.options?.num_ctx} needs ${formatGB(contextBytes)} GB of VRAM; agent ${deps.agentId} has ${formatGB(deps.vramTotalBytes)} GB`,
      );
    }
    // What the client already holds, when this attempt continues it (read once the claim
    // fenced the earlier attempt off, so it can no longer grow).
    const claimed = continuing ? await claim : undefined;
    const streamed = claimed?.taken && claimed.resumedAfter !== undefined ? await deps.lifecycle.streamedText(jobId, claimed.resumedAfter) : '';
    const request: GenerateRequest = {
      model: backendModel,
      keep_alive: deps.keepAlive,
      ...(streamed !== ''
        ? continuation(data.request, streamed)
        : data.request.messages
          ? { messages: backendMessages(data.request.messages) }
          : { prompt: data.request.prompt ?? '' }),
      ...(data.request.system !== undefined && (streamed === '' || data.request.messages) && { system: data.request.system }),
      ...(data.request.options !== undefined && { options: data.request.options }),
      ...(data.request.format !== undefined && { format: data.request.format }),
      ...(data.request.messages !== undefined && toolsFor(data.request)),
    };

    // Cold = the job waited for this node to load its model (the agent loads before it
    // claims, so "not loaded now" would always be false): the model became resident after
    // the job was submitted.
    const state = deps.inventory.get(served);
    const cold = !state?.loaded || state.loaded.loadedAt >= data.submitted_at;
    // The part of that load the job sat through in Redis: from its submission (or the load's
    // start, if later) to the load's end. It is load time, not queue time — counting it in
    // both would make queued + load exceed the time to the first token.
    const loadWaitedMs = cold && state?.loaded ? Math.min(state.lastLoadMs ?? 0, state.loaded.loadedAt - data.submitted_at) : 0;
    const endUsage = deps.inventory.track(served);
    // The answer's text: a continuing attempt's starts with what was streamed before it.
    let text = streamed;
    const toolCalls: ToolCallResult[] = [];
    let firstTokenAt: number | undefined;
    // A backend whose health reads fail (/api/tags, /api/ps: BACKEND_READ_TIMEOUT_MS) while this
    // request has had nothing from it for a while is hung: the request goes, the job continues
    // elsewhere. A stream still bringing chunks is left alone; silence mid-stream is the body
    // timeout's (BACKEND_STALL_MS). This catches a hang before the first chunk, which that
    // timeout cannot bound (a model load may take minutes).
    let lastChunkAt = Date.now();
    let backendHung: unknown;
    const onUnreachable = (error: unknown) => {
      if (backendHung !== undefined || Date.now() - lastChunkAt < (deps.hungAfterMs ?? HUNG_AFTER_MS)) return;
      backendHung = error;
      lost.abort(new BackendError('the backend stopped answering (its health reads fail) with this request pending', undefined, 'unavailable', { cause: error }));
    };
    deps.inventory.on('unreachable', onUnreachable);
    const coalescer = new TokenCoalescer(deps.tokenCoalesceMs, (chunk) => emit({ type: 'token', text: chunk }));

    /**
     * An embed job: one part of a batched `/api/embed` call. `started` goes out when the call
     * carrying it begins; `done` carries the vectors, in input order.
     */
    const runEmbed = async (): Promise<JobResult> => {
      const input = data.request.input ?? [];
      const part = await embedder.embed(
        {
          model: backendModel,
          input: typeof input === 'string' ? [input] : input,
          keep_alive: deps.keepAlive,
          ...(data.request.truncate !== undefined && { truncate: data.request.truncate }),
          ...(data.request.dimensions !== undefined && { dimensions: data.request.dimensions }),
          ...(data.request.options !== undefined && { options: data.request.options }),
        },
        {
          signal: lost.signal,
          onStart: () => {
            lastChunkAt = Date.now();
            emit({ type: 'started', agent: deps.agentId, cold, load_ms: cold && state?.loaded ? loadWaitedMs : 0 });
          },
        },
      );
      deps.inventory.markLoaded(served);
      const finishedAt = Date.now();
      const result: JobResult = {
        text: '',
        finish_reason: 'stop',
        embeddings: part.embeddings,
        usage: { prompt_tokens: part.prompt_tokens, completion_tokens: 0 },
        timings: {
          queued_ms: Math.max(0, startedAt - data.submitted_at - loadWaitedMs),
          load_ms: loadWaitedMs + part.load_ms,
          // The vectors are the first (and only) output.
          ttft_ms: Math.max(0, finishedAt - data.submitted_at),
          total_ms: Math.max(0, finishedAt - data.submitted_at),
        },
        agent: deps.agentId,
      };
      await finish({ type: 'done', finish_reason: 'stop', usage: result.usage, timings: result.timings, embeddings: part.embeddings }, result);
      if (lostJob) throw lost.signal.reason as Error;
      return result;
    };

    try {
      if (jobKind(data.request) === 'embed') return await runEmbed();
      for await (const chunk of deps.backend.generate(request, lost.signal)) {
        lastChunkAt = Date.now();
        if (chunk.type === 'token' || chunk.type === 'tool_calls') {
          if (firstTokenAt === undefined) {
            firstTokenAt = Date.now();
            deps.inventory.markLoaded(served);
            emit({ type: 'started', agent: deps.agentId, cold, load_ms: cold ? (state?.loaded ? loadWaitedMs : firstTokenAt - startedAt) : 0 });
          }
          if (chunk.type === 'token') {
            text += chunk.text;
            coalescer.push(chunk.text);
            continue;
          }
          // The text before a call goes out before it, so the event log keeps the model's order.
          coalescer.flush();
          for (const call of chunk.calls) {
            const index = toolCalls.length;
            const made: ToolCallResult = { id: `call_${jobId}_${index}`, name: call.name, arguments: call.arguments };
            toolCalls.push(made);
            emit({ type: 'tool_call', index, ...made });
          }
          continue;
        }
        coalescer.flush();
        if (token !== undefined) deps.backendFreed?.(token);
        const finishedAt = Date.now();
        const finishReason: FinishReason = toolCalls.length > 0 ? 'tool_calls' : chunk.done_reason === 'length' ? 'length' : 'stop';
        const result: JobResult = {
          text,
          finish_reason: finishReason,
          ...(toolCalls.length > 0 && { tool_calls: toolCalls }),
          usage: { prompt_tokens: chunk.prompt_tokens, completion_tokens: chunk.completion_tokens },
          timings: {
            queued_ms: Math.max(0, startedAt - data.submitted_at - loadWaitedMs),
            // Disjoint: the agent's load before the claim, and the backend's (if it had to load) after.
            load_ms: loadWaitedMs + chunk.load_ms,
            ttft_ms: Math.max(0, (firstTokenAt ?? finishedAt) - data.submitted_at),
            total_ms: Math.max(0, finishedAt - data.submitted_at),
          },
          agent: deps.agentId,
        };
        if (firstTokenAt === undefined) {
          emit({ type: 'started', agent: deps.agentId, cold, load_ms: result.timings.load_ms });
        }
        await finish({ type: 'done', finish_reason: result.finish_reason, usage: result.usage, timings: result.timings }, result);
        if (lostJob) throw lost.signal.reason as Error;
        return result;
      }
      // An abort can also end the stream quietly, as if the backend had closed it.
      if (cancelHeard()) return await cancelled();
      return await backendLost(new BackendError('backend closed the stream without a final line'));
    } catch (error) {
      if (error instanceof UnrecoverableError) throw error;
      coalescer.discard();
      // This attempt lost the job: nothing more is written (BullMQ's lock is not ours either).
      if (lostJob) throw lost.signal.reason as Error;
      if (backendHung !== undefined) return await backendLost(lost.signal.reason);
      // Whatever broke after a cancellation was heard (an abort, or the backend closing the
      // stream it was aborting), the job ended because the client asked it to.
      if (cancelHeard() || (error as Error).name === 'AbortError') return cancelled();
      log.warn({ err: error }, 'backend request failed');
      if (!causedByRequest(error)) return await backendLost(error);
      const message = error instanceof Error ? error.message : String(error);
      const code = unsupportedByModel(error)
        ? JobErrorCode.modelUnsupported
        : error instanceof BackendError && error.code === 'model_not_found'
          ? JobErrorCode.modelNotFound
          : JobErrorCode.backendError;
      return fail(code, message);
    } finally {
      deps.inventory.off('unreachable', onUnreachable);
      coalescer.discard();
      endUsage();
    }
  };
}
