import { readFileSync, writeFileSync, chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentHeartbeat, type GpuInfo } from '@switchyard/protocol';
import { GpuStatsMonitor, NVIDIA_SMI_FIELDS, NVIDIA_SMI_VRAM_FIELDS, discoverGpus, nvidiaSmiArgs, parseNvidiaSmi } from './gpu-discovery.js';

const MIB = 2 ** 20;
const fixturePath = (name: string) => new URL(`./fixtures/${name}`, import.meta.url).pathname;
const fixture = (name: string) => readFileSync(fixturePath(name), 'utf8');

/** An nvidia-smi that prints a recorded output; with `vramOnly`, one that refuses the live fields as an old driver does. */
function fakeNvidiaSmi(body: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'smi-'));
  const script = join(dir, 'nvidia-smi');
  writeFileSync(script, `#!/bin/sh\n${body}\n`);
  chmodSync(script, 0o755);
  return script;
}

describe('parseNvidiaSmi (VRAM query, recorded before the live fields were asked for)', () => {
  it('reads one consumer GPU', () => {
    expect(parseNvidiaSmi(fixture('nvidia-smi-1x4090.txt'), NVIDIA_SMI_VRAM_FIELDS)).toEqual([
      { index: 0, name: 'NVIDIA GeForce RTX 4090', vram_total_bytes: 24564 * MIB, vram_used_bytes: 1023 * MIB },
    ]);
  });

  it('reads several GPUs in order', () => {
    const gpus = parseNvidiaSmi(fixture('nvidia-smi-4xA100.txt'), NVIDIA_SMI_VRAM_FIELDS);
    expect(gpus.map((gpu) => gpu.index)).toEqual([0, 1, 2, 3]);
    expect(gpus[1]!.vram_used_bytes).toBe(40210 * MIB);
    expect(gpus.every((gpu) => gpu.vram_total_bytes === 81920 * MIB)).toBe(true);
  });

  it('keeps commas inside a GPU name', () => {
    expect(parseNvidiaSmi('0, Weird, Name, 100, 5\n', NVIDIA_SMI_VRAM_FIELDS)[0]!.name).toBe('Weird, Name');
    expect(parseNvidiaSmi('0, Weird, Name, 100, 5, 1, 30, 20.5, 70\n')[0]).toMatchObject({ name: 'Weird, Name', utilization_percent: 1 });
  });

  it('refuses output it does not understand', () => {
    expect(() => parseNvidiaSmi('NVIDIA-SMI has failed because it could not communicate with the driver')).toThrow(/unexpected nvidia-smi line/);
    // The VRAM-only answer read as the full query: too few fields.
    expect(() => parseNvidiaSmi(fixture('nvidia-smi-1x4090.txt'))).toThrow(/unexpected nvidia-smi line/);
    expect(() => parseNvidiaSmi('0, GPU, 100, 5, lots, 30, 20.5, 70\n')).toThrow(/unexpected nvidia-smi line/);
  });
});

describe('parseNvidiaSmi (utilisation, temperature and power)', () => {
  it('asks nvidia-smi for them', () => {
    expect(nvidiaSmiArgs()).toEqual([
      '--query-gpu=index,name,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw,power.limit',
      '--format=csv,noheader,nounits',
    ]);
  });

  it('reads one GPU', () => {
    expect(parseNvidiaSmi(fixture('nvidia-smi-stats-1x4090.txt'))).toEqual([
      {
        index: 0,
        name: 'NVIDIA GeForce RTX 4090',
        vram_total_bytes: 24564 * MIB,
        vram_used_bytes: 1023 * MIB,
        utilization_percent: 3,
        temperature_c: 41,
        power_w: 28.52,
        power_limit_w: 450,
      },
    ]);
  });

  it('reads two GPUs, each its own figures', () => {
    const gpus = parseNvidiaSmi(fixture('nvidia-smi-stats-2xL40S.txt'));
    expect(gpus).toEqual([
      {
        index: 0,
        name: 'NVIDIA L40S',
        vram_total_bytes: 46068 * MIB,
        vram_used_bytes: 38211 * MIB,
        utilization_percent: 97,
        temperature_c: 71,
        power_w: 318.44,
        power_limit_w: 350,
      },
      {
        index: 1,
        name: 'NVIDIA L40S',
        vram_total_bytes: 46068 * MIB,
        vram_used_bytes: 512 * MIB,
        utilization_percent: 0,
        temperature_c: 38,
        power_w: 35.1,
        power_limit_w: 350,
      },
    ]);
  });

  it('leaves out what nvidia-smi has no figure for ([N/A]): absent, not NaN, and the heartbeat still parses', () => {
    const gpus = parseNvidiaSmi(fixture('nvidia-smi-stats-na.txt'));
    expect(gpus).toEqual([
      { index: 0, name: 'NVIDIA A100-SXM4-40GB', vram_total_bytes: 40960 * MIB, vram_used_bytes: 20110 * MIB, temperature_c: 45, power_w: 88.21, power_limit_w: 400 },
      { index: 1, name: 'NVIDIA A100-SXM4-40GB', vram_total_bytes: 40960 * MIB, vram_used_bytes: 0, utilization_percent: 0 },
    ]);
    for (const gpu of gpus) expect(Object.values(gpu).some((value) => typeof value === 'number' && Number.isNaN(value))).toBe(false);
    const heartbeat = {
      id: 'a',
      version: '1',
      state: 'ready',
      backend: { kind: 'ollama', url: 'http://x' },
      gpus,
      slots: 1,
      in_flight: 0,
      models_loaded: [],
      models_available: [],
      started_at: 1,
      updated_at: 1,
    };
    expect(AgentHeartbeat.parse(JSON.parse(JSON.stringify(heartbeat))).gpus).toEqual(gpus);
  });

  it('reads [Not Supported] the same way, and drops a reading out of range', () => {
    expect(parseNvidiaSmi('0, Quadro, 8192, 10, [Not Supported], 55, 101.5, [Not Supported]\n')[0]).toEqual({
      index: 0,
      name: 'Quadro',
      vram_total_bytes: 8192 * MIB,
      vram_used_bytes: 10 * MIB,
      temperature_c: 55,
      power_w: 101.5,
    });
    expect(parseNvidiaSmi('0, Odd, 8192, 10, 250, 55, -3, 70\n')[0]).not.toHaveProperty('utilization_percent');
    expect(parseNvidiaSmi('0, Odd, 8192, 10, 250, 55, -3, 70\n')[0]).not.toHaveProperty('power_w');
  });

  it('still requires the VRAM figures', () => {
    expect(() => parseNvidiaSmi('0, GPU, [N/A], 5, 1, 30, 20.5, 70\n')).toThrow(/unexpected nvidia-smi line/);
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

  it('runs nvidia-smi when present, with the live figures', async () => {
    const warnings: string[] = [];
    const script = fakeNvidiaSmi(`cat '${fixturePath('nvidia-smi-stats-2xL40S.txt')}'`);
    const result = await discoverGpus({ nvidiaSmiPath: script, configuredVramBytes: [1], configuredName: 'x', onWarning: (message) => warnings.push(message) });
    expect(result).toMatchObject({ source: 'nvidia-smi', fields: NVIDIA_SMI_FIELDS });
    expect(result.gpus.map((gpu) => gpu.power_w)).toEqual([318.44, 35.1]);
    expect(warnings).toEqual([]);
  });

  it('asks for VRAM only when nvidia-smi refuses the live fields (an old driver)', async () => {
    // What nvidia-smi does with a field it does not know: a message and exit status 2.
    const script = fakeNvidiaSmi(
      `case "$1" in *power.limit*) echo 'Field "power.limit" is not a valid field to query.' >&2; exit 2;; esac\ncat '${fixturePath('nvidia-smi-4xA100.txt')}'`,
    );
    const warnings: string[] = [];
    const result = await discoverGpus({ nvidiaSmiPath: script, configuredVramBytes: [1], configuredName: 'x', onWarning: (message) => warnings.push(message) });
    expect(result).toMatchObject({ source: 'nvidia-smi', fields: NVIDIA_SMI_VRAM_FIELDS });
    expect(result.gpus).toHaveLength(4);
    expect(warnings).toEqual([expect.stringMatching(/VRAM only/)]);
  });

  it('uses the configured VRAM, saying why, when nvidia-smi fails', async () => {
    const script = fakeNvidiaSmi(`echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'; exit 9`);
    const warnings: string[] = [];
    const result = await discoverGpus({ nvidiaSmiPath: script, configuredVramBytes: [8e9], configuredName: 'x', onWarning: (message) => warnings.push(message) });
    expect(result.source).toBe('config');
    expect(warnings).toEqual([expect.stringMatching(/nvidia-smi failed, using configured VRAM/)]);
  });
});

describe('GpuStatsMonitor', () => {
  const discovered: GpuInfo[] = parseNvidiaSmi(fixture('nvidia-smi-stats-2xL40S.txt'));

  it('takes each read’s live figures, keeping the names and totals discovered at start', async () => {
    let output = fixture('nvidia-smi-stats-na.txt');
    const monitor = new GpuStatsMonitor({ nvidiaSmiPath: 'nvidia-smi', fields: NVIDIA_SMI_FIELDS, gpus: discovered, run: async () => output });
    expect(monitor.current()).toBe(discovered);
    await monitor.refresh();
    expect(monitor.current()).toEqual([
      { index: 0, name: 'NVIDIA L40S', vram_total_bytes: 46068 * MIB, vram_used_bytes: 20110 * MIB, temperature_c: 45, power_w: 88.21, power_limit_w: 400 },
      { index: 1, name: 'NVIDIA L40S', vram_total_bytes: 46068 * MIB, vram_used_bytes: 0, utilization_percent: 0 },
    ]);
    // A GPU that is missing from a read (fallen off the bus) keeps its VRAM and loses its live figures.
    output = fixture('nvidia-smi-stats-1x4090.txt');
    await monitor.refresh();
    expect(monitor.current()[0]).toMatchObject({ utilization_percent: 3, name: 'NVIDIA L40S' });
    expect(monitor.current()[1]).toEqual({ index: 1, name: 'NVIDIA L40S', vram_total_bytes: 46068 * MIB, vram_used_bytes: 0 });
  });

  it('drops the live figures while nvidia-smi fails, saying so once, and takes them back when it answers', async () => {
    let fail = true;
    const warnings: string[] = [];
    const monitor = new GpuStatsMonitor({
      nvidiaSmiPath: 'nvidia-smi',
      fields: NVIDIA_SMI_FIELDS,
      gpus: discovered,
      onWarning: (message) => warnings.push(message),
      run: async () => {
        if (fail) throw new Error('timed out');
        return fixture('nvidia-smi-stats-2xL40S.txt');
      },
    });
    await monitor.refresh();
    await monitor.refresh();
    expect(monitor.current()).toEqual(discovered.map(({ index, name, vram_total_bytes, vram_used_bytes }) => ({ index, name, vram_total_bytes, vram_used_bytes })));
    expect(warnings).toHaveLength(1);
    fail = false;
    await monitor.refresh();
    expect(monitor.current()).toEqual(discovered);
    // An answer listing no GPU is a failure too.
    const empty = new GpuStatsMonitor({
      nvidiaSmiPath: 'nvidia-smi',
      fields: NVIDIA_SMI_FIELDS,
      gpus: discovered,
      onWarning: (message) => warnings.push(message),
      run: async () => '',
    });
    await empty.refresh();
    expect(empty.current()[0]).not.toHaveProperty('utilization_percent');
    expect(warnings.at(-1)).toMatch(/listed no GPU/);
  });

  it('never runs two reads at once', async () => {
    let runs = 0;
    let finish: (text: string) => void = () => undefined;
    const monitor = new GpuStatsMonitor({
      nvidiaSmiPath: 'nvidia-smi',
      fields: NVIDIA_SMI_FIELDS,
      gpus: discovered,
      run: () => {
        runs += 1;
        return new Promise((resolve) => (finish = resolve));
      },
    });
    const first = monitor.refresh();
    const second = monitor.refresh();
    finish(fixture('nvidia-smi-stats-2xL40S.txt'));
    await Promise.all([first, second]);
    expect(runs).toBe(1);
  });
});
