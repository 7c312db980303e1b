/**
 * The simulated model's "thoughts": deterministic text for a seed and a prompt.
 *
 * A small fast PRNG (sfc32), seeded from sha256(seed, prompt), picks words from a fixed
 * vocabulary and shapes them into sentences. The same seed and prompt always give the same
 * tokens; another seed gives other tokens. One token is one word with its punctuation and a
 * trailing space, which is what each streamed line carries.
 *
 * Length: the answer has a "natural" length drawn from [minTokens, maxTokens]; it ends there
 * with done_reason "stop" (its last token closes the sentence, without trailing space).
 * `num_predict` > 0 caps it: when the cap is at or below the natural length the answer is cut
 * after exactly `num_predict` tokens with done_reason "length". num_predict ≤ 0 means no cap,
 * as in Ollama (-1 = until the model stops).
 */
import { createHash } from 'node:crypto';

export const VOCABULARY = [
  'the',
  'a',
  'model',
  'token',
  'queue',
  'request',
  'answer',
  'system',
  'memory',
  'graphics',
  'card',
  'server',
  'client',
  'stream',
  'value',
  'result',
  'worker',
  'batch',
  'layer',
  'weight',
  'context',
  'window',
  'prompt',
  'reply',
  'signal',
  'number',
  'vector',
  'matrix',
  'kernel',
  'cache',
  'is',
  'was',
  'will',
  'can',
  'should',
  'might',
  'does',
  'makes',
  'takes',
  'gives',
  'moves',
  'holds',
  'waits',
  'runs',
  'loads',
  'frees',
  'sends',
  'reads',
  'writes',
  'keeps',
  'quickly',
  'slowly',
  'often',
  'rarely',
  'always',
  'never',
  'simply',
  'clearly',
  'nearly',
  'still',
  'and',
  'or',
  'but',
  'so',
  'because',
  'while',
  'when',
  'then',
  'if',
  'since',
  'in',
  'on',
  'at',
  'from',
  'with',
  'into',
  'over',
  'under',
  'between',
  'through',
  'small',
  'large',
  'warm',
  'cold',
  'busy',
  'idle',
  'fast',
  'steady',
  'bright',
  'quiet',
  'first',
  'last',
  'next',
  'every',
  'each',
  'some',
  'many',
  'few',
  'other',
  'same',
  'river',
  'mountain',
  'garden',
  'harbor',
  'bridge',
  'forest',
  'valley',
  'meadow',
  'island',
  'station',
  'light',
  'sound',
  'time',
  'place',
  'story',
  'idea',
  'reason',
  'pattern',
  'balance',
  'rhythm',
  'we',
  'they',
  'it',
  'you',
  'this',
  'that',
  'these',
  'those',
  'there',
  'here',
  'explains',
  'suggests',
  'shows',
  'means',
  'follows',
  'returns',
  'changes',
  'grows',
  'settles',
  'turns',
  'careful',
  'simple',
  'useful',
  'gentle',
  'patient',
  'honest',
  'curious',
  'certain',
  'early',
  'late',
] as const;

export const VOCABULARY_SIZE = VOCABULARY.length;

/** Small Fast Counting PRNG (Chris Doty-Humphrey's sfc32): four 32-bit words of state. */
function sfc32(a: number, b: number, c: number, d: number): () => number {
  return () => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4_294_967_296;
  };
}

/** A PRNG in [0, 1) seeded from sha256(seed, text): the same on every run and machine. */
export function seededRandom(seed: number | bigint | string, prompt: string): () => number {
  const digest = createHash('sha256').update(`${seed}\u0000${prompt}`).digest();
  const random = sfc32(digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8), digest.readUInt32LE(12));
  for (let i = 0; i < 12; i++) random(); // let the state mix before use
  return random;
}

/** Ollama-ish prompt token count: about four characters per token, at least one. */
export function promptTokenCount(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

/** Fake but stable token ids for a prompt (what generate's `context` carries). */
export function promptTokenIds(text: string): number[] {
  const count = promptTokenCount(text);
  const ids: number[] = [];
  for (let i = 0; i < count; i++) {
    let hash = 2_166_136_261;
    for (let j = i * 4; j < Math.min(text.length, i * 4 + 4); j++) {
      hash = Math.imul(hash ^ text.charCodeAt(j), 16_777_619);
    }
    ids.push(1_000 + ((hash >>> 0) % 127_000));
  }
  return ids;
}

export interface GeneratedToken {
  text: string;
  /** Stable id of the token (its word), for generate's `context`. */
  id: number;
}

export interface ResponsePlan {
  /** How many tokens the answer has. */
  readonly count: number;
  readonly doneReason: 'stop' | 'length';
  /** The tokens, in order; each call starts from the first. */
  tokens(): Generator<GeneratedToken>;
}

export interface PlanInput {
  seed: number | bigint;
  prompt: string;
  /** options.num_predict; ≤ 0 or missing means no cap. */
  numPredict?: number | undefined;
  minTokens: number;
  maxTokens: number;
}

export function planResponse(input: PlanInput): ResponsePlan {
  const lengthRandom = seededRandom(input.seed, `length\u0000${input.prompt}`);
  const natural = input.minTokens + Math.floor(lengthRandom() * (input.maxTokens - input.minTokens + 1));
  const cap = input.numPredict !== undefined && input.numPredict > 0 ? input.numPredict : Number.POSITIVE_INFINITY;
  const count = Math.min(natural, cap);
  const doneReason = cap <= natural ? 'length' : 'stop';

  function* tokens(): Generator<GeneratedToken> {
    const random = seededRandom(input.seed, input.prompt);
    let leftInSentence = 0;
    for (let i = 0; i < count; i++) {
      const sentenceStart = leftInSentence === 0;
      if (sentenceStart) leftInSentence = 5 + Math.floor(random() * 10);
      const index = Math.floor(random() * VOCABULARY.length);
      const word = VOCABULARY[index] ?? 'the';
      leftInSentence--;
      const last = i === count - 1;
      let text = sentenceStart ? word.charAt(0).toUpperCase() + word.slice(1) : word;
      if (leftInSentence === 0 || (last && doneReason === 'stop')) text += '.';
      else if (leftInSentence > 2 && random() < 0.08) text += ',';
      if (!(last && doneReason === 'stop')) text += ' ';
      yield { text, id: 100 + index };
    }
  }

  return { count, doneReason, tokens };
}

/** A stable id for a token that is not a vocabulary word (fixed answers, JSON pieces). */
function textTokenId(text: string): number {
  let hash = 2_166_136_261;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 16_777_619);
  return 1_000 + ((hash >>> 0) % 127_000);
}

/** Prose as tokens: each word with its punctuation and the spaces after it. */
export function proseTokens(text: string): string[] {
  return text.match(/\S+\s*|\s+/g) ?? [];
}

/**
 * JSON text as tokens, roughly as a BPE tokenizer cuts it: a run of letters or of digits, or up
 * to three punctuation characters, each with the whitespace before it. They join back into the
 * text exactly.
 */
export function jsonTokens(text: string): string[] {
  return text.match(/\s*(?:[\p{L}\p{M}_]+|\p{N}+|[^\p{L}\p{M}\p{N}_\s]{1,3})|\s+/gu) ?? [];
}

/**
 * An answer whose text is decided in advance (a tool's result quoted, a JSON document, a
 * description of an image), played out as these tokens. `numPredict` > 0 cuts it after that
 * many tokens with done_reason "length" when it is at or below the token count (as for a
 * generated answer), so a JSON answer can end cut short, as Ollama's would.
 */
export function fixedTextPlan(tokens: readonly string[], numPredict?: number): ResponsePlan {
  const cap = numPredict !== undefined && numPredict > 0 ? numPredict : Number.POSITIVE_INFINITY;
  const count = Math.min(tokens.length, cap);
  const doneReason = cap <= tokens.length ? 'length' : 'stop';
  function* play(): Generator<GeneratedToken> {
    for (let i = 0; i < count; i++) {
      const text = tokens[i] as string;
      yield { text, id: textTokenId(text) };
    }
  }
  return { count, doneReason, tokens: play };
}

/** The whole text of a plan (all its tokens joined). */
export function planText(plan: ResponsePlan): string {
  let text = '';
  for (const token of plan.tokens()) text += token.text;
  return text;
}

/**
 * The rest of an answer whose beginning the request already holds (a chat ending in the
 * assistant's partial answer, which Ollama continues): when `prefix` is the start of the
 * answer this input would give, its remaining tokens, so an answer interrupted and continued
 * reads as if it had never stopped (deterministic for a seed); otherwise a fresh answer for
 * the prompt followed by the prefix.
 */
export function continuedPlan(input: PlanInput, prefix: string): ResponsePlan {
  return continuePlan(planResponse(input), prefix, () => planResponse({ ...input, prompt: `${input.prompt}\nassistant: ${prefix}` }));
}

/** continuedPlan for any answer: the rest of `whole` after `prefix`, or `fresh()` when it does not start so. */
export function continuePlan(whole: ResponsePlan, prefix: string, fresh: () => ResponsePlan): ResponsePlan {
  let consumed = '';
  let skip = 0;
  for (const token of whole.tokens()) {
    if (consumed.length >= prefix.length) break;
    consumed += token.text;
    skip++;
  }
  if (consumed !== prefix) return fresh();
  function* tokens(): Generator<GeneratedToken> {
    let index = 0;
    for (const token of whole.tokens()) if (index++ >= skip) yield token;
  }
  return { count: whole.count - skip, doneReason: whole.doneReason, tokens };
}
