import { describe, expect, it } from 'vitest';
import { vramNeedAtContext, type AgentHeartbeat, type AvailableModel, type VramProfile } from '@switchyard/protocol';
import { ApiError } from './errors.js';
import { placeModel } from './model-admission.js';

const MODEL = 'llama3.1:8b';
/** Roughly llama3.1:8b in 4 slots: ~8.7 GB at the default 4k context, ~104 GB at its full 128k. */
const PROFILE: VramProfile = { fixed_bytes: 5.43e9, bytes_per_token: 198_656, num_parallel: 4, context_length: 131_072 };

function agent(id: string, vramBytes: number, entry: Partial<AvailableModel> = {}): AgentHeartbeat {
  const need = vramNeedAtContext(PROFILE, 4096);
  return {
    id,
    version: 'test',
    state: 'ready',
    backend: { kind: 'ollama', url: 'http://127.0.0.1:1' },
    gpus: [{ index: 0, name: 'gpu', vram_total_bytes: vramBytes, vram_used_bytes: 0 }],
    slots: 4,
    in_flight: 0,
    models_loaded: [],
    models_available: [{ name: MODEL, digest: 'sha256:abc', size_bytes: 4.92e9, vram_need_bytes: need, fits: need <= vramBytes, vram_profile: PROFILE, ...entry }],
    vram: { total_bytes: vramBytes, used_bytes: 0, free_bytes: vramBytes },
    started_at: 0,
    updated_at: 0,
  };
}

function refusal(run: () => unknown): ApiError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ApiError);
    return error as ApiError;
  }
  throw new Error('expected a refusal');
}

describe('placeModel: a job’s own context at submit', () => {
  const fleet = [agent('small', 24e9), agent('large', 80e9)];

  it('refuses a num_ctx no node can hold, naming the need and the largest node', () => {
    const error = refusal(() => placeModel(fleet, MODEL, undefined, { num_ctx: 131_072 }));
    expect(error.code).toBe('model_too_large');
    const needGb = (vramNeedAtContext(PROFILE, 131_072) / 1e9).toFixed(1);
    expect(error.message).toBe(`model ${MODEL} with num_ctx 131072 needs ${needGb} GB of VRAM; the largest GPU node that has it offers 80.0 GB`);
  });

  it('caps num_ctx at the trained context, as the backend does', () => {
    const capped = refusal(() => placeModel(fleet, MODEL, undefined, { num_ctx: 10_000_000 }));
    expect(capped.message).toContain(`needs ${(vramNeedAtContext(PROFILE, 131_072) / 1e9).toFixed(1)} GB`);
  });

  it('admits a context that only the largest node holds, a modest one, and a job that asks none', () => {
    expect(placeModel(fleet, MODEL, undefined, { num_ctx: 65_536 })).toEqual({ queueKey: MODEL });
    expect(() => placeModel([fleet[0]!], MODEL, undefined, { num_ctx: 65_536 })).toThrow(/offers 24\.0 GB/);
    expect(placeModel([fleet[0]!], MODEL, undefined, { num_ctx: 8192 })).toEqual({ queueKey: MODEL });
    expect(placeModel([fleet[0]!], MODEL, undefined, { temperature: 0 })).toEqual({ queueKey: MODEL });
  });

  it('judges only nodes with the pinned digest', () => {
    const pinned = [agent('small', 24e9, { digest: `sha256:${'d'.repeat(64)}` }), agent('large', 80e9)];
    expect(() => placeModel(pinned, MODEL, 'dddddddddddd', { num_ctx: 65_536 })).toThrow(/with num_ctx 65536 .*offers 24\.0 GB/);
  });

  it('refuses nothing extra when heartbeats carry no profile (older agent, unknown architecture)', () => {
    const older = [agent('old', 24e9, { vram_profile: undefined })];
    expect(placeModel(older, MODEL, undefined, { num_ctx: 131_072 })).toEqual({ queueKey: MODEL });
  });

  it('still refuses a model that never fits, naming its own need when the job asks no context', () => {
    const tooBig = [agent('tiny', 8e9, { fits: false })];
    const error = refusal(() => placeModel(tooBig, MODEL));
    expect(error.message).toMatch(/^model llama3\.1:8b needs 8\.7 GB of VRAM; the largest GPU node that has it offers 8\.0 GB$/);
  });
});
