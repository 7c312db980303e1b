import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { GpuInfo } from '@switchyard/protocol';

const run = promisify(execFile);
const MIB = 2 ** 20;

export const NVIDIA_SMI_ARGS = ['--query-gpu=index,name,memory.total,memory.used', '--format=csv,noheader,nounits'];

/**
 * Parses `nvidia-smi --query-gpu=index,name,memory.total,memory.used --format=csv,noheader,nounits`.
 * Memory figures are MiB. Lines that do not parse are reported, not guessed at.
 */
export function parseNvidiaSmi(output: string): GpuInfo[] {
  const gpus: GpuInfo[] = [];
  for (const line of output.split(/\r?\n/)) {
    if (!line.trim()) continue;
    const fields = line.split(',');
    // A GPU name may itself contain commas; index is first, the two numbers are last.
    if (fields.length < 4) throw new Error(`unexpected nvidia-smi line: ${JSON.stringify(line)}`);
    const index = Number(fields[0]);
    const total = Number(fields[fields.length - 2]);
    const used = Number(fields[fields.length - 1]);
    const name = fields.slice(1, -2).join(',').trim();
    if (!Number.isInteger(index) || !Number.isFinite(total) || !Number.isFinite(used)) {
      throw new Error(`unexpected nvidia-smi line: ${JSON.stringify(line)}`);
    }
    gpus.push({ index, name, vram_total_bytes: total * MIB, vram_used_bytes: used * MIB });
  }
  return gpus;
}

/**
 * The node's GPUs: from nvidia-smi when it runs, else the configured sizes.
 * A missing binary is normal (CPU test machines, the simulator); a failing one is logged.
 */
export async function discoverGpus(options: {
  nvidiaSmiPath: string;
  configuredVramBytes: number[];
  configuredName: string;
  onWarning?: (message: string) => void;
}): Promise<{ source: 'nvidia-smi' | 'config'; gpus: GpuInfo[] }> {
  try {
    const { stdout } = await run(options.nvidiaSmiPath, NVIDIA_SMI_ARGS, { timeout: 5_000 });
    const gpus = parseNvidiaSmi(stdout);
    if (gpus.length > 0) return { source: 'nvidia-smi', gpus };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') options.onWarning?.(`nvidia-smi failed, using configured VRAM: ${String(error)}`);
  }
  return {
    source: 'config',
    gpus: options.configuredVramBytes.map((bytes, index) => ({
      index,
      name: options.configuredName,
      vram_total_bytes: bytes,
      vram_used_bytes: 0,
    })),
  };
}
