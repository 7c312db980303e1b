#!/usr/bin/env node
import { pino } from 'pino';
import { loadConfig } from './config.js';
import { createApi } from './server.js';

let config;
try {
  config = loadConfig(process.env);
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(2);
}
const logger = pino({ level: config.logLevel, base: { service: 'api' } });
let api;
try {
  api = await createApi(config, { logger });
} catch (error) {
  // A keys file that cannot be read or parsed is a configuration error like a bad variable.
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(2);
}
const url = await api.listen();
logger.info({ url }, 'api listening');

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping');
  await api.close();
  process.exit(0);
};
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
