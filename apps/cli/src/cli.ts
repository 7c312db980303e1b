import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SwitchyardClient } from '@switchyard/sdk';
import type { CatalogEntryInput, ToolChoice, ToolDefinition } from '@switchyard/sdk';
import { drainCommand } from './commands/drain.js';
import { embedCommand } from './commands/embed.js';
import { keysCommand, type KeysArgs } from './commands/keys.js';
import { psCommand } from './commands/ps.js';
import { queuesCommand } from './commands/queues.js';
import { modelsCommand, type ModelsArgs } from './commands/models.js';
import { runCommand, type RunArgs } from './commands/run.js';
import { UsageError, reportError } from './errors.js';
import { EXIT } from './exit-codes.js';
import type { CliIo } from './io.js';

export const CLI_VERSION = '0.1.0';
export const DEFAULT_URL = 'http://127.0.0.1:8080';

export const USAGE = `switchyard — the command line of a Switchyard inference fleet

Usage:
  switchyard run <model> [prompt...]   stream an answer (the prompt is read from stdin when omitted)
  switchyard embed <model> [text...]   embedding vectors, one per text (each argument is one text;
                                       from stdin when omitted: one text per non-empty line)
  switchyard ps                        agents, their GPUs (VRAM used/total), loaded models, in-flight jobs
  switchyard queues [--all]            per-model queue depth, oldest wait and drain rate, and each
                                       digest-pinned queue under its model (--all: also idle ones)
  switchyard keys list                 API keys: id, prefix, tenant, admin, name, source, times, limits
  switchyard keys create <tenant>      a new key for the tenant, printed once on stdout
  switchyard keys rotate <id>          a new key for the same id; the old one stops working now
                                       (or after --grace <seconds>, at most 86400)
  switchyard keys revoke <id>          the key stops working (on every API replica within a second)
  switchyard drain <agent> [--undo]    the agent claims nothing and finishes its running jobs
                                       (admin key; --undo: it claims again)
  switchyard models list               the fleet catalog (admin key): each model's state, copies,
                                       builds (digests; drift marked), pull progress and problems
  switchyard models show <model>       one model against the catalog, node by node
  switchyard models set <model>        write its catalog entry (whole): agents pull and delete to match
  switchyard models rm <model>         drop its entry: the model is unmanaged and stays on the disks
                                       that hold it (nothing is deleted; Ollama's DELETE /api/delete
                                       on the broker removes it from the fleet)
  switchyard models rollout <model>    where a move to a new build stands (set --digest starts one;
                                       --canary <share> sends a share of jobs to it first):
                                       state, nodes per build, each build's jobs, errors and TTFT
                                       (--promote: end the canary; --abort: roll back to the old build)

Options for every command:
  --url <url>             API base URL (env SWITCHYARD_URL; default ${DEFAULT_URL})
  --api-key <key>         API key, sent as a Bearer token (env SWITCHYARD_API_KEY)
  --json                  machine-readable output (run: one JSON event per line, tool_call
                          events included; embed: one JSON object with the vectors and usage)
  -h, --help              show this help
  --version               print the CLI version

Options for run:
  --system <text>         system prompt
  --seed <n>              sampling seed
  --temperature <t>       sampling temperature
  --max-tokens <n>        stop after n tokens (options.num_predict)
  --ctx <n>               context size (options.num_ctx)
  --priority <name>       queue priority (e.g. interactive, batch)
  --format json           ask the model for JSON
  --tools <file>          a JSON file with an array of tools the model may call (OpenAI's and
                          Ollama's shape: {"type": "function", "function": {"name", "parameters"}});
                          each call is printed as '[tool call] <name> <arguments> (id <id>)'
  --tool-choice <choice>  none, auto, required, or the name of one of the tools
  --verbose               timings and token counts on stderr when done

Options for embed:
  --dimensions <n>        shorten each vector to n dimensions (models trained for it)
  --no-truncate           fail on a text longer than the model's context instead of cutting it
  --dims                  print a summary per vector (dimensions, norm, first values), not the vector
  --priority <name>       queue priority (e.g. interactive, batch)
  Without --dims or --json, each vector is printed as a JSON array on a line of its own, in
  the order of the texts.

Options for models set (the models commands need an admin key; set replaces the entry whole,
so give every flag the entry should keep; the API checks the values and names a bad one):
  --digest <sha256>       the build to hold (default: what the registry serves)
  --copies <min>[:<max>]  nodes that hold it (default: every eligible node; max: no limit)
  --on-agent <id>         only this agent (repeatable)
  --label <key=value>     only agents with this AGENT_LABELS pair (repeatable)
  --pinned                keep it loaded where it is held
  --keep-on-disk          never delete it to make room

Options for keys create (the keys commands need an admin key):
  --admin                 an admin key (fleet endpoints, /metrics, /admin/*)
  --name <text>           a label shown in keys list
  --in-flight <n>         the tenant's limit of jobs in flight (all its keys share it)
  --model-in-flight <n>   the tenant's limit of jobs in flight on any one model

An API started without keys runs open (anyone is an admin): 'switchyard keys create ops --admin'
makes the first admin key and closes it. Keys from the API's configuration are listed
(source config) but are changed only there.

While a job waits, stderr shows its queue position and the model load; Ctrl-C cancels it.

Exit codes: 0 ok, 1 job failed, 2 usage error, 3 refused or unreachable, 130 interrupted (job cancelled).
`;

const GLOBAL_OPTIONS = {
  url: { type: 'string' },
  'api-key': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

const QUEUES_OPTIONS = {
  ...GLOBAL_OPTIONS,
  all: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

const MODELS_SET_OPTIONS = {
  ...GLOBAL_OPTIONS,
  digest: { type: 'string' },
  copies: { type: 'string' },
  'on-agent': { type: 'string', multiple: true },
  label: { type: 'string', multiple: true },
  pinned: { type: 'boolean' },
  'keep-on-disk': { type: 'boolean' },
  canary: { type: 'string' },
  'required-share': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const MODELS_ROLLOUT_OPTIONS = {
  ...GLOBAL_OPTIONS,
  promote: { type: 'boolean' },
  abort: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

const MODELS_ACTIONS = ['list', 'show', 'set', 'rm', 'rollout'] as const;

/** A share in (0, 1] (or (0, 1) for a canary), as a flag value. */
function shareFlag(flag: string, value: string, below1: boolean): number {
  const share = Number(value);
  if (value.trim() === '' || !Number.isFinite(share) || share <= 0 || share > 1 || (below1 && share === 1)) {
    throw new UsageError(`--${flag} takes a share ${below1 ? 'between 0 and 1, e.g. 0.1' : 'above 0 and at most 1, e.g. 0.5'}, got ${JSON.stringify(value)}`);
  }
  return share;
}

/** `models <action> …`: flags checked here, values (digest, label shapes) by the API, whose 400 names them. */
export function modelsArgs(argv: string[]): { values: { url?: string | undefined; 'api-key'?: string | undefined; json?: boolean | undefined }; args: ModelsArgs } {
  const loose = parseArgs({ args: argv, options: MODELS_SET_OPTIONS, allowPositionals: true, strict: false });
  const given = loose.positionals[1];
  const action = MODELS_ACTIONS.find((candidate) => candidate === given);
  if (action === undefined) {
    throw new UsageError(
      given === undefined ? `models needs an action: ${MODELS_ACTIONS.join(', ')}` : `unknown models action ${JSON.stringify(given)} (actions: ${MODELS_ACTIONS.join(', ')})`,
    );
  }
  const { values, positionals } = strictParse(argv, action === 'set' ? MODELS_SET_OPTIONS : action === 'rollout' ? MODELS_ROLLOUT_OPTIONS : GLOBAL_OPTIONS);
  const json = values.json === true;
  if (action === 'list') {
    if (positionals.length > 2) throw new UsageError(`models list takes no arguments, got ${JSON.stringify(positionals.slice(2).join(' '))}`);
    return { values, args: { action, json } };
  }
  const name = positionals[2];
  if (name === undefined) throw new UsageError(`models ${action} needs a model name, e.g. switchyard models ${action} llama3.1:8b`);
  if (positionals.length > 3) throw new UsageError(`models ${action} takes one model, got ${JSON.stringify(positionals.slice(2).join(' '))}`);
  if (action === 'rollout') {
    const flags = values as { promote?: boolean; abort?: boolean };
    if (flags.promote === true && flags.abort === true) throw new UsageError('models rollout takes --promote or --abort, not both');
    const step = flags.promote === true ? 'promote' : flags.abort === true ? 'abort' : undefined;
    return { values, args: { action, json, name, ...(step !== undefined && { step }) } };
  }
  if (action !== 'set') return { values, args: { action, json, name } };
  const set = values as {
    digest?: string;
    copies?: string;
    'on-agent'?: string[];
    label?: string[];
    pinned?: boolean;
    'keep-on-disk'?: boolean;
    canary?: string;
    'required-share'?: string;
  };
  const entry: CatalogEntryInput = {};
  if (set.digest !== undefined) entry.digest = set.digest;
  if (set.copies !== undefined) {
    const match = /^(\d+)(?::(\d+))?$/.exec(set.copies);
    if (!match) throw new UsageError(`--copies takes <min> or <min>:<max>, e.g. 2 or 1:3, got ${JSON.stringify(set.copies)}`);
    entry.copies = { min: Number(match[1]), ...(match[2] !== undefined && { max: Number(match[2]) }) };
  }
  const agents = set['on-agent'] ?? [];
  const labels = set.label ?? [];
  if (agents.length > 0 || labels.length > 0) {
    const pairs = labels.map((pair) => {
      const at = pair.indexOf('=');
      if (at <= 0) throw new UsageError(`--label takes key=value, e.g. gpu=a100, got ${JSON.stringify(pair)}`);
      return [pair.slice(0, at), pair.slice(at + 1)] as const;
    });
    const repeated = pairs.find(([key], index) => pairs.findIndex(([other]) => other === key) !== index);
    if (repeated) throw new UsageError(`--label ${repeated[0]} is given more than once (an agent has one value per label key)`);
    entry.on = { ...(agents.length > 0 && { agents }), ...(pairs.length > 0 && { labels: Object.fromEntries(pairs) }) };
  }
  if (set.pinned === true) entry.pinned = true;
  if (set['keep-on-disk'] === true) entry.keep_on_disk = true;
  if (set.canary !== undefined) entry.canary = { share: shareFlag('canary', set.canary, true) };
  if (set['required-share'] !== undefined) entry.required_share = shareFlag('required-share', set['required-share'], false);
  return { values, args: { action, json, name, entry } };
}

const KEYS_CREATE_OPTIONS = {
  ...GLOBAL_OPTIONS,
  admin: { type: 'boolean' },
  name: { type: 'string' },
  'in-flight': { type: 'string' },
  'model-in-flight': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const KEYS_ROTATE_OPTIONS = {
  ...GLOBAL_OPTIONS,
  grace: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const KEYS_ACTIONS = ['list', 'create', 'rotate', 'revoke'] as const;

const DRAIN_OPTIONS = {
  ...GLOBAL_OPTIONS,
  undo: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

const RUN_OPTIONS = {
  ...GLOBAL_OPTIONS,
  system: { type: 'string' },
  seed: { type: 'string' },
  temperature: { type: 'string' },
  'max-tokens': { type: 'string' },
  ctx: { type: 'string' },
  priority: { type: 'string' },
  format: { type: 'string' },
  tools: { type: 'string' },
  'tool-choice': { type: 'string' },
  verbose: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

const EMBED_OPTIONS = {
  ...GLOBAL_OPTIONS,
  dimensions: { type: 'string' },
  'no-truncate': { type: 'boolean' },
  dims: { type: 'boolean' },
  priority: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

function strictParse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function integer(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value)) throw new UsageError(`--${name} must be an integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

function nonNegative(name: string, value: string | undefined): number | undefined {
  const number = integer(name, value);
  if (number !== undefined && number < 0) throw new UsageError(`--${name} must not be negative, got ${number}`);
  return number;
}

/** `keys <action> …`: each action takes its own options, so a misplaced one is an error, not ignored. */
function keysArgs(argv: string[]): { values: { url?: string | undefined; 'api-key'?: string | undefined; json?: boolean | undefined }; args: KeysArgs } {
  const loose = parseArgs({ args: argv, options: KEYS_CREATE_OPTIONS, allowPositionals: true, strict: false });
  const action = loose.positionals[1];
  if (!KEYS_ACTIONS.includes(action as (typeof KEYS_ACTIONS)[number])) {
    throw new UsageError(
      action === undefined ? `keys needs an action: ${KEYS_ACTIONS.join(', ')}` : `unknown keys action ${JSON.stringify(action)} (actions: ${KEYS_ACTIONS.join(', ')})`,
    );
  }
  const extra = (positionals: string[], expected: number) => {
    if (positionals.length > expected)
      throw new UsageError(`keys ${action} takes ${expected === 2 ? 'no arguments' : 'one argument'}, got ${JSON.stringify(positionals.slice(expected).join(' '))}`);
  };
  switch (action) {
    case 'create': {
      const { values, positionals } = strictParse(argv, KEYS_CREATE_OPTIONS);
      const tenant = positionals[2];
      if (tenant === undefined) throw new UsageError('keys create needs a tenant, e.g. switchyard keys create acme --name ci');
      extra(positionals, 3);
      const inFlight = nonNegative('in-flight', values['in-flight']);
      const modelInFlight = nonNegative('model-in-flight', values['model-in-flight']);
      const limits = { ...(inFlight !== undefined && { in_flight: inFlight }), ...(modelInFlight !== undefined && { model_in_flight: modelInFlight }) };
      const request = {
        tenant,
        ...(values.admin === true && { admin: true }),
        ...(values.name !== undefined && { name: values.name }),
        ...(Object.keys(limits).length > 0 && { limits }),
      };
      return { values, args: { action, json: values.json === true, request } };
    }
    case 'rotate': {
      const { values, positionals } = strictParse(argv, KEYS_ROTATE_OPTIONS);
      const id = positionals[2];
      if (id === undefined) throw new UsageError('keys rotate needs a key id (see switchyard keys list)');
      extra(positionals, 3);
      const graceS = nonNegative('grace', values.grace);
      return { values, args: { action, json: values.json === true, id, ...(graceS !== undefined && { graceS }) } };
    }
    case 'revoke': {
      const { values, positionals } = strictParse(argv, GLOBAL_OPTIONS);
      const id = positionals[2];
      if (id === undefined) throw new UsageError('keys revoke needs a key id (see switchyard keys list)');
      extra(positionals, 3);
      return { values, args: { action, json: values.json === true, id } };
    }
    default: {
      const { values, positionals } = strictParse(argv, GLOBAL_OPTIONS);
      extra(positionals, 2);
      return { values, args: { action: 'list', json: values.json === true } };
    }
  }
}

function decimal(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number)) throw new UsageError(`--${name} must be a number, got ${JSON.stringify(value)}`);
  return number;
}

/** `--tools <file>`: a JSON array of tool definitions; the API checks each one. */
async function readTools(io: CliIo, path: string): Promise<ToolDefinition[]> {
  let text: string;
  try {
    text = await io.readFile(path);
  } catch (error) {
    throw new UsageError(`--tools: cannot read ${path}: ${(error as Error).message}`);
  }
  let tools: unknown;
  try {
    tools = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`--tools: ${path} is not JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(tools) || tools.length === 0 || !tools.every((tool) => tool !== null && typeof tool === 'object' && !Array.isArray(tool))) {
    throw new UsageError(`--tools: ${path} must hold a non-empty JSON array of tools, e.g. [{"type": "function", "function": {"name": "get_weather"}}]`);
  }
  return tools as ToolDefinition[];
}

/** `--tool-choice`: a mode, or the name of one tool. */
function toolChoice(value: string | undefined, tools: ToolDefinition[] | undefined): ToolChoice | undefined {
  if (value === undefined) return undefined;
  if (value === 'none' || value === 'auto') return value;
  if (tools === undefined) throw new UsageError(`--tool-choice ${value} needs --tools`);
  if (value === 'required') return value;
  const names = tools.map((tool) => (tool as { function?: { name?: unknown } }).function?.name);
  if (!names.includes(value))
    throw new UsageError(`--tool-choice takes none, auto, required or the name of one of the tools (${names.join(', ')}), got ${JSON.stringify(value)}`);
  return { type: 'function', function: { name: value } };
}

function clientFor(values: { url?: string | undefined; 'api-key'?: string | undefined }, io: CliIo, onRetry?: (text: string) => void): SwitchyardClient {
  const baseUrl = values.url ?? io.env.SWITCHYARD_URL ?? DEFAULT_URL;
  try {
    new URL(baseUrl);
  } catch {
    throw new UsageError(`--url must be an absolute URL such as ${DEFAULT_URL}, got ${JSON.stringify(baseUrl)}`);
  }
  const apiKey = values['api-key'] ?? io.env.SWITCHYARD_API_KEY;
  return new SwitchyardClient({
    baseUrl,
    ...(apiKey && { apiKey }),
    retry: {
      maxRetries: 5,
      maxWaitMs: 120_000,
      ...(onRetry && { onRetry: ({ delayMs, error }) => onRetry(`${error.code}: ${error.message}; retrying in ${Math.ceil(delayMs / 1000)}s`) }),
    },
  });
}

/** Runs the CLI with `argv` (without node and the script); resolves with the exit code. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  try {
    const first = parseArgs({ args: argv, options: GLOBAL_OPTIONS, allowPositionals: true, strict: false });
    const command = first.positionals[0];
    if (first.values.version === true) {
      io.stdout.write(`switchyard ${CLI_VERSION}\n`);
      return EXIT.ok;
    }
    if (command === undefined || first.values.help === true || command === 'help') {
      (command === undefined && first.values.help !== true && command !== 'help' ? io.stderr : io.stdout).write(USAGE);
      return command === undefined && first.values.help !== true ? EXIT.usage : EXIT.ok;
    }
    const notice = (text: string) => io.stderr.write(`switchyard: ${text}\n`);
    switch (command) {
      case 'ps': {
        const { values, positionals } = strictParse(argv, GLOBAL_OPTIONS);
        if (positionals.length > 1) throw new UsageError(`ps takes no arguments, got ${JSON.stringify(positionals.slice(1).join(' '))}`);
        return await psCommand(io, clientFor(values, io, values.json ? undefined : notice), { json: values.json === true });
      }
      case 'queues': {
        const { values, positionals } = strictParse(argv, QUEUES_OPTIONS);
        if (positionals.length > 1) throw new UsageError(`queues takes no arguments, got ${JSON.stringify(positionals.slice(1).join(' '))}`);
        return await queuesCommand(io, clientFor(values, io, values.json ? undefined : notice), { json: values.json === true, all: values.all === true });
      }
      case 'run': {
        const { values, positionals } = strictParse(argv, RUN_OPTIONS);
        const model = positionals[1];
        if (model === undefined) throw new UsageError('run needs a model, e.g. switchyard run llama3.1:8b "Why is the sky blue?"');
        let prompt = positionals.slice(2).join(' ');
        if (prompt === '') {
          if (io.stdinIsTTY) throw new UsageError('run needs a prompt: give it after the model or pipe it on stdin');
          prompt = (await io.readStdin()).replace(/\r?\n$/, '');
          if (prompt.trim() === '') throw new UsageError('the prompt read from stdin is empty');
        }
        if (values.format !== undefined && values.format !== 'json') throw new UsageError(`--format takes only "json", got ${JSON.stringify(values.format)}`);
        const options: RunArgs['options'] = {};
        const seed = integer('seed', values.seed);
        const maxTokens = integer('max-tokens', values['max-tokens']);
        const ctx = integer('ctx', values.ctx);
        const temperature = decimal('temperature', values.temperature);
        if (seed !== undefined) options.seed = seed;
        if (maxTokens !== undefined) options.num_predict = maxTokens;
        if (ctx !== undefined) options.num_ctx = ctx;
        if (temperature !== undefined) options.temperature = temperature;
        const tools = values.tools !== undefined ? await readTools(io, values.tools) : undefined;
        const choice = toolChoice(values['tool-choice'], tools);
        const json = values.json === true;
        return await runCommand(io, clientFor(values, io, json ? undefined : notice), {
          model,
          prompt,
          options,
          json,
          verbose: values.verbose === true,
          ...(values.system !== undefined && { system: values.system }),
          ...(values.priority !== undefined && { priority: values.priority }),
          ...(values.format === 'json' && { format: 'json' as const }),
          ...(tools !== undefined && { tools }),
          ...(choice !== undefined && { toolChoice: choice }),
        });
      }
      case 'embed': {
        const { values, positionals } = strictParse(argv, EMBED_OPTIONS);
        const model = positionals[1];
        if (model === undefined) throw new UsageError('embed needs a model, e.g. switchyard embed nomic-embed-text "Why is the sky blue?"');
        let inputs = positionals.slice(2);
        if (inputs.length === 0) {
          if (io.stdinIsTTY) throw new UsageError('embed needs text: give each text as an argument after the model, or pipe them on stdin, one per line');
          inputs = (await io.readStdin()).split(/\r?\n/).filter((line) => line.trim() !== '');
          if (inputs.length === 0) throw new UsageError('no text read from stdin (one text per non-empty line)');
        }
        if (values.dims === true && values.json === true) throw new UsageError('--dims and --json are two different outputs: give one of them');
        const dimensions = integer('dimensions', values.dimensions);
        if (dimensions !== undefined && dimensions < 1) throw new UsageError(`--dimensions must be at least 1, got ${dimensions}`);
        const json = values.json === true;
        return await embedCommand(io, clientFor(values, io, json ? undefined : notice), {
          model,
          inputs,
          summary: values.dims === true,
          json,
          ...(dimensions !== undefined && { dimensions }),
          ...(values['no-truncate'] === true && { truncate: false as const }),
          ...(values.priority !== undefined && { priority: values.priority }),
        });
      }
      case 'keys': {
        const { values, args } = keysArgs(argv);
        return await keysCommand(io, clientFor(values, io, args.json ? undefined : notice), args);
      }
      case 'models': {
        const { values, args } = modelsArgs(argv);
        return await modelsCommand(io, clientFor(values, io, args.json ? undefined : notice), args);
      }
      case 'drain': {
        const { values, positionals } = strictParse(argv, DRAIN_OPTIONS);
        const agent = positionals[1];
        if (agent === undefined) throw new UsageError('drain needs an agent id (see switchyard ps)');
        if (positionals.length > 2) throw new UsageError(`drain takes one agent, got ${JSON.stringify(positionals.slice(1).join(' '))}`);
        return await drainCommand(io, clientFor(values, io, values.json ? undefined : notice), { agent, undo: values.undo === true, json: values.json === true });
      }
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)} (commands: run, embed, ps, queues, keys, drain, models)`);
    }
  } catch (error) {
    return reportError(io, error);
  }
}
