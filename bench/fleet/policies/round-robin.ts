/**
 * (a) What a plain load balancer in front of several Ollama servers does: every request goes
 * to the next node in turn, whatever the model, and each Ollama keeps a model loaded for its
 * default keep_alive of 5 minutes of (trace) time after its last use. A request for a model
 * the node cannot hold fails with Ollama's 500; a load balancer does not retry a POST on a
 * 500 (nginx's proxy_next_upstream default), so it fails.
 */
import { Agent } from 'undici';
import type { FleetNode } from '../sim-fleet.js';
import { generateStream } from '../ollama-client.js';
import { scaledKeepAlive, type Policy } from '../policy.js';
import { isMemoryRefusal, type RequestRecord } from '../records.js';
import type { TraceRequest } from '../trace.js';

export const OLLAMA_DEFAULT_KEEP_ALIVE_S = 300;

export function roundRobin(nodes: readonly FleetNode[], timeScale: number): Policy {
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, connections: 512 });
  const keepAlive = scaledKeepAlive(OLLAMA_DEFAULT_KEEP_ALIVE_S, timeScale);
  let next = 0;
  return {
    name: 'round_robin',
    async submit(request: TraceRequest, signal: AbortSignal): Promise<RequestRecord> {
      const node = nodes[next++ % nodes.length] as FleetNode;
      const submitted = Date.now();
      const outcome = await generateStream(
        dispatcher,
        node.url,
        { model: request.model, prompt: request.prompt, keep_alive: keepAlive, options: { seed: request.seed } },
        signal,
      );
      const base = { id: request.id, model: request.model, warmup: request.warmup, burst: request.burst !== null, submitted, node: node.name, tokens: outcome.tokens };
      if (outcome.error !== undefined || outcome.loadDurationMs === undefined) {
        const oom = isMemoryRefusal(outcome.error);
        return {
          ...base,
          outcome: 'failed',
          failure: oom ? 'oom' : signal.aborted ? 'timeout' : `http_${outcome.status}: ${outcome.error}`,
          oom: oom ? 1 : 0,
          finished: Date.now(),
        };
      }
      return {
        ...base,
        outcome: 'completed',
        slot: submitted + outcome.loadDurationMs,
        ...(outcome.firstTokenAt !== undefined && { first_token: outcome.firstTokenAt }),
        ...(outcome.finishedAt !== undefined && { finished: outcome.finishedAt }),
        oom: 0,
      };
    },
    describe: () => ({ keep_alive_trace_s: OLLAMA_DEFAULT_KEEP_ALIVE_S, keep_alive_sent: keepAlive, retries_on_500: false }),
    close: () => dispatcher.close(),
  };
}
