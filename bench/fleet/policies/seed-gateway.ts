/**
 * (b) The seed article's gateway: each model is pinned to one worker — the least-loaded one
 * (least VRAM in use per `/api/ps`, then fewest models pinned, then node order) at the
 * moment the model is first requested — and every request for it goes there. Idle models are
 * unloaded after a sliding window: each request sends keep_alive = the window, so the
 * worker's Ollama unloads the model once it has been idle that long.
 *
 * The gateway does not know model sizes. When its worker answers that the model needs more
 * memory than the GPU has, the gateway counts the refusal, re-pins the model to the
 * least-loaded worker it has not yet seen refuse it, and retries there. Pins are otherwise
 * sticky: a model stays with its worker after the window unloads it.
 */
import { Agent } from 'undici';
import type { FleetNode } from '../sim-fleet.js';
import { generateStream, residentBytes } from '../ollama-client.js';
import { scaledKeepAlive, type Policy } from '../policy.js';
import { isMemoryRefusal, type RequestRecord } from '../records.js';
import type { TraceRequest } from '../trace.js';

export function seedGateway(nodes: readonly FleetNode[], timeScale: number, idleWindowS: number): Policy {
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, connections: 512 });
  const keepAlive = scaledKeepAlive(idleWindowS, timeScale);
  /** model → node index; a promise so a burst of first requests pins once. */
  const pins = new Map<string, Promise<number | undefined>>();
  const refused = new Map<string, Set<number>>();
  const pinCount = new Array<number>(nodes.length).fill(0);
  let repins = 0;

  const choose = async (model: string): Promise<number | undefined> => {
    const excluded = refused.get(model) ?? new Set<number>();
    const candidates = nodes.map((_, index) => index).filter((index) => !excluded.has(index));
    if (candidates.length === 0) return undefined;
    const used = await Promise.all(candidates.map((index) => residentBytes(dispatcher, (nodes[index] as FleetNode).url).catch(() => Number.POSITIVE_INFINITY)));
    let best = candidates[0] as number;
    let bestUsed = used[0] as number;
    candidates.forEach((index, i) => {
      const u = used[i] as number;
      if (u < bestUsed || (u === bestUsed && (pinCount[index] as number) < (pinCount[best] as number))) {
        best = index;
        bestUsed = u;
      }
    });
    pinCount[best] = (pinCount[best] as number) + 1;
    return best;
  };
  const pinFor = (model: string): Promise<number | undefined> => {
    let pin = pins.get(model);
    if (!pin) {
      pin = choose(model);
      pins.set(model, pin);
    }
    return pin;
  };

  return {
    name: 'seed_gateway',
    async submit(request: TraceRequest, signal: AbortSignal): Promise<RequestRecord> {
      const submitted = Date.now();
      const base = { id: request.id, model: request.model, warmup: request.warmup, burst: request.burst !== null, submitted };
      let oom = 0;
      let lastNode: string | undefined;
      for (;;) {
        const pin = pinFor(request.model);
        const index = await pin;
        if (index === undefined) return { ...base, outcome: 'failed', failure: 'oom', oom, tokens: 0, finished: Date.now(), ...(lastNode && { node: lastNode }) };
        const node = nodes[index] as FleetNode;
        lastNode = node.name;
        // A retry after a refusal starts later than the submission; the slot is timed from the attempt.
        const attemptAt = Date.now();
        const outcome = await generateStream(
          dispatcher,
          node.url,
          { model: request.model, prompt: request.prompt, keep_alive: keepAlive, options: { seed: request.seed } },
          signal,
        );
        if (isMemoryRefusal(outcome.error)) {
          oom++;
          const set = refused.get(request.model) ?? new Set<number>();
          set.add(index);
          refused.set(request.model, set);
          // Re-pin once, however many requests saw the same refusal.
          if (pins.get(request.model) === pin) {
            pins.delete(request.model);
            pinCount[index] = (pinCount[index] as number) - 1;
            repins++;
          }
          continue;
        }
        if (outcome.error !== undefined || outcome.loadDurationMs === undefined) {
          return {
            ...base,
            outcome: 'failed',
            failure: signal.aborted ? 'timeout' : `http_${outcome.status}: ${outcome.error}`,
            node: node.name,
            oom,
            tokens: outcome.tokens,
            finished: Date.now(),
          };
        }
        return {
          ...base,
          outcome: 'completed',
          node: node.name,
          slot: attemptAt + outcome.loadDurationMs,
          ...(outcome.firstTokenAt !== undefined && { first_token: outcome.firstTokenAt }),
          ...(outcome.finishedAt !== undefined && { finished: outcome.finishedAt }),
          oom,
          tokens: outcome.tokens,
        };
      }
    },
    describe: () => ({
      idle_window_trace_s: idleWindowS,
      keep_alive_sent: keepAlive,
      repins,
      pins_per_node: Object.fromEntries(nodes.map((node, index) => [node.name, pinCount[index]])),
    }),
    close: () => dispatcher.close(),
  };
}
