/** What the CLI touches of its process, passed in so `main.ts` alone reads `process`. */
export interface CliIo {
  stdout: OutputStream;
  stderr: OutputStream;
  /** The whole of standard input (read only when a command needs it). */
  readStdin(): Promise<string>;
  /** A file's text (`run --tools <file>`). */
  readFile(path: string): Promise<string>;
  /** True when standard input is a terminal (then there is nothing to read from it). */
  stdinIsTTY: boolean;
  env: Record<string, string | undefined>;
  /** Subscribes to Ctrl-C; returns the unsubscribe function. */
  onInterrupt(handler: () => void): () => void;
}

export interface OutputStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}
