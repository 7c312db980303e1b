#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import { main } from './cli.js';
import { EXIT } from './exit-codes.js';
import type { CliIo } from './io.js';

// The only place that touches `process`: the commands get it through CliIo.
const handlers = new Set<() => void>();
let interrupts = 0;
process.on('SIGINT', () => {
  interrupts++;
  // A second Ctrl-C does not wait for the cancellation to be confirmed.
  if (interrupts > 1 || handlers.size === 0) process.exit(EXIT.interrupted);
  for (const handler of handlers) handler();
});
// A closed pipe (`switchyard run … | head`) is not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(EXIT.ok);
});

const io: CliIo = {
  stdout: process.stdout,
  stderr: process.stderr,
  stdinIsTTY: process.stdin.isTTY === true,
  readStdin: async () => {
    let text = '';
    process.stdin.setEncoding('utf8');
    for await (const chunk of process.stdin) text += chunk as string;
    return text;
  },
  readFile: (path) => readFile(path, 'utf8'),
  env: process.env,
  onInterrupt: (handler) => {
    handlers.add(handler);
    return () => handlers.delete(handler);
  },
};

process.exitCode = await main(process.argv.slice(2), io);
