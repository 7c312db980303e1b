import { describe, expect, it } from 'vitest';
import { jobContextVramBytes, vramNeedAtContext, type VramProfile } from './vram-need.js';

const profile: VramProfile = { fixed_bytes: 5e9, bytes_per_token: 200_000, num_parallel: 4, context_length: 131_072 };

describe('VRAM need at a context', () => {
  it('adds the per-token cost for every token of context in every slot', () => {
    expect(vramNeedAtContext(profile, 4096)).toBe(5e9 + 200_000 * 4096 * 4);
    expect(vramNeedAtContext({ ...profile, num_parallel: 1 }, 4096)).toBe(5e9 + 200_000 * 4096);
    expect(vramNeedAtContext(profile, 8192) - vramNeedAtContext(profile, 4096)).toBe(200_000 * 4096 * 4);
  });

  it('loads a num_ctx beyond the trained context at the trained context, as Ollama caps it', () => {
    expect(vramNeedAtContext(profile, 1_000_000)).toBe(vramNeedAtContext(profile, 131_072));
    const { context_length: _, ...uncapped } = profile;
    expect(vramNeedAtContext(uncapped, 1_000_000)).toBe(5e9 + 200_000 * 1_000_000 * 4);
  });

  it('rounds up to whole bytes', () => {
    expect(vramNeedAtContext({ fixed_bytes: 0.5, bytes_per_token: 0.25, num_parallel: 1 }, 1)).toBe(1);
  });
});

describe("a job's context need", () => {
  it('is the need at the num_ctx the job asks', () => {
    expect(jobContextVramBytes(profile, { num_ctx: 131_072 })).toBe(vramNeedAtContext(profile, 131_072));
    expect(jobContextVramBytes(profile, { num_ctx: 512 })).toBe(vramNeedAtContext(profile, 512));
  });

  it('is unknown when the job asks no context, or the node reported no profile (no extra refusal)', () => {
    expect(jobContextVramBytes(profile, undefined)).toBeUndefined();
    expect(jobContextVramBytes(profile, {})).toBeUndefined();
    expect(jobContextVramBytes(undefined, { num_ctx: 131_072 })).toBeUndefined();
    expect(jobContextVramBytes(profile, { num_ctx: 0 })).toBeUndefined();
  });
});
