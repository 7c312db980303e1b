export { main, USAGE, CLI_VERSION, DEFAULT_URL } from './cli.js';
export { EXIT } from './exit-codes.js';
export type { CliIo, OutputStream } from './io.js';
