#!/usr/bin/env node
/**
 * switchyard-gpu-sim: the command-line entry. The only place that reads process.env and
 * process.argv; exits 2 on a bad configuration, drains on SIGINT/SIGTERM.
 */
import { pino } from 'pino';
import { ConfigError, USAGE, loadConfig, wantsHelp, type GpuSimConfig } from './config.js';
import { createGpuSim } from './gpu-sim.js';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (wantsHelp(argv)) {
    process.stdout.write(USAGE);
    return;
  }

  let config: GpuSimConfig;
  try {
    config = loadConfig(argv, process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`switchyard-gpu-sim: ${error.message}\n`);
    process.exitCode = 2;
    return;
  }

  const logger = pino({ level: config.log_level, name: 'switchyard-gpu-sim' });
  let sim;
  try {
    sim = await createGpuSim(config, { logger });
  } catch (error) {
    logger.fatal({ err: error }, 'cannot start');
    process.exitCode = 1;
    return;
  }
  logger.info(
    {
      url: sim.url,
      gpu: config.gpu_name,
      vram_bytes: config.vram_bytes,
      time_scale: config.time_scale,
      models: config.models.map((model) => model.name),
    },
    `gpu-sim listening on ${sim.url}`,
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal, exiting now');
      process.exit(130);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    sim.close().then(
      () => logger.info('stopped'),
      (error: unknown) => {
        logger.error({ err: error }, 'unclean shutdown');
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`switchyard-gpu-sim: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
