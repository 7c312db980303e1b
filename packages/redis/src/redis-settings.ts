/**
 * The Redis settings Switchyard's data needs, checked when the API and an agent start.
 *
 * Queues, job records, event logs and the admission ledger live only in Redis. Under an
 * evicting `maxmemory-policy`, RedisConnection deletes keys when it is full: a queued job, or half of
 * one (its record but not its queue entry), vanishes with no error anywhere. Without the
 * append-only file a restart of Redis loses every job since the last snapshot. So a start
 * against such a Redis says so, naming the setting and the fix; an evicting policy stops the
 * start unless the operator says it is wanted (`ALLOW_EVICTING_REDIS=1`). Managed Redis often
 * disables or renames CONFIG: then one warning says the settings could not be checked, and
 * start-up goes on (refusing would make Switchyard unusable there).
 */
import { isCluster, type RedisConnection } from './connection.js';
import { REQUIRED_REDIS_SETTINGS } from '@switchyard/protocol';
import { redactRedisUrl } from './connection-errors.js';

export { REQUIRED_REDIS_SETTINGS };
export type RedisSettingName = keyof typeof REQUIRED_REDIS_SETTINGS;
const SETTING_NAMES = Object.keys(REQUIRED_REDIS_SETTINGS) as RedisSettingName[];

/** The variable that lets the API and agents start on an evicting Redis. */
export const ALLOW_EVICTING_SETTING = 'ALLOW_EVICTING_REDIS';

export interface RedisSettingProblem {
  setting: RedisSettingName;
  value: string;
  required: string;
  /** One sentence: the setting, what it risks, the fix. */
  message: string;
}

export interface RedisSettingsReading {
  /** The values read (a setting the server does not know is absent). */
  values: Partial<Record<RedisSettingName, string>>;
  problems: RedisSettingProblem[];
  /** Settings that could not be read, and why: CONFIG refused (disabled, renamed, ACL) or unknown to the server. */
  unchecked?: { settings: RedisSettingName[]; reason: string };
}

/** What the check logs through; a pino logger is one. */
export interface SettingsLogger {
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export interface RedisSettingsCheckOptions {
  /** Named in the messages (password masked). */
  redisUrl: string;
  /** `ALLOW_EVICTING_REDIS`: an evicting policy is logged, not refused. */
  allowEvicting: boolean;
  logger: SettingsLogger;
}

/** Thrown at start-up on an evicting `maxmemory-policy` unless it is allowed. */
export class RedisSettingsRefused extends Error {
  readonly code = 'redis_evicting';
  readonly setting = 'maxmemory-policy';
  constructor(
    message: string,
    readonly value: string,
  ) {
    super(message);
    this.name = 'RedisSettingsRefused';
  }
}

/**
 * The problems of a set of values. `appendfsync always` passes: it is stricter than
 * `everysec` (it loses nothing, at the price of an fsync per write), so it is not a risk to
 * report. An evicting policy is one even with `maxmemory 0` (no limit yet): a limit can be
 * set at run time with CONFIG SET, and from then on keys go.
 */
export function judgeRedisSettings(values: Partial<Record<RedisSettingName, string>>): RedisSettingProblem[] {
  const problems: RedisSettingProblem[] = [];
  const policy = values['maxmemory-policy'];
  if (policy !== undefined && policy !== 'noeviction') {
    problems.push({
      setting: 'maxmemory-policy',
      value: policy,
      required: 'noeviction',
      message: `Redis runs with maxmemory-policy ${policy}: when it fills up it deletes keys, and those keys are queued jobs, their records and event logs; set maxmemory-policy noeviction (a full Redis then refuses writes, and the API answers 503)`,
    });
  }
  const aof = values.appendonly;
  if (aof !== undefined && aof !== 'yes') {
    problems.push({
      setting: 'appendonly',
      value: aof,
      required: 'yes',
      message: `Redis runs with appendonly ${aof}: a restart of Redis loses every queued and running job written since its last snapshot (if it takes any); set appendonly yes`,
    });
  }
  const fsync = values.appendfsync;
  if (fsync !== undefined && fsync !== 'everysec' && fsync !== 'always') {
    problems.push({
      setting: 'appendfsync',
      value: fsync,
      required: 'everysec',
      message: `Redis runs with appendfsync ${fsync}: the operating system decides when the append-only file reaches the disk (about every 30 s on Linux), so a machine crash loses that much accepted work; set appendfsync everysec (at most about 1 s)`,
    });
  }
  return problems;
}

/** A reply from Redis (as opposed to a connection that failed): CONFIG answered with an error. */
function isReplyError(error: unknown): error is Error {
  return error instanceof Error && error.name === 'ReplyError';
}

/**
 * Reads the settings with CONFIG GET, one setting per call (Redis before 7 takes only one)
 * and judges them. Throws only when Redis cannot be reached; a CONFIG that is refused
 * (disabled, renamed, denied by an ACL) is reported in `unchecked`. Under Redis Cluster
 * every master is read (each holds a share of the jobs; CONFIG sent to the cluster client
 * would reach one node at random): a problem on any of them is reported once.
 */
export async function readRedisSettings(redis: RedisConnection): Promise<RedisSettingsReading> {
  const masters = isCluster(redis) ? redis.nodes('master') : [];
  if (masters.length === 0) return readOneServer(redis);
  const readings = await Promise.all(masters.map((node) => readOneServer(node)));
  const problems = new Map<string, RedisSettingProblem>();
  for (const reading of readings) for (const problem of reading.problems) problems.set(`${problem.setting}=${problem.value}`, problem);
  const unchecked = readings.find((reading) => reading.unchecked)?.unchecked;
  return { values: readings[0]!.values, problems: [...problems.values()], ...(unchecked && { unchecked }) };
}

async function readOneServer(redis: RedisConnection): Promise<RedisSettingsReading> {
  let replies: unknown[];
  try {
    replies = await Promise.all(SETTING_NAMES.map((name) => redis.config('GET', name)));
  } catch (error) {
    if (!isReplyError(error)) throw error;
    return { values: {}, problems: [], unchecked: { settings: [...SETTING_NAMES], reason: `CONFIG GET was refused (${error.message})` } };
  }
  const values: Partial<Record<RedisSettingName, string>> = {};
  for (const [index, name] of SETTING_NAMES.entries()) {
    // [name, value], or [] for a setting the server does not have (a Redis-compatible server).
    const reply = replies[index];
    const value = Array.isArray(reply) ? reply[1] : undefined;
    if (typeof value === 'string') values[name] = value;
  }
  const missing = SETTING_NAMES.filter((name) => values[name] === undefined);
  return {
    values,
    problems: judgeRedisSettings(values),
    ...(missing.length > 0 && { unchecked: { settings: missing, reason: 'CONFIG GET returned no value for them' } }),
  };
}

/**
 * Reads and reports: one warning for what could not be checked, an error per setting that
 * differs. On an evicting policy it throws `RedisSettingsRefused` unless `allowEvicting`
 * (then it logs an error and returns). Throws the connection's error when Redis cannot be
 * reached.
 */
export async function checkRedisSettings(redis: RedisConnection, options: RedisSettingsCheckOptions): Promise<RedisSettingsReading> {
  const reading = await readRedisSettings(redis);
  reportReading(reading, options, 'start');
  return reading;
}

/**
 * The check as start-up runs it. A connection that queues commands (an agent's) waits for
 * Redis, so the check runs before anything else does. A fail-fast connection that is not up
 * yet (the API's: it starts without Redis and answers 503 until Redis is back) is checked
 * when it first becomes ready; that is too late to refuse, so an evicting policy found then
 * is logged as an error. Only a refusal is thrown: a connection lost in the middle of the
 * check postpones it to the next ready.
 */
export async function checkRedisSettingsAtStart(redis: RedisConnection, options: RedisSettingsCheckOptions): Promise<void> {
  if (redis.status !== 'ready' && redis.options.enableOfflineQueue === false) {
    checkWhenReady(redis, options);
    return;
  }
  try {
    reportReading(await readRedisSettings(redis), options, 'start');
  } catch (error) {
    if (error instanceof RedisSettingsRefused) throw error;
    checkWhenReady(redis, options);
  }
}

function checkWhenReady(redis: RedisConnection, options: RedisSettingsCheckOptions): void {
  redis.once('ready', () => {
    readRedisSettings(redis).then(
      (reading) => reportReading(reading, options, 'late'),
      () => checkWhenReady(redis, options),
    );
  });
}

function reportReading(reading: RedisSettingsReading, options: RedisSettingsCheckOptions, when: 'start' | 'late'): void {
  const { logger } = options;
  const redis = redactRedisUrl(options.redisUrl);
  if (reading.unchecked) {
    const { settings, reason } = reading.unchecked;
    const required = settings.map((name) => `${name} ${REQUIRED_REDIS_SETTINGS[name]}`).join(', ');
    logger.warn({ redis, settings, reason }, `could not check the settings of Redis at ${redis}: ${reason}; make sure it runs with ${required} (docs/operations.md)`);
  }
  let refusal: RedisSettingsRefused | undefined;
  for (const problem of reading.problems) {
    const fields = { redis, setting: problem.setting, value: problem.value, required: problem.required };
    if (problem.setting !== 'maxmemory-policy') {
      logger.error(fields, problem.message);
    } else if (options.allowEvicting) {
      logger.error({ ...fields, [ALLOW_EVICTING_SETTING]: true }, `${problem.message} — starting anyway, as ${ALLOW_EVICTING_SETTING}=1 allows`);
    } else if (when === 'late') {
      logger.error(fields, `${problem.message} — found only once Redis answered, after start-up: running on; fix it and restart, or set ${ALLOW_EVICTING_SETTING}=1`);
    } else {
      // Thrown after the other problems are logged, so one start names all of them.
      refusal = new RedisSettingsRefused(`${problem.message} — refusing to start (${ALLOW_EVICTING_SETTING}=1 starts anyway)`, problem.value);
    }
  }
  if (refusal) throw refusal;
}
