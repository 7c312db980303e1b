import { UnrecoverableError, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { BackendError, type Backend, type GenerateRequest } from '@switchyard/backends';
import type { EventLog } from '@switchyard/redis';
import {
  JobData,
  JobErrorCode,
  formatGB,
  formatJobFailure,
  jobContextVramBytes,
  type FinishReason,
  type JobResult,
  type StreamEventBody,
} from '@switchyard/protocol';
import { TokenCoalescer } from './token-coalescer.js';
import type { ModelInventory } from './model-inventory.js';

export interface JobRunnerDeps {
  agentId: string;
  backend: Backend;
  events: EventLog;
  inventory: ModelInventory;
  logger: Logger;
  /** Total VRAM of the node (all GPUs), against which a job's own context is judged. */
  vramTotalBytes: number;
  tokenCoalesceMs: number;
  keepAlive: string | number;
  /** Jobs whose cancellation was heard before this agent started them. */
  wasCancelled(jobId: string): boolean;
}

/** A failure that ends the job at once (no retry) with a stable code the API reads back. */
function jobFailure(code: string, message: string): UnrecoverableError {
  return new UnrecoverableError(formatJobFailure(code, message));
}

/**
 * Runs one dequeued job against the backend and streams its events. This is the BullMQ
 * processor: it declares `signal` so BullMQ hands it an AbortSignal that
 * `worker.cancelJob` fires when a cancellation reaches this agent.
 */
export function createJobProcessor(deps: JobRunnerDeps) {
  return async function processJob(job: Job<unknown, JobResult>, _token: string | undefined, signal?: AbortSignal): Promise<JobResult> {
    const jobId = job.id!;
    const log = deps.logger.child({ jobId });
    let writes: Promise<unknown> = Promise.resolve();
    // Appends go out in call order on one connection; keep the chain so the job is not
    // marked completed before its last event is in Redis. A failed write is logged here;
    // callers wait on `writes`, not on one write, so emit hands back no promise to drop.
    const emit = (event: StreamEventBody): void => {
      const write = deps.events.append(jobId, event);
      writes = writes.then(() => write);
      write.catch((error) => log.error({ err: error, type: event.type }, 'could not write stream event'));
    };
    const fail = async (code: string, message: string): Promise<never> => {
      emit({ type: 'error', code, message });
      await writes.catch(() => undefined);
      throw jobFailure(code, message);
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
    const backendModel = deps.inventory.backendName(data.model);
    if (!backendModel) return fail(JobErrorCode.modelNotFound, `agent ${deps.agentId} no longer has model ${data.model}`);
    // The backend would reload the model for the job's context and fail (or spill to CPU and
    // evict what this agent placed): refuse it by the rule admission applied, as admission would have.
    const contextBytes = jobContextVramBytes(deps.inventory.get(data.model)?.vramProfile, data.request.options);
    if (contextBytes !== undefined && contextBytes > deps.vramTotalBytes) {
      return fail(
        JobErrorCode.modelTooLarge,
        `model ${data.model} with num_ctx ${data.request.options?.num_ctx} needs ${formatGB(contextBytes)} GB of VRAM; agent ${deps.agentId} has ${formatGB(deps.vramTotalBytes)} GB`,
      );
    }
    if (job.attemptsStarted > 1) {
      emit({ type: 'restarted', reason: JobErrorCode.agentLost, attempt: job.attemptsStarted });
    }

    const request: GenerateRequest = {
      model: backendModel,
      keep_alive: deps.keepAlive,
      ...(data.request.messages ? { messages: data.request.messages } : { prompt: data.request.prompt ?? '' }),
      ...(data.request.system !== undefined && { system: data.request.system }),
      ...(data.request.options !== undefined && { options: data.request.options }),
      ...(data.request.format !== undefined && { format: data.request.format }),
    };

    // Cold = the job waited for this node to load its model (the agent loads before it
    // claims, so "not loaded now" would always be false): the model became resident after
    // the job was submitted.
    const state = deps.inventory.get(data.model);
    const cold = !state?.loaded || state.loaded.loadedAt >= data.submitted_at;
    // The part of that load the job sat through in Redis: from its submission (or the load's
    // start, if later) to the load's end. It is load time, not queue time — counting it in
    // both would make queued + load exceed the time to the first token.
    const loadWaitedMs = cold && state?.loaded ? Math.min(state.lastLoadMs ?? 0, state.loaded.loadedAt - data.submitted_at) : 0;
    const endUsage = deps.inventory.track(data.model);
    let text = '';
    let firstTokenAt: number | undefined;
    const coalescer = new TokenCoalescer(deps.tokenCoalesceMs, (chunk) => emit({ type: 'token', text: chunk }));
    try {
      for await (const chunk of deps.backend.generate(request, signal)) {
        if (chunk.type === 'token') {
          if (firstTokenAt === undefined) {
            firstTokenAt = Date.now();
            deps.inventory.markLoaded(data.model);
            emit({ type: 'started', agent: deps.agentId, cold, load_ms: cold ? (state?.loaded ? loadWaitedMs : firstTokenAt - startedAt) : 0 });
          }
          text += chunk.text;
          coalescer.push(chunk.text);
          continue;
        }
        coalescer.flush();
        const finishedAt = Date.now();
        const finishReason: FinishReason = chunk.done_reason === 'length' ? 'length' : 'stop';
        const result: JobResult = {
          text,
          finish_reason: finishReason,
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
        emit({ type: 'done', finish_reason: result.finish_reason, usage: result.usage, timings: result.timings });
        await writes;
        return result;
      }
      // An abort can also end the stream quietly, as if the backend had closed it.
      if (cancelHeard()) return await cancelled();
      return await fail(JobErrorCode.backendError, 'backend closed the stream without a final line');
    } catch (error) {
      if (error instanceof UnrecoverableError) throw error;
      coalescer.discard();
      // Whatever broke after a cancellation was heard (an abort, or the backend closing the
      // stream it was aborting), the job ended because the client asked it to.
      if (cancelHeard() || (error as Error).name === 'AbortError') return cancelled();
      const message = error instanceof Error ? error.message : String(error);
      log.warn({ err: error }, 'backend request failed');
      const code = error instanceof BackendError && error.code === 'model_not_found' ? JobErrorCode.modelNotFound : JobErrorCode.backendError;
      return fail(code, message);
    } finally {
      coalescer.discard();
      endUsage();
    }
  };
}
