/**
 * The fleet trace: who asks for which model when, deterministic from a seed.
 *
 * - Popularity is Zipf over the catalog (weight of rank r ∝ 1 / r^s): a few models take most
 *   requests and a long tail is asked for now and then — the shape multi-model fleets see.
 * - A compressed "day": the measured part of the trace is one day split into phases
 *   (night, morning, afternoon, evening). Each phase rotates the popularity ranking by
 *   `rotate_per_phase` places, so the models that were ranks 6–10 become the hot set and
 *   yesterday's hot set drops to the tail — the diurnal shift that forces placement to move.
 *   The arrival rate follows the day too: λ(t) = rate · (1 − a·cos 2πt/D), low at the ends,
 *   peaking mid-trace, averaging `rate_per_s`.
 * - Bursts: now and then a batch of requests for one model lands within seconds — sometimes
 *   a popular model, sometimes a tail model nobody has loaded (a batch job, a new user).
 * - A warm-up before the measured day (phase 0's ranking at the night rate), so results
 *   describe a running fleet, not one booting with empty GPUs.
 *
 * Times are trace seconds: the "real" seconds of the simulated world. The runner multiplies
 * them by the simulator's time_scale to get wall-clock time.
 */
import { exponential, shuffled, stream, uniformInt, type Random } from './prng.js';

export interface TraceParams {
  seed: number;
  /** Model names, in catalog order; the seed shuffles them into the base ranking. */
  models: readonly string[];
  /** Length of the measured part (one compressed day), trace seconds. */
  duration_s: number;
  /** Traffic before the measured part, excluded from the metrics. */
  warmup_s: number;
  phases: number;
  /** Mean steady arrival rate over the measured day, requests per trace second (bursts come on top). */
  rate_per_s: number;
  /** Depth of the day's rate swing, 0 ≤ a < 1. */
  diurnal_amplitude: number;
  /** Zipf exponent s. */
  zipf_s: number;
  /** Places the ranking rotates at each phase change. */
  rotate_per_phase: number;
  /** Mean trace seconds between bursts (Poisson), measured part only; 0 = no bursts. */
  burst_every_s: number;
  burst_size: readonly [number, number];
  /** A burst's requests spread uniformly over this many trace seconds. */
  burst_span_s: readonly [number, number];
  /** Share of bursts aimed at a tail model (lower half of the phase's ranking) instead of a Zipf draw. */
  burst_tail_share: number;
  /** Hard bound on the number of requests (load generation stays bounded whatever the knobs say). */
  max_requests: number;
}

export interface TracePhase {
  index: number;
  name: string;
  start_s: number;
  end_s: number;
  /** Model names, most popular first. */
  ranking: string[];
}

export interface TraceRequest {
  id: number;
  at_s: number;
  model: string;
  /** Phase whose ranking chose the model (warm-up uses phase 0). */
  phase: number;
  warmup: boolean;
  /** Index of the burst this request belongs to, or null for steady traffic. */
  burst: number | null;
  prompt: string;
  /** options.seed sent with the request, so answers (and their lengths) repeat across policies. */
  seed: number;
}

export interface TraceBurst {
  index: number;
  at_s: number;
  model: string;
  size: number;
  span_s: number;
  tail: boolean;
}

export interface Trace {
  params: TraceParams;
  phases: TracePhase[];
  bursts: TraceBurst[];
  requests: TraceRequest[];
  /** Total trace seconds (warm-up + measured day). */
  end_s: number;
  /** Requests cut by max_requests (the latest ones); 0 unless the knobs ask for too much. */
  dropped: number;
}

export const DEFAULT_TRACE_PARAMS: Omit<TraceParams, 'models'> = {
  seed: 42,
  duration_s: 960,
  warmup_s: 120,
  phases: 4,
  rate_per_s: 2,
  diurnal_amplitude: 0.35,
  zipf_s: 1.1,
  rotate_per_phase: 5,
  burst_every_s: 90,
  burst_size: [8, 24],
  burst_span_s: [2, 6],
  burst_tail_share: 0.4,
  max_requests: 6_000,
};

const PHASE_NAMES = ['night', 'morning', 'afternoon', 'evening'];

const PROMPTS = [
  'Summarize the incident report for ticket #{id} in three sentences.',
  'Write a unit test for the function described in request {id}.',
  'Translate the customer message {id} into plain English.',
  'Explain why the build for change {id} might be failing.',
  'Draft a short reply to support thread {id}.',
  'List the risks mentioned in design document {id}.',
  'Classify the sentiment of review {id}.',
  'Suggest a title for article {id}.',
];

/** Normalised Zipf probabilities for ranks 1..n. */
export function zipfProbabilities(n: number, s: number): number[] {
  const weights = Array.from({ length: n }, (_, index) => 1 / (index + 1) ** s);
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  return weights.map((weight) => weight / total);
}

function cumulative(probabilities: readonly number[]): number[] {
  let sum = 0;
  return probabilities.map((p) => (sum += p));
}

function pick(cdf: readonly number[], u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (u < (cdf[mid] as number)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function rotate<T>(items: readonly T[], by: number): T[] {
  const n = items.length;
  const shift = ((by % n) + n) % n;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

export function validateTraceParams(params: TraceParams): void {
  const problems: string[] = [];
  if (params.models.length < 2) problems.push('models: need at least 2');
  if (!(params.duration_s > 0)) problems.push('duration_s must be > 0');
  if (!(params.warmup_s >= 0)) problems.push('warmup_s must be ≥ 0');
  if (!Number.isInteger(params.phases) || params.phases < 1) problems.push('phases must be a positive integer');
  if (!(params.rate_per_s > 0)) problems.push('rate_per_s must be > 0');
  if (!(params.diurnal_amplitude >= 0 && params.diurnal_amplitude < 1)) problems.push('diurnal_amplitude must be in [0, 1)');
  if (!(params.zipf_s > 0)) problems.push('zipf_s must be > 0');
  if (!(params.burst_every_s >= 0)) problems.push('burst_every_s must be ≥ 0');
  if (params.burst_size[0] < 1 || params.burst_size[0] > params.burst_size[1]) problems.push('burst_size must be [min ≥ 1, max ≥ min]');
  if (params.burst_span_s[0] < 0 || params.burst_span_s[0] > params.burst_span_s[1]) problems.push('burst_span_s must be [min ≥ 0, max ≥ min]');
  if (!(params.max_requests >= 1)) problems.push('max_requests must be ≥ 1');
  if (problems.length > 0) throw new Error(`invalid trace parameters: ${problems.join('; ')}`);
}

export function generateTrace(params: TraceParams): Trace {
  validateTraceParams(params);
  const { seed, warmup_s: warmup, duration_s: day } = params;
  const end = warmup + day;
  const base = shuffled(params.models, stream(seed, 'ranking'));
  const phaseLength = day / params.phases;
  const phases: TracePhase[] = Array.from({ length: params.phases }, (_, index) => ({
    index,
    name: params.phases === PHASE_NAMES.length ? (PHASE_NAMES[index] as string) : `phase-${index}`,
    start_s: warmup + index * phaseLength,
    end_s: warmup + (index + 1) * phaseLength,
    ranking: rotate(base, index * params.rotate_per_phase),
  }));
  const phaseAt = (t: number): TracePhase => {
    if (t < warmup) return phases[0] as TracePhase;
    const index = Math.min(params.phases - 1, Math.floor((t - warmup) / phaseLength));
    return phases[index] as TracePhase;
  };
  const probabilities = zipfProbabilities(params.models.length, params.zipf_s);
  const cdf = cumulative(probabilities);
  const zipfModel = (random: Random, phase: TracePhase) => phase.ranking[pick(cdf, random())] as string;

  const rateAt = (t: number) => {
    const a = params.diurnal_amplitude;
    if (t < warmup) return params.rate_per_s * (1 - a);
    return params.rate_per_s * (1 - a * Math.cos((2 * Math.PI * (t - warmup)) / day));
  };
  const maxRate = params.rate_per_s * (1 + params.diurnal_amplitude);

  type Draft = Omit<TraceRequest, 'id' | 'prompt' | 'seed'>;
  const drafts: Draft[] = [];

  // Steady traffic: a non-homogeneous Poisson process by thinning (Lewis & Shedler).
  const arrivals = stream(seed, 'arrivals');
  const accept = stream(seed, 'thinning');
  const choose = stream(seed, 'models');
  for (let t = exponential(arrivals, maxRate); t < end; t += exponential(arrivals, maxRate)) {
    if (accept() * maxRate > rateAt(t)) continue;
    const phase = phaseAt(t);
    drafts.push({ at_s: t, model: zipfModel(choose, phase), phase: phase.index, warmup: t < warmup, burst: null });
  }

  // Bursts, in the measured day only.
  const bursts: TraceBurst[] = [];
  if (params.burst_every_s > 0) {
    const timing = stream(seed, 'bursts');
    const shape = stream(seed, 'burst-shape');
    for (let t = warmup + exponential(timing, 1 / params.burst_every_s); t < end; t += exponential(timing, 1 / params.burst_every_s)) {
      const phase = phaseAt(t);
      const tail = shape() < params.burst_tail_share;
      const half = Math.floor(phase.ranking.length / 2);
      const model = tail ? (phase.ranking[half + Math.floor(shape() * (phase.ranking.length - half))] as string) : zipfModel(shape, phase);
      const size = uniformInt(shape, params.burst_size[0], params.burst_size[1]);
      const span = params.burst_span_s[0] + shape() * (params.burst_span_s[1] - params.burst_span_s[0]);
      const index = bursts.length;
      bursts.push({ index, at_s: t, model, size, span_s: span, tail });
      for (let i = 0; i < size; i++) {
        const at = Math.min(end - 1e-6, t + shape() * span);
        drafts.push({ at_s: at, model, phase: phase.index, warmup: false, burst: index });
      }
    }
  }

  drafts.sort((a, b) => a.at_s - b.at_s);
  const prompts = stream(seed, 'prompts');
  const requests: TraceRequest[] = drafts.slice(0, params.max_requests).map((draft, id) => ({
    id,
    ...draft,
    prompt: (PROMPTS[Math.floor(prompts() * PROMPTS.length)] as string).replace('{id}', String(id)),
    seed: id,
  }));
  return { params, phases, bursts, requests, end_s: end, dropped: drafts.length - requests.length };
}

/** Counts per model, most requested first; for reports and tests. */
export function modelCounts(requests: readonly TraceRequest[]): Array<{ model: string; requests: number }> {
  const counts = new Map<string, number>();
  for (const request of requests) counts.set(request.model, (counts.get(request.model) ?? 0) + 1);
  return [...counts.entries()].map(([model, n]) => ({ model, requests: n })).sort((a, b) => b.requests - a.requests || a.model.localeCompare(b.model));
}
