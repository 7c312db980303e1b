import { describe, expect, it } from 'vitest';
import { continuedPlan, fixedTextPlan, jsonTokens, planResponse, planText, promptTokenCount, promptTokenIds, proseTokens } from './token-generator.js';

const text = (seed: number, prompt: string, numPredict?: number) =>
  [...planResponse({ seed, prompt, numPredict, minTokens: 16, maxTokens: 64 }).tokens()].map((token) => token.text).join('');

describe('planResponse', () => {
  it('is deterministic for a seed and a prompt', () => {
    expect(text(7, 'Why is the sky blue?')).toBe(text(7, 'Why is the sky blue?'));
  });

  it('changes with the seed and with the prompt', () => {
    expect(text(7, 'Why is the sky blue?')).not.toBe(text(8, 'Why is the sky blue?'));
    expect(text(7, 'Why is the sky blue?')).not.toBe(text(7, 'Why is grass green?'));
  });

  it('stops naturally inside [min, max] with "stop" and a closed sentence', () => {
    for (let seed = 0; seed < 50; seed++) {
      const plan = planResponse({ seed, prompt: 'p', minTokens: 16, maxTokens: 64 });
      const tokens = [...plan.tokens()];
      expect(plan.doneReason).toBe('stop');
      expect(tokens.length).toBe(plan.count);
      expect(plan.count).toBeGreaterThanOrEqual(16);
      expect(plan.count).toBeLessThanOrEqual(64);
      expect(tokens.at(-1)?.text.endsWith('.')).toBe(true);
    }
  });

  it('cuts at num_predict with "length"', () => {
    const plan = planResponse({ seed: 1, prompt: 'p', numPredict: 5, minTokens: 16, maxTokens: 64 });
    expect(plan.count).toBe(5);
    expect(plan.doneReason).toBe('length');
    expect([...plan.tokens()]).toHaveLength(5);
  });

  it('is "length" when num_predict equals the natural length, and ignores num_predict <= 0', () => {
    expect(planResponse({ seed: 1, prompt: 'p', numPredict: 20, minTokens: 20, maxTokens: 20 }).doneReason).toBe('length');
    const unlimited = planResponse({ seed: 1, prompt: 'p', numPredict: -1, minTokens: 20, maxTokens: 20 });
    expect(unlimited).toMatchObject({ count: 20, doneReason: 'stop' });
  });

  it('keeps a prefix when num_predict cuts the same answer shorter', () => {
    const full = text(3, 'prefix please');
    expect(full.startsWith(text(3, 'prefix please', 5))).toBe(true);
  });

  it('gives one word per token', () => {
    for (const token of planResponse({ seed: 2, prompt: 'p', minTokens: 30, maxTokens: 30 }).tokens()) {
      expect(token.text).toMatch(/^[A-Za-z]+[.,]? ?$/);
    }
  });
});

describe('prompt tokens', () => {
  it('counts about four characters per token, at least one', () => {
    expect(promptTokenCount('')).toBe(1);
    expect(promptTokenCount('abcd')).toBe(1);
    expect(promptTokenCount('abcde')).toBe(2);
    expect(promptTokenCount('x'.repeat(400))).toBe(100);
  });

  it('gives stable ids, one per counted token', () => {
    expect(promptTokenIds('Why is the sky blue?')).toEqual(promptTokenIds('Why is the sky blue?'));
    expect(promptTokenIds('Why is the sky blue?')).toHaveLength(promptTokenCount('Why is the sky blue?'));
  });
});

describe('continuedPlan (a chat ending in the assistant’s partial answer)', () => {
  const input = { seed: 3, prompt: 'user: go on', minTokens: 10, maxTokens: 20 };
  const textOf = (plan: ReturnType<typeof planResponse>) => [...plan.tokens()].map((token) => token.text).join('');

  it('continues a prefix of its own answer with the rest of it, so the whole reads as uninterrupted', () => {
    const whole = planResponse(input);
    const tokens = [...whole.tokens()];
    const prefix = tokens
      .slice(0, 4)
      .map((token) => token.text)
      .join('');
    const rest = continuedPlan(input, prefix);
    expect(rest.count).toBe(whole.count - 4);
    expect(prefix + textOf(rest)).toBe(textOf(whole));
    expect(rest.doneReason).toBe(whole.doneReason);
  });

  it('answers anew, deterministically, a prefix that is not its own', () => {
    const a = continuedPlan(input, 'Something else entirely ');
    const b = continuedPlan(input, 'Something else entirely ');
    expect(textOf(a)).toBe(textOf(b));
    expect(textOf(a)).not.toBe(textOf(planResponse(input)));
  });
});

describe('fixed answers (JSON, quoted tool results)', () => {
  const json = JSON.stringify({ city: 'Zürich', temp_c: 21.5, tags: ['a b', "it's"], nested: { ok: true, none: null } }, null, 1);

  it('cuts JSON into small tokens that join back into the text exactly', () => {
    const tokens = jsonTokens(json);
    expect(tokens.join('')).toBe(json);
    expect(tokens.length).toBeGreaterThan(20);
    for (const token of tokens) expect(token.trim().length).toBeLessThanOrEqual(8);
    expect(proseTokens('The tool  said "hi". Then ').join('')).toBe('The tool  said "hi". Then ');
    expect(proseTokens('a b')).toEqual(['a ', 'b']);
  });

  it('plays the text out whole ("stop"), or cut at num_predict ("length")', () => {
    const tokens = jsonTokens(json);
    const whole = fixedTextPlan(tokens);
    expect(whole).toMatchObject({ count: tokens.length, doneReason: 'stop' });
    expect(planText(whole)).toBe(json);
    expect(fixedTextPlan(tokens, 0).doneReason).toBe('stop');
    const cut = fixedTextPlan(tokens, 5);
    expect(cut).toMatchObject({ count: 5, doneReason: 'length' });
    expect(planText(cut)).toBe(tokens.slice(0, 5).join(''));
    expect(fixedTextPlan(tokens, tokens.length).doneReason).toBe('length');
    for (const token of cut.tokens()) expect(Number.isInteger(token.id)).toBe(true);
  });
});
