/**
 * The simulator's configuration: one zod schema, read from (lowest to highest precedence)
 * built-in defaults, a JSON file (`--config`), environment variables and command-line flags.
 *
 * Field names are snake_case everywhere (JSON file and `createGpuSim`); flags are their
 * kebab-case twins. The parsed config is itself a valid config input, so handing it back to
 * `createGpuSim` or `GpuSimConfig.parse` is harmless.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { ByteSize, DurationError, LogLevel, parseKeepAlive } from '@switchyard/protocol';
import { ModelSpec } from './model-spec.js';
import { SAMPLE_CATALOG, SAMPLE_REGISTRY } from './sample-catalog.js';

/** Strings from flags and env become numbers here; anything else is left for zod to judge. */
function numeric<T extends z.ZodType>(schema: T) {
  return z.preprocess((value) => (typeof value === 'string' && value.trim() !== '' ? Number(value) : value), schema);
}

const KeepAliveSetting = z.union([z.string(), z.number()]).superRefine((value, ctx) => {
  try {
    parseKeepAlive(value);
  } catch (error) {
    if (!(error instanceof DurationError)) throw error;
    ctx.addIssue({ code: 'custom', message: error.message });
  }
});

export const GpuSimConfig = z
  .strictObject({
    /** Interface to bind; Ollama's default is loopback only. */
    host: z.string().min(1).default('127.0.0.1').describe("Interface to bind; Ollama's default is loopback only."),
    /** 0 picks a free port. */
    port: numeric(z.number().int().min(0).max(65_535)).default(11_434).describe('Listen port (0 = any free one).'),
    gpu_name: z.string().min(1).default('Simulated GPU 24 GiB').describe('Name of the simulated GPU.'),
    /** VRAM budget of the simulated GPU; loaded models never exceed it. */
    vram_bytes: ByteSize.pipe(z.number().int().positive())
      .default(24 * 2 ** 30)
      .describe('VRAM budget; models never exceed it.'),
    /** Fixed VRAM each loaded model takes besides weights and KV cache (CUDA context, graph). */
    vram_overhead_bytes: ByteSize.pipe(z.number().int().nonnegative())
      .default(512 * 2 ** 20)
      .describe('Fixed VRAM each loaded model takes besides weights and KV cache (CUDA context, graph).'),
    /** Multiplies every simulated delay (load, prompt eval, tokens): 0 = as fast as possible, 0.01 = 100× faster. */
    time_scale: numeric(z.number().nonnegative()).default(1).describe('Multiplies every simulated delay (0 = instant).'),
    /** Generation speed for models without their own. */
    tokens_per_s: numeric(z.number().positive()).default(50).describe('Generation speed for models without their own.'),
    /** Prompt processing speed for models without their own. */
    prompt_tokens_per_s: numeric(z.number().positive()).default(2_000).describe('Prompt processing speed for models without their own.'),
    /** Disk → VRAM throughput of a model load. */
    load_bytes_per_s: ByteSize.pipe(z.number().positive()).default(2e9).describe('Disk → VRAM throughput of a model load.'),
    /** Fixed cost of every load (starting the runner), before the weights stream in. */
    load_overhead_ms: numeric(z.number().nonnegative()).default(300).describe('Fixed cost of every load (starting the runner), before the weights stream in.'),
    /**
     * Embedding time model, per `/api/embed` (or `/api/embeddings`) call, times `time_scale`:
     * `embed_call_ms + embed_input_ms × inputs + embed_token_ms × input tokens`, with one call
     * at a time per embedding model. A catalog entry's `embedding.call_ms` (etc.) replaces these.
     */
    embed_call_ms: numeric(z.number().nonnegative()).default(10).describe('Fixed cost of each embed call (one call at a time per embedding model; see `embed_input_ms`).'),
    embed_input_ms: numeric(z.number().nonnegative())
      .default(0.3)
      .describe('Cost of each input in an embed call, on top of `embed_call_ms`: batching inputs into one call saves the fixed cost.'),
    embed_token_ms: numeric(z.number().nonnegative()).default(0).describe('Cost of each input token in an embed call (0: an input costs the same whatever its length).'),
    /** Requests one loaded model serves at once (Ollama's OLLAMA_NUM_PARALLEL; 4 here). Embedding models always serve one. */
    num_parallel: numeric(z.number().int().positive()).default(4).describe('Parallel requests per loaded model (embedding models: always 1, as in Ollama).'),
    /** Requests waiting for a slot or a load before new ones get 503 (OLLAMA_MAX_QUEUE). */
    max_queue: numeric(z.number().int().positive()).default(512).describe('Waiting requests before `503 server busy`.'),
    /** Models resident at once, 0 = only VRAM limits it (OLLAMA_MAX_LOADED_MODELS; Ollama: 3 per GPU). */
    max_loaded_models: numeric(z.number().int().nonnegative()).default(3).describe('Models resident at once, 0 = only VRAM limits it (Ollama: 3 per GPU).'),
    /** keep_alive for requests that send none (OLLAMA_KEEP_ALIVE). */
    keep_alive: KeepAliveSetting.default('5m').describe('Default keep_alive.'),
    /** Context size a model is loaded with when the request's options carry no num_ctx. */
    num_ctx: numeric(z.number().int().positive()).default(4_096).describe("Context size a model is loaded with when the request's options carry no num_ctx."),
    /** Natural answer length range: the seeded generator stops ("stop") somewhere in it. */
    response_tokens_min: numeric(z.number().int().positive())
      .default(16)
      .describe('Shortest natural answer, in tokens (the seeded generator stops somewhere between this and `response_tokens_max`).'),
    response_tokens_max: numeric(z.number().int().positive()).default(64).describe('Longest natural answer, in tokens.'),
    /** Seed for requests without options.seed; "random" makes those answers vary like a real model. */
    default_seed: z
      .union([numeric(z.number().int()), z.literal('random')])
      .default(0)
      .describe('Seed for requests without `options.seed`; `"random"` makes those answers vary like a real model.'),
    /** What `/api/version` answers. */
    version: z.string().min(1).default('0.12.6').describe('What `/api/version` answers.'),
    /** Largest accepted request body (images in chat requests can be large). */
    body_limit_bytes: ByteSize.pipe(z.number().int().positive())
      .default(64 * 2 ** 20)
      .describe('Largest accepted request body (images in chat requests can be large).'),
    log_level: LogLevel.default('info').describe('pino level.'),
    models: z
      .array(ModelSpec)
      .min(1)
      .prefault([...SAMPLE_CATALOG])
      .describe('The models on the simulated disk at start (JSON file only).'),
    /** What `/api/pull` can download; `models` are added to it. */
    registry: z
      .array(ModelSpec)
      .prefault([...SAMPLE_REGISTRY])
      .describe(
        'What `/api/pull` can download (JSON file only): the sample registry by default; every entry of `models` is pullable too. An entry with `newer` also serves that build.',
      ),
    /** Disk for models; 0 = unlimited. */
    disk_bytes: ByteSize.pipe(z.number().int().nonnegative())
      .default(0)
      .describe("Disk for models: a pull that would take the models on disk past it fails with Ollama's `no space left on device`; 0 = unlimited."),
    /** Download throughput of `/api/pull`. */
    pull_bytes_per_s: ByteSize.pipe(z.number().positive()).default(1e9).describe('Download throughput of `/api/pull` (times `time_scale`).'),
  })
  .superRefine((config, ctx) => {
    if (config.response_tokens_min > config.response_tokens_max) {
      ctx.addIssue({
        code: 'custom',
        path: ['response_tokens_min'],
        message: `must not exceed response_tokens_max (${config.response_tokens_max})`,
      });
    }
    const seen = new Map<string, number>();
    config.models.forEach((model, index) => {
      const first = seen.get(model.name);
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['models', index, 'name'], message: `duplicate of models[${first}] (${model.name})` });
      }
      seen.set(model.name, index);
    });
  });
export type GpuSimConfig = z.infer<typeof GpuSimConfig>;
export type GpuSimConfigInput = z.input<typeof GpuSimConfig>;

/** A configuration that cannot be used; `main` prints the message and exits with code 2. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Field = keyof GpuSimConfigInput;

/** Command-line flags and the config field each one sets. */
const FLAGS = {
  host: 'host',
  port: 'port',
  'gpu-name': 'gpu_name',
  vram: 'vram_bytes',
  'vram-overhead': 'vram_overhead_bytes',
  'time-scale': 'time_scale',
  'tokens-per-s': 'tokens_per_s',
  'prompt-tokens-per-s': 'prompt_tokens_per_s',
  'load-bytes-per-s': 'load_bytes_per_s',
  'load-overhead-ms': 'load_overhead_ms',
  'disk-bytes': 'disk_bytes',
  'pull-bytes-per-s': 'pull_bytes_per_s',
  'embed-call-ms': 'embed_call_ms',
  'embed-input-ms': 'embed_input_ms',
  'embed-token-ms': 'embed_token_ms',
  'num-parallel': 'num_parallel',
  'max-queue': 'max_queue',
  'max-loaded-models': 'max_loaded_models',
  'keep-alive': 'keep_alive',
  'num-ctx': 'num_ctx',
  'response-tokens-min': 'response_tokens_min',
  'response-tokens-max': 'response_tokens_max',
  seed: 'default_seed',
  'ollama-version': 'version',
  'body-limit': 'body_limit_bytes',
  'log-level': 'log_level',
} as const satisfies Record<string, Field>;

/** Environment variables and the field each sets; GPU_SIM_* wins over Ollama's own names. */
const ENV: ReadonlyArray<readonly [string, Field]> = [
  ['OLLAMA_NUM_PARALLEL', 'num_parallel'],
  ['OLLAMA_MAX_QUEUE', 'max_queue'],
  ['OLLAMA_MAX_LOADED_MODELS', 'max_loaded_models'],
  ['OLLAMA_KEEP_ALIVE', 'keep_alive'],
  ['GPU_SIM_HOST', 'host'],
  ['GPU_SIM_PORT', 'port'],
  ['GPU_SIM_GPU_NAME', 'gpu_name'],
  ['GPU_SIM_VRAM', 'vram_bytes'],
  ['GPU_SIM_TIME_SCALE', 'time_scale'],
  ['GPU_SIM_TOKENS_PER_S', 'tokens_per_s'],
  ['GPU_SIM_LOAD_BYTES_PER_S', 'load_bytes_per_s'],
  ['GPU_SIM_DISK_BYTES', 'disk_bytes'],
  ['GPU_SIM_PULL_BYTES_PER_S', 'pull_bytes_per_s'],
  ['GPU_SIM_NUM_PARALLEL', 'num_parallel'],
  ['GPU_SIM_MAX_QUEUE', 'max_queue'],
  ['GPU_SIM_KEEP_ALIVE', 'keep_alive'],
  ['GPU_SIM_SEED', 'default_seed'],
  ['LOG_LEVEL', 'log_level'],
  ['GPU_SIM_LOG_LEVEL', 'log_level'],
];

export const USAGE = `Usage: switchyard-gpu-sim [--config file.json] [flags]

An Ollama-compatible server that simulates one GPU node.

Flags (each overrides the same snake_case field of the JSON config file):
  --config <file>              JSON config file (env GPU_SIM_CONFIG)
  --host <addr>                bind address (default 127.0.0.1; OLLAMA_HOST=host:port also works)
  --port <n>                   port, 0 = random (default 11434)
  --gpu-name <name>            name of the simulated GPU
  --vram <size>                VRAM budget, e.g. 24GiB, 80GB (default 24GiB)
  --vram-overhead <size>       fixed VRAM per loaded model (default 512MiB)
  --time-scale <x>             multiplies all simulated delays; 0 = no delays (default 1)
  --tokens-per-s <n>           generation speed for models without their own (default 50)
  --prompt-tokens-per-s <n>    prompt processing speed (default 2000)
  --load-bytes-per-s <size>    model load throughput, e.g. 2GB (default 2GB)
  --load-overhead-ms <n>       fixed cost of each load (default 300)
  --disk-bytes <size>          disk for models; a pull past it fails (default 0 = unlimited)
  --pull-bytes-per-s <size>    /api/pull download throughput (default 1GB)
  --embed-call-ms <n>          fixed cost of each embed call (default 10)
  --embed-input-ms <n>         cost of each input of an embed call (default 0.3)
  --embed-token-ms <n>         cost of each input token of an embed call (default 0)
  --num-parallel <n>           parallel slots per loaded model (default 4; embedding models 1)
  --max-queue <n>              waiting requests before 503 (default 512)
  --max-loaded-models <n>      models resident at once, 0 = VRAM only (default 3)
  --keep-alive <dur>           default keep_alive, e.g. 5m, 30s, -1 (default 5m)
  --num-ctx <n>                default context size per loaded model (default 4096)
  --response-tokens-min <n>    shortest natural answer, in tokens (default 16)
  --response-tokens-max <n>    longest natural answer, in tokens (default 64)
  --seed <n|random>            seed for requests without options.seed (default 0)
  --ollama-version <v>         version reported by /api/version
  --body-limit <size>          largest request body (default 64MiB)
  --log-level <level>          fatal|error|warn|info|debug|trace|silent (default info)
  -h, --help                   show this help

The model catalog comes from the config file's "models" array; without one a sample catalog
of qwen2.5:0.5b, llama3.2:3b, llama3.1:8b, llama3.1:70b (all with tools), llava:7b (vision)
and the embedding models nomic-embed-text, mxbai-embed-large and all-minilm is served.
/api/pull downloads from the config's "registry" (default: those and gemma2:2b, which is on
no disk at start; llama3.2:3b also has a newer build, pulled as llama3.2:3b@sha256:<digest>).
`;

export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/** Turns zod issues into one line per problem, each naming the field and where it came from. */
function describeIssues(error: z.ZodError, sources: ReadonlyMap<string, string>): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.map((part, index) => (typeof part === 'number' ? `[${part}]` : `${index === 0 ? '' : '.'}${String(part)}`)).join('');
      const top = issue.path[0];
      const source = typeof top === 'string' ? sources.get(top) : undefined;
      return `${path || '(root)'}${source ? ` (from ${source})` : ''}: ${issue.message}`;
    })
    .join('; ');
}

/** Validates a config object (as `createGpuSim` receives it); throws ConfigError naming the field. */
export function parseConfig(input: unknown, sources: ReadonlyMap<string, string> = new Map()): GpuSimConfig {
  const result = GpuSimConfig.safeParse(input);
  if (!result.success) throw new ConfigError(`invalid config: ${describeIssues(result.error, sources)}`);
  return result.data;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

/** `OLLAMA_HOST` as `ollama serve` reads it: `host`, `host:port`, `:port` or a URL. */
function splitOllamaHost(value: string): { host?: string; port?: string } {
  let rest = value
    .trim()
    .replace(/^https?:\/\//, '')
    .replace(/\/.*$/, '');
  if (rest === '') return {};
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (bracketed) return { host: bracketed[1], ...(bracketed[2] ? { port: bracketed[2] } : {}) };
  const colon = rest.lastIndexOf(':');
  if (colon !== -1 && rest.indexOf(':') === colon) {
    const port = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    return { ...(rest ? { host: rest } : {}), ...(port ? { port } : {}) };
  }
  return { host: rest };
}

/**
 * Reads the configuration from command-line arguments (without the node and script paths)
 * and environment variables. Throws ConfigError for unknown flags and invalid values.
 */
export function loadConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): GpuSimConfig {
  const flagOptions = Object.fromEntries(Object.keys(FLAGS).map((flag) => [flag, { type: 'string' as const }])) as Record<keyof typeof FLAGS, { type: 'string' }>;
  // `--keep-alive -1` would read as a missing value followed by an unknown flag `-1`.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const next = argv[i + 1];
    if (arg.startsWith('--') && arg.slice(2) in FLAGS && next !== undefined && /^-\d/.test(next)) {
      args.push(`${arg}=${next}`);
      i++;
    } else {
      args.push(arg);
    }
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args,
      options: { ...flagOptions, config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: false,
      strict: true,
    }).values;
  } catch (error) {
    throw new ConfigError(`${(error as Error).message} (see --help)`);
  }

  const raw: Record<string, unknown> = {};
  const sources = new Map<string, string>();
  const set = (field: string, value: unknown, source: string) => {
    raw[field] = value;
    sources.set(field, source);
  };

  const configFlag = values.config;
  const file = typeof configFlag === 'string' ? configFlag : env.GPU_SIM_CONFIG;
  if (file) {
    for (const [field, value] of Object.entries(readConfigFile(file))) set(field, value, `config file ${file}`);
  }

  if (env.OLLAMA_HOST) {
    const { host, port } = splitOllamaHost(env.OLLAMA_HOST);
    if (host !== undefined) set('host', host, 'env OLLAMA_HOST');
    if (port !== undefined) set('port', port, 'env OLLAMA_HOST');
  }
  for (const [name, field] of ENV) {
    const value = env[name];
    if (value !== undefined && value !== '') set(field, value, `env ${name}`);
  }

  for (const [flag, field] of Object.entries(FLAGS)) {
    const value = values[flag];
    if (typeof value === 'string') set(field, value, `--${flag}`);
  }

  return parseConfig(raw, sources);
}
