/**
 * The baselines' client: Ollama's streaming `/api/generate` over undici, reading NDJSON
 * incrementally so the first token's arrival is timed when it arrives, not when the answer ends.
 */
import { request, type Dispatcher } from 'undici';
import { parseNdjson } from '@switchyard/backends';

export interface GenerateBody {
  model: string;
  prompt: string;
  keep_alive: string | number;
  options: { seed: number; num_predict?: number };
}

export interface GenerateOutcome {
  status: number;
  /** Error text: an `{"error"}` body, an error line in the stream, or the transport's error. */
  error?: string;
  /** Epoch ms of the first non-empty token line. */
  firstTokenAt?: number;
  /** Final line's load_duration in ms: arrival at the server → holding a slot (queueing included). */
  loadDurationMs?: number;
  tokens: number;
  finishedAt?: number;
}

interface Line {
  response?: string;
  done?: boolean;
  error?: string;
  load_duration?: number;
}

export async function generateStream(dispatcher: Dispatcher, baseUrl: string, body: GenerateBody, signal: AbortSignal): Promise<GenerateOutcome> {
  let response: Dispatcher.ResponseData;
  try {
    response = await request(`${baseUrl}/api/generate`, {
      dispatcher,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, stream: true }),
      signal,
    });
  } catch (error) {
    return { status: 0, error: (error as Error).message, tokens: 0 };
  }
  const outcome: GenerateOutcome = { status: response.statusCode, tokens: 0 };
  if (response.statusCode !== 200) {
    const text = await response.body.text().catch(() => '');
    try {
      outcome.error = (JSON.parse(text) as { error?: string }).error ?? text;
    } catch {
      outcome.error = text || `HTTP ${response.statusCode}`;
    }
    return outcome;
  }
  const handle = (line: Line) => {
    if (line.error !== undefined) {
      outcome.error = line.error;
      return;
    }
    if (line.response) {
      outcome.firstTokenAt ??= Date.now();
      outcome.tokens++;
    }
    if (line.done) {
      outcome.loadDurationMs = (line.load_duration ?? 0) / 1e6;
      outcome.finishedAt = Date.now();
    }
  };
  try {
    for await (const line of parseNdjson(response.body as AsyncIterable<Uint8Array>)) handle(line as Line);
  } catch (error) {
    outcome.error ??= (error as Error).message;
  }
  if (outcome.finishedAt === undefined) outcome.error ??= 'stream ended without a final line';
  return outcome;
}

/** The models each node holds in VRAM right now (`/api/ps`), as the seed gateway would poll it. */
export async function residentBytes(dispatcher: Dispatcher, baseUrl: string): Promise<number> {
  const response = await request(`${baseUrl}/api/ps`, { dispatcher });
  const body = (await response.body.json()) as { models?: Array<{ size_vram?: number }> };
  return (body.models ?? []).reduce((sum, model) => sum + (model.size_vram ?? 0), 0);
}
