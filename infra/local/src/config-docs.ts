/**
 * docs/configuration.md, rendered from the apps' own configuration code.
 *
 * Each field's description is its zod schema's `.describe()` text. Which variable (and
 * flag) sets which field, which of two wins, and the default a field gets when nothing is
 * set are not copied from anywhere: they are observed by running each app's real
 * `loadConfig` on probe inputs (the environment it is handed records every name it reads).
 * So the page cannot list a variable the code does not read, miss one it does, or show a
 * default it does not apply. `pnpm docs:config` writes the file; a test fails when it is out
 * of date.
 */
import { isDeepStrictEqual } from 'node:util';
import { AgentConfig, loadConfig as loadAgentConfig } from '@switchyard/agent';
import { ApiConfig, loadConfig as loadApiConfig } from '@switchyard/api';
import { GpuSimConfig, SAMPLE_CATALOG, SAMPLE_REGISTRY, USAGE as GPU_SIM_USAGE, loadConfig as loadGpuSimConfig } from '@switchyard/gpu-sim';

type Env = Record<string, string | undefined>;
type Loaded = Record<string, unknown>;

/** What the renderer needs of a zod field schema. */
interface FieldSchema {
  readonly description?: string | undefined;
  safeParse(value: unknown): { success: boolean; data?: unknown };
}

export interface ConfigSource {
  /** Section heading, and the sentence under it. */
  heading: string;
  intro: string;
  /** The zod object's fields, in the order the table lists them. */
  shape: Readonly<Record<string, FieldSchema>>;
  /** The app's loader; throws on input it refuses. */
  load(env: Env, argv: readonly string[]): Loaded;
  /** Flags the loader may accept (candidates: each is probed like a variable). */
  flags?: readonly string[];
  /** The table's first column: the variable (one per field) or the field itself (file, flag, variable). */
  keyColumn: 'variable' | 'field';
  /**
   * The default shown for a field the loader leaves unset (else "(none)") or sets
   * differently on every run; refused for a field with a fixed default, which is shown as it is.
   */
  defaultNotes?: Readonly<Record<string, string>>;
  /** Inputs the loader reads that set no field by themselves (a config file's path), with their meaning. */
  otherInputs?: Readonly<Record<string, string>>;
}

interface Input {
  kind: 'env' | 'flag';
  name: string;
}

interface Effect {
  field: string;
  value: unknown;
  probe: string;
}

interface Row {
  field: string;
  variables: string[];
  flags: string[];
  defaultText: string;
  description: string;
}

/** Values tried on every input: two of each kind (numbers, log levels, URLs), so two inputs of one field can be told apart, and a fraction, a `host:port` list, a byte size, a word, a switch (`1`). */
const PROBE_VALUES = ['7', '8', '700', '0.5', 'debug', 'warn', 'http://probe.invalid:7/', 'http://probe.invalid:8/', 'probe.invalid:7', '7GiB', 'probe', '1', 'probe=7'];
const ENV_NAME = /^[A-Z][A-Z0-9_]*$/;

function attempt(source: ConfigSource, env: Env, argv: readonly string[]): Loaded | undefined {
  try {
    return source.load(env, argv);
  } catch {
    return undefined;
  }
}

function inputsOf(input: Input, value: string, into: { env: Env; argv: string[] } = { env: {}, argv: [] }) {
  if (input.kind === 'env') into.env[input.name] = value;
  else into.argv.push(`--${input.name}=${value}`);
  return into;
}

const label = (input: Input) => (input.kind === 'env' ? input.name : `--${input.name}`);

/** Every variable the loader reads, in the order it reads them. */
function variablesRead(source: ConfigSource): string[] {
  const names: string[] = [];
  const env = new Proxy({} as Env, {
    get(_target, name) {
      if (typeof name === 'string' && ENV_NAME.test(name) && !names.includes(name)) names.push(name);
      return undefined;
    },
  });
  attempt(source, env, []);
  return names;
}

interface Trial {
  input: Input;
  probe: string;
  first: Loaded;
  second: Loaded;
}

/**
 * Loads the config twice with each probe value of each input, then once with nothing set.
 * A field whose value with nothing set is not the baseline's is `varying` (a random id, a
 * time stamp): loads made later can differ from the baseline without any input.
 */
function runTrials(source: ConfigSource, inputs: readonly Input[], baseline: Loaded, varying: Set<string>): Trial[] {
  const trials: Trial[] = [];
  for (const input of inputs) {
    for (const probe of PROBE_VALUES) {
      const { env, argv } = inputsOf(input, probe);
      const first = attempt(source, env, argv);
      const second = attempt(source, env, argv);
      const unset = attempt(source, {}, []);
      for (const field of Object.keys(source.shape)) if (!isDeepStrictEqual(unset?.[field], baseline[field])) varying.add(field);
      if (first && second) trials.push({ input, probe, first, second });
    }
  }
  return trials;
}

/**
 * The fields an input sets, with the value each probe gave them. A field counts as set when
 * two loads with the same probe agree on it and differ from the default; a varying field
 * counts when it takes the probe's value.
 */
function effectsOf(source: ConfigSource, input: Input, trials: readonly Trial[], baseline: Loaded, varying: ReadonlySet<string>): Effect[] {
  const effects: Effect[] = [];
  for (const { probe, first, second } of trials.filter((trial) => trial.input === input)) {
    for (const field of Object.keys(source.shape)) {
      if (!isDeepStrictEqual(first[field], second[field])) continue;
      const set = varying.has(field) ? String(first[field]) === probe : !isDeepStrictEqual(first[field], baseline[field]);
      if (set) effects.push({ field, value: first[field], probe });
    }
  }
  return effects;
}

/** Orders inputs that set one field so that the one that wins when both are set comes first. */
function byPrecedence(source: ConfigSource, field: string, inputs: Input[], effects: ReadonlyMap<Input, Effect[]>): Input[] {
  const wins = (a: Input, b: Input): boolean => {
    for (const ea of effects.get(a)!.filter((effect) => effect.field === field)) {
      for (const eb of effects.get(b)!.filter((effect) => effect.field === field)) {
        if (isDeepStrictEqual(ea.value, eb.value)) continue;
        const both = inputsOf(b, eb.probe, inputsOf(a, ea.probe));
        const loaded = attempt(source, both.env, both.argv);
        if (!loaded) continue;
        if (isDeepStrictEqual(loaded[field], ea.value)) return true;
        if (isDeepStrictEqual(loaded[field], eb.value)) return false;
      }
    }
    throw new Error(`cannot tell whether ${label(a)} or ${label(b)} wins for ${field}`);
  };
  return [...inputs].sort((a, b) => (a === b ? 0 : wins(a, b) ? -1 : 1));
}

function isByteSize(schema: FieldSchema): boolean {
  return schema.safeParse('1KiB').data === 1024 || isDeepStrictEqual(schema.safeParse(['1KiB']).data, [1024]);
}

function formatBytes(bytes: number): string {
  const units: Array<[string, number]> = [
    ['TiB', 2 ** 40],
    ['TB', 1e12],
    ['GiB', 2 ** 30],
    ['GB', 1e9],
    ['MiB', 2 ** 20],
    ['MB', 1e6],
    ['KiB', 2 ** 10],
    ['KB', 1e3],
  ];
  // The largest unit that divides it: 24e9 is `24GB`, not `23437500KiB`.
  for (const [unit, size] of units) if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  return String(bytes);
}

function formatDefault(value: unknown, bytes: boolean): string {
  const one = (item: unknown) => (bytes && typeof item === 'number' ? formatBytes(item) : String(item));
  if (Array.isArray(value)) {
    if (value.length === 0) return '(none)';
    const names = value.map((item: unknown) => (typeof item === 'object' && item !== null && 'name' in item ? (item as { name: unknown }).name : undefined));
    if (names.every((name) => typeof name === 'string')) return names.map((name) => `\`${name}\``).join(', ');
    return `\`${value.map(one).join(',')}\``;
  }
  // A map (AGENT_LABELS): written as it is set, `key=value,…`.
  if (typeof value === 'object' && value !== null) {
    const pairs = Object.entries(value);
    return pairs.length === 0 ? '(none)' : `\`${pairs.map(([key, item]) => `${key}=${String(item)}`).join(',')}\``;
  }
  return `\`${one(value)}\``;
}

/** The rows of one app's table, checked against what its loader does. */
export function describeConfig(source: ConfigSource): { rows: Row[]; notes: string[] } {
  const baseline = attempt(source, {}, []);
  const again = attempt(source, {}, []);
  if (!baseline || !again) throw new Error(`${source.heading}: the loader refuses an empty environment`);
  const varying = new Set(Object.keys(source.shape).filter((field) => !isDeepStrictEqual(baseline[field], again[field])));

  const inputs: Input[] = [...variablesRead(source).map((name): Input => ({ kind: 'env', name })), ...(source.flags ?? []).map((name): Input => ({ kind: 'flag', name }))];
  const trials = runTrials(source, inputs, baseline, varying);
  const effects = new Map(inputs.map((input) => [input, effectsOf(source, input, trials, baseline, varying)] as const));

  const others = new Set(Object.keys(source.otherInputs ?? {}));
  const notes: string[] = [];
  for (const [input, found] of effects) {
    const fields = [...new Set(found.map((effect) => effect.field))];
    if (fields.length === 0 && !others.delete(label(input))) {
      throw new Error(`${source.heading}: ${label(input)} is read but sets no field; describe it in otherInputs`);
    }
    if (fields.length > 1) notes.push(`\`${label(input)}\` sets ${fields.map((field) => `\`${field}\``).join(' and ')}.`);
  }
  if (others.size > 0) throw new Error(`${source.heading}: otherInputs lists ${[...others].join(', ')}, which the loader does not read`);

  const rows = Object.entries(source.shape).map(([field, schema]): Row => {
    const description = schema.description;
    if (!description) throw new Error(`${source.heading}: field ${field} has no .describe() text`);
    const setters = inputs.filter((input) => effects.get(input)!.some((effect) => effect.field === field));
    const ordered = setters.length > 1 ? byPrecedence(source, field, setters, effects) : setters;
    const note = source.defaultNotes?.[field];
    const value = baseline[field];
    let defaultText: string;
    if (varying.has(field) || value === undefined) {
      if (varying.has(field) && note === undefined) throw new Error(`${source.heading}: ${field} differs on every load; give it a default note`);
      defaultText = note ?? '(none)';
    } else {
      if (note !== undefined) throw new Error(`${source.heading}: ${field} has a fixed default, so it takes no default note`);
      defaultText = formatDefault(value, isByteSize(schema));
    }
    return {
      field,
      variables: ordered.filter((input) => input.kind === 'env').map((input) => input.name),
      flags: ordered.filter((input) => input.kind === 'flag').map((input) => `--${input.name}`),
      defaultText,
      description,
    };
  });
  for (const field of Object.keys(source.defaultNotes ?? {})) {
    if (!(field in source.shape)) throw new Error(`${source.heading}: defaultNotes names ${field}, which is not a field`);
  }
  if (source.keyColumn === 'variable') {
    const unset = rows.filter((row) => row.variables.length === 0).map((row) => row.field);
    if (unset.length > 0) throw new Error(`${source.heading}: no variable sets ${unset.join(', ')}`);
  }
  if (rows.some((row) => row.variables.length > 1 || row.flags.length > 1)) {
    notes.unshift('Where a row names two variables and both are set, the first one wins.');
  }
  return { rows, notes };
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const code = (names: string[]) => names.map((name) => `\`${name}\``);
const alternatives = (names: string[]) => {
  const [first, ...rest] = code(names);
  return first === undefined ? '—' : rest.length === 0 ? first : `${first} (or ${rest.join(', ')})`;
};

function renderSection(source: ConfigSource): string {
  const { rows, notes } = describeConfig(source);
  const lines = [`## ${source.heading}`, '', source.intro, ''];
  if (source.keyColumn === 'variable') {
    lines.push('| Variable | Default | Meaning |', '| --- | --- | --- |');
    for (const row of rows) lines.push(`| ${alternatives(row.variables)} | ${cell(row.defaultText)} | ${cell(row.description)} |`);
  } else {
    lines.push('| Field | Flag | Variable | Default | Meaning |', '| --- | --- | --- | --- | --- |');
    for (const row of rows) {
      const flag = row.flags.length > 0 ? code(row.flags).join(', ') : '(file only)';
      lines.push(`| \`${row.field}\` | ${flag} | ${alternatives(row.variables)} | ${cell(row.defaultText)} | ${cell(row.description)} |`);
    }
  }
  const others = Object.entries(source.otherInputs ?? {}).map(([name, meaning]) => `\`${name}\`: ${meaning}`);
  if (notes.length > 0 || others.length > 0) lines.push('', ...[...notes, ...others].map((note) => `- ${note}`));
  return lines.join('\n');
}

/** The flags the simulator's `--help` lists. */
function flagsOfUsage(usage: string): string[] {
  return [...usage.matchAll(/^\s+(?:-\w, )?--([a-z][a-z-]*)/gm)].map((match) => match[1]!);
}

export const CONFIG_SOURCES: readonly ConfigSource[] = [
  {
    heading: 'API',
    intro: '`apps/api` (`apps/api/src/config.ts`). Limits here are defaults: they change at run time without a restart ([operations](operations.md#limits)).',
    shape: ApiConfig.shape,
    load: (env) => loadApiConfig(env) as unknown as Loaded,
    keyColumn: 'variable',
    defaultNotes: {
      publicBaseUrl: '(relative links)',
      apiKeys: '(none: open)',
      corsOrigins: '(none: CORS off)',
    },
  },
  {
    heading: 'Agent',
    intro: '`apps/agent` (`apps/agent/src/config.ts`), one per GPU node. How the placement settings act: [placement](placement.md).',
    shape: AgentConfig.shape,
    load: (env) => loadAgentConfig(env) as unknown as Loaded,
    keyColumn: 'variable',
    defaultNotes: { agentId: 'hostname + random' },
  },
  {
    heading: 'GPU simulator',
    intro:
      '`apps/gpu-sim` (`apps/gpu-sim/src/config.ts`). Precedence: defaults < JSON file < environment < flags. ' +
      'Byte sizes take numbers or strings: `24GB` (10⁹), `24GiB` or `24G` (2³⁰). ' +
      "The catalog format and the sample catalog: [the simulator's README](../apps/gpu-sim/README.md#catalog).",
    shape: GpuSimConfig.shape,
    load: (env, argv) => loadGpuSimConfig(argv, env) as unknown as Loaded,
    flags: flagsOfUsage(GPU_SIM_USAGE),
    keyColumn: 'field',
    // Each load stamps the catalog's `modified_at` with the time.
    defaultNotes: {
      models: `the sample catalog: ${SAMPLE_CATALOG.map((model) => `\`${model.name}\``).join(', ')}`,
      registry: `the sample registry: the sample catalog and ${SAMPLE_REGISTRY.filter((model) => !SAMPLE_CATALOG.some((m) => m.name === model.name))
        .map((model) => `\`${model.name}\``)
        .join(', ')}`,
    },
    otherInputs: {
      GPU_SIM_CONFIG: 'a JSON config file of the fields above (snake_case), unless `--config` names one.',
      '--config': 'the same, from the command line.',
      '--help': 'prints the flags and exits.',
    },
  },
];

export const CONFIG_DOCS_PATH = 'docs/configuration.md';

/** The whole of docs/configuration.md. */
export function renderConfigDocs(sources: readonly ConfigSource[] = CONFIG_SOURCES): string {
  return [
    "<!-- Generated by `pnpm docs:config` (infra/local/src/config-docs.ts) from the apps' zod config schemas and loaders. Edit the schemas' .describe() texts, not this file: a test fails when it is out of date. -->",
    '',
    '# Configuration',
    '',
    'Every app reads its settings from the environment (the simulator also from flags and a JSON file), validates them at start and, on a bad value, exits with code 2 and a message naming the variable. Each table lists every setting its app reads.',
    '',
    sources.map(renderSection).join('\n\n'),
    '',
  ].join('\n');
}
