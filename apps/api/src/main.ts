#!/usr/bin/env node
/**
 * The API process. Exit codes:
 * - 0: stopped by SIGTERM/SIGINT;
 * - 1: stopping failed or took longer than STOP_DEADLINE_MS;
 * - 2: it cannot run as configured — an invalid variable, an unreadable keys file, a Redis
 *      that evicts keys (ALLOW_EVICTING_REDIS unset), or an address it cannot listen on
 *      (PORT taken or privileged, HOST not of this machine).
 *      One line on stderr names the setting and the fix.
 */
import { pino } from 'pino';
import { loadConfig } from './config.js';
import { createApi } from './server.js';
import { listenProblem } from '@switchyard/protocol';

/** A stop that waits longer than this (a stuck connection) exits anyway. */
const STOP_DEADLINE_MS = 10_000;

const config = (() => {
  try {
    return loadConfig(process.env);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(2);
  }
})();
const logger = pino({ level: config.logLevel, base: { service: 'api' } });
let api;
try {
  api = await createApi(config, { logger });
} catch (error) {
  // A keys file that cannot be read or parsed is a configuration error like a bad variable.
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(2);
}
let url;
try {
  url = await api.listen();
} catch (error) {
  const problem = listenProblem((error as NodeJS.ErrnoException | null)?.code, config.host, config.port);
  if (problem === undefined) throw error;
  // A setting to change, not a crash: one line instead of the stack of net.Server.listen.
  process.stderr.write(`${problem}\n`);
  process.exit(2);
}
logger.info({ url }, 'api listening');

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping');
  const deadline = setTimeout(() => {
    logger.warn(`stopping took longer than ${STOP_DEADLINE_MS} ms; exiting anyway`);
    process.exit(1);
  }, STOP_DEADLINE_MS);
  try {
    // Readiness fails first; then native streams end with a reconnect hint; then the rest closes.
    const ended = await api.drain(config.drainReadinessMs);
    logger.info({ streams_ended: ended }, 'draining: streams told to reconnect elsewhere');
    await api.close();
  } catch (error) {
    logger.error({ err: error }, `stopping failed: ${(error as Error).message}`);
    process.exit(1);
  }
  clearTimeout(deadline);
  process.exit(0);
};
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
