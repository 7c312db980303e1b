#!/usr/bin/env node
import { pino } from 'pino';
import { loadConfig } from './config.js';
import { startAgent } from './agent.js';

let config;
try {
  config = loadConfig(process.env);
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(2);
}
const logger = pino({ level: config.logLevel, base: { service: 'agent' } });
let agent;
try {
  agent = await startAgent(config, { logger });
} catch (error) {
  logger.fatal({ err: error }, `agent could not start: ${(error as Error).message}`);
  process.exit(1);
}

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping: finishing running jobs');
  await agent.close();
  process.exit(0);
};
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
