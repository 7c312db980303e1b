#!/usr/bin/env node
/**
 * The agent process. Exit codes:
 * - 0: stopped by SIGTERM/SIGINT: its running jobs finished, or outlasted
 *      AGENT_DRAIN_TIMEOUT_MS and were handed back to their queues (another agent continues
 *      them): a drain loses no job, so it is not a failure;
 * - 1: could not start, or could not hand its jobs back (Redis did not answer: they return
 *      when their locks expire);
 * - 2: a setting is invalid (the line names it).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { loadConfig } from './config.js';
import { startAgent, type RunningAgent } from './agent.js';

/** Handing jobs back needs Redis; one that has gone must not hold the exit past this. */
const HAND_BACK_BUDGET_MS = 2_000;

const config = (() => {
  try {
    return loadConfig(process.env);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(2);
  }
})();
const logger = pino({ level: config.logLevel, base: { service: 'agent' } });
// The variable the backend URL came from (loadConfig's order), so a warning names what to change.
const backendSetting = process.env.BACKEND_URL ? 'BACKEND_URL' : 'OLLAMA_URL';

let agent: RunningAgent | undefined;
let stopping = false;

/** Past the deadline: jobs go back to their queues rather than die with the process. */
const forceStop = async (running: RunningAgent) => {
  const jobs = running.activeJobs();
  const handedBack = await Promise.race([running.handBack(), sleep(HAND_BACK_BUDGET_MS).then(() => undefined)]).catch(() => undefined);
  const outcome =
    handedBack === undefined
      ? 'could not hand them back (Redis did not answer); they return to their queues when their locks expire'
      : `handed ${handedBack} back to their queues`;
  logger.warn(
    { jobs, handed_back: handedBack ?? 0, drain_timeout_ms: config.agentDrainTimeoutMs },
    `drain deadline of ${config.agentDrainTimeoutMs} ms (AGENT_DRAIN_TIMEOUT_MS) passed with ${jobs} job(s) running: ${outcome}; exiting`,
  );
  process.exit(handedBack === undefined ? 1 : 0);
};

const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  const running = agent;
  // Still starting (waiting for Redis, say): it has taken no job yet, nothing to finish.
  if (!running) {
    logger.info({ signal }, 'stopping before start-up finished');
    process.exit(0);
  }
  logger.info({ signal, drain_timeout_ms: config.agentDrainTimeoutMs }, 'stopping: finishing running jobs');
  const deadline = setTimeout(() => void forceStop(running), config.agentDrainTimeoutMs);
  try {
    await running.close();
  } catch (error) {
    logger.error({ err: error }, `stopping failed: ${(error as Error).message}`);
    process.exit(1);
  }
  clearTimeout(deadline);
  process.exit(0);
};
// Listening from the start: a signal during a start-up stuck on Redis still stops at once, and cleanly.
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));

try {
  agent = await startAgent(config, { logger, backendSetting });
} catch (error) {
  logger.fatal({ err: error }, `agent could not start: ${(error as Error).message}`);
  process.exit(1);
}
