/**
 * (c) Switchyard: each request is a job submitted over REST (`POST /v1/jobs`) and read over
 * SSE (`GET /v1/jobs/:id/events`) until `done` or `error`, exactly as a client would. The
 * agents decide placement; the bench only watches.
 *
 * A 429/503 refusal is honoured like a well-behaved client: wait Retry-After (capped) and
 * submit again, a bounded number of times; the wait counts against the request.
 */
import type { StreamEvent, Timings } from '@switchyard/protocol';
import { consumeSse } from '../../common/sse.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import type { Policy } from '../policy.js';
import { isMemoryRefusal, type RequestRecord } from '../records.js';
import type { SwitchyardStack } from '../switchyard-stack.js';
import type { TraceRequest } from '../trace.js';

const MAX_SUBMIT_ATTEMPTS = 4;
const MAX_RETRY_AFTER_MS = 5_000;

export function switchyard(stack: SwitchyardStack): Policy {
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, connections: 1_024 });
  let refusals = 0;
  let restarts = 0;
  const agentCold = { cold: 0, warm: 0 };

  const submitJob = async (body: unknown, signal: AbortSignal): Promise<{ id: string; sentAt: number } | { failure: string }> => {
    for (let attempt = 1; ; attempt++) {
      let response;
      const sentAt = Date.now();
      try {
        response = await request(`${stack.apiUrl}/v1/jobs`, {
          dispatcher,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal,
        });
      } catch (error) {
        return { failure: signal.aborted ? 'timeout' : `submit: ${(error as Error).message}` };
      }
      const text = await response.body.text();
      if (response.statusCode === 202 || response.statusCode === 200) return { id: (JSON.parse(text) as { id: string }).id, sentAt };
      let code = '';
      let detail = '';
      let retryAfterS: number | undefined;
      try {
        const error = (JSON.parse(text) as { error?: { code?: string; message?: string; retry_after_s?: number } }).error;
        code = error?.code ?? '';
        detail = error?.message ?? '';
        retryAfterS = error?.retry_after_s;
      } catch {
        // not JSON
      }
      const header = response.headers['retry-after'];
      if (retryAfterS === undefined && typeof header === 'string' && Number.isFinite(Number(header))) retryAfterS = Number(header);
      if ((response.statusCode === 429 || response.statusCode === 503) && attempt < MAX_SUBMIT_ATTEMPTS) {
        refusals++;
        await sleep(Math.min(MAX_RETRY_AFTER_MS, Math.max(50, (retryAfterS ?? 1) * 1_000)), undefined, { signal }).catch(() => undefined);
        if (signal.aborted) return { failure: 'timeout' };
        continue;
      }
      return { failure: `http_${response.statusCode}${code ? `:${code}` : ''}${detail ? ` ${detail}` : ''}` };
    }
  };

  return {
    name: 'switchyard',
    async submit(trace: TraceRequest, signal: AbortSignal): Promise<RequestRecord> {
      const submitted = Date.now();
      const base = { id: trace.id, model: trace.model, warmup: trace.warmup, burst: trace.burst !== null, submitted, oom: 0, tokens: 0 };
      const job = await submitJob({ model: trace.model, prompt: trace.prompt, options: { seed: trace.seed } }, signal);
      if ('failure' in job) return { ...base, outcome: 'failed', failure: job.failure, finished: Date.now() };

      let firstToken: number | undefined;
      let tokens = 0;
      let agent: string | undefined;
      let cold: boolean | undefined;
      let timings: Timings | undefined;
      let failure: string | undefined;
      const onEvent = (event: StreamEvent): boolean => {
        switch (event.type) {
          case 'token':
            firstToken ??= Date.now();
            tokens++;
            return false;
          case 'started':
            agent = event.agent;
            cold = event.cold;
            return false;
          case 'restarted':
            restarts++;
            firstToken = undefined;
            tokens = 0;
            return false;
          case 'done':
            timings = event.timings;
            return true;
          case 'error':
            failure = `${event.code}: ${event.message}`;
            return true;
          default:
            return false;
        }
      };
      try {
        const response = await request(`${stack.apiUrl}/v1/jobs/${job.id}/events`, {
          dispatcher,
          headers: { accept: 'text/event-stream' },
          signal,
        });
        if (response.statusCode !== 200) {
          await response.body.dump();
          failure ??= `events: http_${response.statusCode}`;
        } else if (!(await consumeSse(response.body, onEvent))) {
          failure ??= 'event stream ended before done';
        }
      } catch (error) {
        failure ??= signal.aborted ? 'timeout' : `events: ${(error as Error).message}`;
      }
      const finished = Date.now();
      if (cold !== undefined) agentCold[cold ? 'cold' : 'warm']++;
      const node = agent !== undefined ? (stack.nodeOfAgent.get(agent) ?? agent) : undefined;
      const common = { ...base, tokens, ...(node !== undefined && { node }), ...(cold !== undefined && { agent_cold: cold }) };
      if (failure !== undefined || timings === undefined) {
        const oom = isMemoryRefusal(failure);
        return { ...common, outcome: 'failed', failure: oom ? 'oom' : (failure ?? 'no done event'), oom: oom ? 1 : 0, finished };
      }
      // The job reached a backend slot after waiting in Redis (queued_ms, from the API's
      // submitted_at ≈ when the accepted POST was sent) and then in the backend (load_ms =
      // Ollama's load_duration: arrival → holding a slot).
      return {
        ...common,
        outcome: 'completed',
        slot: job.sentAt + timings.queued_ms + timings.load_ms,
        ...(firstToken !== undefined && { first_token: firstToken }),
        finished,
      };
    },
    describe: () => ({ ...stack.describe(), refusals_retried: refusals, restarts, agent_reported: agentCold }),
    close: () => dispatcher.close(),
  };
}
