/**
 * A streamed Ollama answer: `application/x-ndjson`, one JSON object per line, written to the
 * raw Node response (Fastify's reply is hijacked for it). Writes respect backpressure, and an
 * error before the first line can still go out as a proper HTTP status.
 */
import type { ServerResponse } from 'node:http';

export class NdjsonResponse {
  private started = false;

  constructor(private readonly res: ServerResponse) {}

  get headersSent(): boolean {
    return this.started;
  }

  /** Writes one line; resolves once the socket can take more (or is gone). */
  async send(line: object): Promise<void> {
    if (this.res.destroyed) return;
    if (!this.started) {
      this.res.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
      this.started = true;
    }
    if (!this.res.write(`${JSON.stringify(line)}\n`)) await this.drained();
  }

  /**
   * Reports an error: as a status and `{"error"}` body if nothing was sent yet, else as a last
   * `{"error"}` line on the 200 stream, which is what Ollama does mid-stream.
   */
  fail(status: number, message: string): void {
    if (this.res.destroyed) return;
    if (!this.started) {
      this.started = true;
      this.res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
      this.res.end(JSON.stringify({ error: message }));
      return;
    }
    this.res.end(`${JSON.stringify({ error: message })}\n`);
  }

  end(): void {
    if (!this.res.destroyed && !this.res.writableEnded) this.res.end();
  }

  /** Drops the connection (the client is gone anyway). */
  destroy(): void {
    if (!this.res.destroyed) this.res.destroy();
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }
}
