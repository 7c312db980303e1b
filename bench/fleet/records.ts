/** What the load generator learns about each request, whatever policy served it. */
export interface RequestRecord {
  id: number;
  model: string;
  warmup: boolean;
  burst: boolean;
  /** Epoch ms when the client sent it. */
  submitted: number;
  outcome: 'completed' | 'failed';
  /** Why it failed: `oom`, `http_<status>[:<code>]`, `backend_error: …`, `timeout`, … */
  failure?: string;
  /** Node that served it (or, for a failure, the last one tried). */
  node?: string;
  /** Epoch ms when it held a backend slot on a loaded model (generation could begin). */
  slot?: number;
  /** Epoch ms of the first token at the client. */
  first_token?: number;
  /** Epoch ms when the client saw the end (last line, done event, error, or its own timeout). */
  finished?: number;
  /** Refusals for lack of VRAM ("model requires more system memory") this request met. */
  oom: number;
  /** Switchyard only: the agent's own `started.cold`. */
  agent_cold?: boolean;
  tokens: number;
}

/** Ollama's answer when a model cannot fit on the GPU even when it is empty. */
export function isMemoryRefusal(message: string | undefined): boolean {
  return message !== undefined && /requires more system memory/i.test(message);
}
