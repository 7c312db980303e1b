import { describe, expect, it } from 'vitest';
import { jobContextVramBytes, vramNeedAtContext } from '@switchyard/protocol';
import { architectureFromShow, estimateVramBytes, kvBytesPerToken, vramProfile } from './vram-estimate.js';

const llama8bShow = {
  model_info: {
    'general.architecture': 'llama',
    'general.parameter_count': 8030261248,
    'llama.context_length': 131072,
    'llama.block_count': 32,
    'llama.attention.head_count': 32,
    'llama.attention.head_count_kv': 8,
    'llama.embedding_length': 4096,
  },
};

describe('VRAM estimate', () => {
  it('reads architecture numbers from /api/show', () => {
    expect(architectureFromShow(llama8bShow)).toMatchObject({ blockCount: 32, headCount: 32, headCountKv: 8, embeddingLength: 4096 });
    expect(architectureFromShow({})).toEqual(expect.objectContaining({ blockCount: undefined }));
  });

  it('computes 128 KiB of KV cache per token for Llama-3.1-8B', () => {
    expect(kvBytesPerToken(architectureFromShow(llama8bShow))).toBe(128 * 1024);
  });

  it('lands near Ollama’s ~5.8 GiB for Llama-3.1-8B Q4_K_M at 4k context', () => {
    const bytes = estimateVramBytes(4.92e9, architectureFromShow(llama8bShow), { numCtx: 4096, parallel: 1 });
    expect(bytes / 2 ** 30).toBeGreaterThan(5.3);
    expect(bytes / 2 ** 30).toBeLessThan(6.3);
  });

  it('grows with parallel slots and context, and never exceeds the trained context', () => {
    const arch = architectureFromShow(llama8bShow);
    const one = estimateVramBytes(4.92e9, arch, { numCtx: 4096, parallel: 1 });
    const four = estimateVramBytes(4.92e9, arch, { numCtx: 4096, parallel: 4 });
    expect(four - one).toBeGreaterThan(3 * 4096 * 128 * 1024);
    const small = architectureFromShow({ model_info: { ...llama8bShow.model_info, 'llama.context_length': 2048 } });
    expect(estimateVramBytes(4.92e9, small, { numCtx: 8192, parallel: 1 })).toBe(estimateVramBytes(4.92e9, small, { numCtx: 2048, parallel: 1 }));
  });

  it('falls back to a share of the weights without architecture numbers', () => {
    expect(estimateVramBytes(1e9, {}, { numCtx: 4096, parallel: 1 })).toBeGreaterThan(1.25e9);
  });

  it('is the shared context rule applied to its profile, so a job the API admits by it fits here by the same numbers', () => {
    const arch = architectureFromShow(llama8bShow);
    const profile = vramProfile(4.92e9, arch, 4)!;
    expect(profile).toMatchObject({ num_parallel: 4, context_length: 131072 });
    for (const numCtx of [2048, 4096, 32768, 200_000]) {
      expect(estimateVramBytes(4.92e9, arch, { numCtx, parallel: 4 })).toBe(vramNeedAtContext(profile, numCtx));
    }
    // llama3.1:8b at its full 128k context in 4 slots: ~104 GB, which no 80 GB node holds.
    expect(jobContextVramBytes(profile, { num_ctx: 131072 })! / 1e9).toBeGreaterThan(100);
  });

  it('has no profile without architecture numbers', () => {
    expect(vramProfile(1e9, {}, 1)).toBeUndefined();
  });
});
