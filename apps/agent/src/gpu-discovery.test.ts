import { readFileSync, writeFileSync, chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { discoverGpus, parseNvidiaSmi } from './gpu-discovery.js';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

describe('parseNvidiaSmi', () => {
  it('reads one consumer GPU', () => {
    expect(parseNvidiaSmi(fixture('nvidia-smi-1x4090.txt'))).toEqual([
      { index: 0, name: 'NVIDIA GeForce RTX 4090', vram_total_bytes: 24564 * 2 ** 20, vram_used_bytes: 1023 * 2 ** 20 },
    ]);
  });

  it('reads several GPUs in order', () => {
    const gpus = parseNvidiaSmi(fixture('nvidia-smi-4xA100.txt'));
    expect(gpus.map((gpu) => gpu.index)).toEqual([0, 1, 2, 3]);
    expect(gpus[1]!.vram_used_bytes).toBe(40210 * 2 ** 20);
    expect(gpus.every((gpu) => gpu.vram_total_bytes === 81920 * 2 ** 20)).toBe(true);
  });

  it('keeps commas inside a GPU name', () => {
    expect(parseNvidiaSmi('0, Weird, Name, 100, 5\n')[0]!.name).toBe('Weird, Name');
  });

  it('refuses output it does not understand', () => {
    expect(() => parseNvidiaSmi('NVIDIA-SMI has failed because it could not communicate with the driver')).toThrow(/unexpected nvidia-smi line/);
  });
});

describe('discoverGpus', () => {
  it('falls back to configured VRAM when nvidia-smi is absent', async () => {
    const result = await discoverGpus({
      nvidiaSmiPath: '/nonexistent/nvidia-smi',
      configuredVramBytes: [24e9, 80e9],
      configuredName: 'sim',
    });
    expect(result.source).toBe('config');
    expect(result.gpus.map((gpu) => gpu.vram_total_bytes)).toEqual([24e9, 80e9]);
  });

  it('runs nvidia-smi when present', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'smi-'));
    const script = join(dir, 'nvidia-smi');
    writeFileSync(script, `#!/bin/sh\ncat '${new URL('./fixtures/nvidia-smi-4xA100.txt', import.meta.url).pathname}'\n`);
    chmodSync(script, 0o755);
    const result = await discoverGpus({ nvidiaSmiPath: script, configuredVramBytes: [1], configuredName: 'x' });
    expect(result.source).toBe('nvidia-smi');
    expect(result.gpus).toHaveLength(4);
  });
});
