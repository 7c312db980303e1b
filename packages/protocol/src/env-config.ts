/**
 * Pieces the apps build their configuration from, so that the API and the agent read a
 * variable, and report a bad value, the same way (the simulator, configured by flags and a
 * file as much as by variables, shares the vocabularies: log levels).
 *
 * Variables are strings, so numbers are coerced; a refused configuration names the variable
 * the operator set, not the field in code. Takes the environment as an argument (no
 * `process`): the protocol package stays free of Node-only imports.
 */
import { z } from 'zod';

/**
 * A number read from a variable. Zod gives this message to every check chained on it as
 * well (`EnvPositiveInt` refusing `0` says "must be a number" too): the apps' tests and
 * operators' scripts know that wording, so it stays.
 */
export const EnvNumber = z.coerce.number({ error: 'must be a number' });
export const EnvPositiveInt = EnvNumber.int().positive();
export const EnvNonNegativeInt = EnvNumber.int().nonnegative();
export const EnvNonNegativeNumber = EnvNumber.nonnegative();
/** A switch: `1`/`true` on, `0`/`false` off (a boolean from code too); anything else is refused rather than guessed. */
export const EnvFlag = z
  .union([z.boolean(), z.enum(['1', '0', 'true', 'false'])], { error: 'must be 1 or 0' })
  .transform((value) => value === true || value === '1' || value === 'true');

/** pino's levels; `silent` turns logging off. */
export const LogLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
export type LogLevel = z.infer<typeof LogLevel>;

/**
 * The prefix of every Redis key of a deployment (`redisKeys`, BullMQ's prefix). No `:` and
 * no braces, so a prefix can neither fake a key separator nor move the Cluster hash tags
 * the keys carry.
 */
export const RedisPrefix = z.string().regex(/^[A-Za-z0-9._-]+$/);

/** One `host:port` (an IPv6 host in brackets: `[::1]:7000`), as a Redis client takes it. */
export interface HostPort {
  host: string;
  port: number;
}

function parseHostPort(entry: string): HostPort | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:\s\[\]]+)):(\d{1,5})$/.exec(entry.trim());
  const port = Number(match?.[3]);
  if (!match || !(port >= 1 && port <= 65535)) return undefined;
  return { host: (match[1] ?? match[2])!, port };
}

/**
 * A list of `host:port` (Redis Cluster seed nodes): a comma list from a variable, or from
 * code a list of strings or `{host, port}`. A bad entry is refused, named.
 */
export const EnvHostPortList = z
  .union([z.string(), z.array(z.union([z.string(), z.object({ host: z.string().min(1), port: z.number().int().min(1).max(65535) })]))])
  .transform((value, ctx): HostPort[] => {
    const entries = typeof value === 'string' ? value.split(',').filter((part) => part.trim() !== '') : value;
    const nodes: HostPort[] = [];
    for (const entry of entries) {
      const node = typeof entry === 'string' ? parseHostPort(entry) : entry;
      if (node) nodes.push(node);
      else ctx.addIssue({ code: 'custom', message: `${JSON.stringify(entry)} is not host:port (e.g. redis-0:6379)` });
    }
    if (nodes.length === 0 && entries.length === 0) ctx.addIssue({ code: 'custom', message: 'lists no host:port' });
    return nodes;
  });

/** An environment as `process.env` holds it. */
export type EnvSource = Readonly<Record<string, string | undefined>>;

/** The variable behind each config field; where several are listed, the first one set wins. */
export type EnvNames<Field extends string> = Partial<Record<Field, string | readonly string[]>>;

export interface EnvReading {
  /** Each field whose variable is set and not empty: its value, or its comma list split and trimmed. */
  values: Record<string, string | string[]>;
  /** The variable a field was read from, else the first one declared for it, else the field itself. */
  nameOf(field: string): string;
}

/**
 * Reads the variables `names` declares. An empty variable counts as unset, so `FOO=` in a
 * compose file or shell means "use the default" rather than an invalid value.
 */
export function readEnv<Field extends string>(env: EnvSource, names: EnvNames<Field>, lists: ReadonlySet<Field> = new Set()): EnvReading {
  const values: Record<string, string | string[]> = {};
  const used = new Map<string, string>();
  for (const [field, candidates] of Object.entries(names) as Array<[Field, string | readonly string[]]>) {
    const name = [candidates].flat().find((candidate) => env[candidate] !== undefined && env[candidate] !== '');
    if (name === undefined) continue;
    const value = env[name]!;
    used.set(field, name);
    values[field] = lists.has(field)
      ? value
          .split(',')
          .map((part) => part.trim())
          .filter(Boolean)
      : value;
  }
  const byField: Readonly<Record<string, string | readonly string[] | undefined>> = names;
  return { values, nameOf: (field) => used.get(field) ?? [byField[field] ?? []].flat()[0] ?? field };
}

/**
 * Parses a configuration, or throws one Error naming every problem as `VARIABLE: message`
 * (a list item or nested field follows the variable: `GPU_VRAM.1`), prefixed
 * `invalid <app> configuration:`. The apps print that message and exit with code 2.
 */
export function parseEnvConfig<Schema extends z.ZodType>(
  schema: Schema,
  raw: Record<string, unknown>,
  app: string,
  nameOf: (field: string) => string = (field) => field,
): z.output<Schema> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const [field, ...rest] = issue.path.map(String);
    return `${field === undefined ? '(root)' : [nameOf(field), ...rest].join('.')}: ${issue.message}`;
  });
  throw new Error(`invalid ${app} configuration: ${problems.join('; ')}`);
}

/**
 * One line for an address a server cannot listen on, naming the variable to change
 * (`PORT`, `HOST`); undefined for other errors. Said by the API when it loses a race for
 * its port and by the launcher that checks the port before starting it.
 */
export function listenProblem(code: string | undefined, host: string, port: number): string | undefined {
  switch (code) {
    case 'EADDRINUSE':
      return `port ${port} is already in use: set PORT to a free port (or stop what listens there)`;
    case 'EACCES':
      return `port ${port} needs privileges this process lacks: set PORT to a port above 1023`;
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `HOST ${host} is not an address of this machine: set HOST to one of its addresses (0.0.0.0 listens on all)`;
    default:
      return undefined;
  }
}

/**
 * What Switchyard's Redis must run with (docs/operations.md, "Redis durability"): checked by
 * the API and agents at start (packages/redis/src/redis-settings.ts), and what the launcher
 * starts its own redis-server with.
 */
export const REQUIRED_REDIS_SETTINGS = {
  appendonly: 'yes',
  appendfsync: 'everysec',
  'maxmemory-policy': 'noeviction',
} as const;
