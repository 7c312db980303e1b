import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { GpuInfo } from '@switchyard/protocol';

const run = promisify(execFile);
const MIB = 2 ** 20;
const NVIDIA_SMI_TIMEOUT_MS = 5_000;

/** The VRAM placement needs: every nvidia-smi answers these. */
export const NVIDIA_SMI_VRAM_FIELDS = ['index', 'name', 'memory.total', 'memory.used'] as const;
/** VRAM plus the live figures the heartbeat and `/metrics` report. */
export const NVIDIA_SMI_FIELDS = [...NVIDIA_SMI_VRAM_FIELDS, 'utilization.gpu', 'temperature.gpu', 'power.draw', 'power.limit'] as const;
export type NvidiaSmiField = (typeof NVIDIA_SMI_FIELDS)[number];

/** The live fields, as heartbeat fields, each with the range a reading must be in to be believed. */
const STAT_FIELDS: Partial<Record<NvidiaSmiField, { key: 'utilization_percent' | 'temperature_c' | 'power_w' | 'power_limit_w'; min: number; max: number }>> = {
  'utilization.gpu': { key: 'utilization_percent', min: 0, max: 100 },
  'temperature.gpu': { key: 'temperature_c', min: -50, max: 200 },
  'power.draw': { key: 'power_w', min: 0, max: Number.POSITIVE_INFINITY },
  'power.limit': { key: 'power_limit_w', min: 0, max: Number.POSITIVE_INFINITY },
};

export function nvidiaSmiArgs(fields: readonly NvidiaSmiField[] = NVIDIA_SMI_FIELDS): string[] {
  return [`--query-gpu=${fields.join(',')}`, '--format=csv,noheader,nounits'];
}

/** nvidia-smi's way of saying it has no figure: `[N/A]`, `[Not Supported]`, `[Unknown Error]`. */
const NO_READING = /^\[[^\]]*\]$/;

/**
 * Parses `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits` (`fields` start with
 * index and name; the VRAM-only query's output is read with `NVIDIA_SMI_VRAM_FIELDS`). Memory
 * figures are MiB and must be there; a live figure nvidia-smi has none of (`[N/A]`) or one
 * out of range is left out of the GPU, never a NaN. Lines that do not parse are reported, not
 * guessed at.
 */
export function parseNvidiaSmi(output: string, fields: readonly NvidiaSmiField[] = NVIDIA_SMI_FIELDS): GpuInfo[] {
  const numeric = fields.slice(2);
  const gpus: GpuInfo[] = [];
  for (const line of output.split(/\r?\n/)) {
    if (!line.trim()) continue;
    const parts = line.split(',').map((part) => part.trim());
    const unexpected = () => new Error(`unexpected nvidia-smi line: ${JSON.stringify(line)}`);
    // A GPU name may itself contain commas; index is first, the numbers are last.
    if (parts.length < fields.length) throw unexpected();
    const index = Number(parts[0]);
    const name = parts.slice(1, parts.length - numeric.length).join(', ');
    const values = new Map(numeric.map((field, at) => [field, parts[parts.length - numeric.length + at]!]));
    const total = Number(values.get('memory.total'));
    const used = Number(values.get('memory.used'));
    if (!Number.isInteger(index) || !Number.isFinite(total) || !Number.isFinite(used)) throw unexpected();
    const gpu: GpuInfo = { index, name, vram_total_bytes: total * MIB, vram_used_bytes: used * MIB };
    for (const [field, text] of values) {
      const stat = STAT_FIELDS[field];
      if (!stat || NO_READING.test(text)) continue;
      const value = Number(text);
      if (text === '' || !Number.isFinite(value)) throw unexpected();
      if (value >= stat.min && value <= stat.max) gpu[stat.key] = value;
    }
    gpus.push(gpu);
  }
  return gpus;
}

export type RunNvidiaSmi = (path: string, args: string[]) => Promise<string>;

const runNvidiaSmi: RunNvidiaSmi = async (path, args) => (await run(path, args, { timeout: NVIDIA_SMI_TIMEOUT_MS })).stdout;

/**
 * The node's GPUs: from nvidia-smi when it runs, else the configured sizes. A missing binary
 * is normal (CPU test machines, the simulator); a failing one is logged. An nvidia-smi that
 * refuses the live fields (an old driver) is asked for VRAM only, and `fields` says which
 * query worked, for `GpuStatsMonitor` to repeat.
 */
export async function discoverGpus(options: {
  nvidiaSmiPath: string;
  configuredVramBytes: number[];
  configuredName: string;
  onWarning?: (message: string) => void;
}): Promise<{ source: 'nvidia-smi' | 'config'; gpus: GpuInfo[]; fields: readonly NvidiaSmiField[] }> {
  let failure: unknown;
  for (const fields of [NVIDIA_SMI_FIELDS, NVIDIA_SMI_VRAM_FIELDS]) {
    try {
      const gpus = parseNvidiaSmi(await runNvidiaSmi(options.nvidiaSmiPath, nvidiaSmiArgs(fields)), fields);
      if (gpus.length === 0) break;
      if (failure !== undefined) options.onWarning?.(`nvidia-smi refused the utilisation, temperature and power fields; reporting VRAM only: ${String(failure)}`);
      return { source: 'nvidia-smi', gpus, fields };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return configured(options);
      failure ??= error;
    }
  }
  if (failure !== undefined) options.onWarning?.(`nvidia-smi failed, using configured VRAM: ${String(failure)}`);
  return configured(options);
}

function configured(options: { configuredVramBytes: number[]; configuredName: string }) {
  return {
    source: 'config' as const,
    fields: NVIDIA_SMI_VRAM_FIELDS,
    gpus: options.configuredVramBytes.map((bytes, index) => ({
      index,
      name: options.configuredName,
      vram_total_bytes: bytes,
      vram_used_bytes: 0,
    })),
  };
}

/**
 * Re-reads nvidia-smi every interval so the heartbeat and `/metrics` carry live utilisation,
 * temperature, power and VRAM used. Each GPU keeps the name and total discovered at start
 * (placement accounts the node with those). A read that fails drops the live figures until
 * one succeeds (a stale temperature would look like a healthy one) and keeps the last VRAM
 * used; it is logged once per run of failures.
 */
export class GpuStatsMonitor {
  private gpus: GpuInfo[];
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  private failing = false;
  private readonly run: RunNvidiaSmi;

  constructor(
    private readonly options: {
      nvidiaSmiPath: string;
      fields: readonly NvidiaSmiField[];
      gpus: GpuInfo[];
      onWarning?: (message: string) => void;
      run?: RunNvidiaSmi;
    },
  ) {
    this.gpus = options.gpus;
    this.run = options.run ?? runNvidiaSmi;
  }

  current(): GpuInfo[] {
    return this.gpus;
  }

  /** One read; concurrent calls share it (a slow nvidia-smi never runs twice at once). */
  refresh(): Promise<void> {
    this.reading ??= this.read().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.refresh(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async read(): Promise<void> {
    const { fields, nvidiaSmiPath } = this.options;
    try {
      const fresh = new Map(parseNvidiaSmi(await this.run(nvidiaSmiPath, nvidiaSmiArgs(fields)), fields).map((gpu) => [gpu.index, gpu]));
      // The GPUs were there at start: an answer without any is nvidia-smi failing, not a node without GPUs.
      if (fresh.size === 0) throw new Error('nvidia-smi listed no GPU');
      this.gpus = this.gpus.map((last) => {
        const now = fresh.get(last.index);
        return now ? { ...now, name: last.name, vram_total_bytes: last.vram_total_bytes } : vramOnly(last);
      });
      this.failing = false;
    } catch (error) {
      this.gpus = this.gpus.map((gpu) => vramOnly(gpu));
      if (!this.failing) this.options.onWarning?.(`nvidia-smi failed, GPU utilisation, temperature and power not reported until it answers: ${String(error)}`);
      this.failing = true;
    }
  }
}

function vramOnly(gpu: GpuInfo): GpuInfo {
  return { index: gpu.index, name: gpu.name, vram_total_bytes: gpu.vram_total_bytes, vram_used_bytes: gpu.vram_used_bytes };
}
