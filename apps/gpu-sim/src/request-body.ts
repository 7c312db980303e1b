/**
 * Reading request bodies of the Ollama endpoints the simulator serves. The schemas are the
 * shared Ollama wire module's base schemas (@switchyard/protocol ollama-wire.ts): the
 * simulator accepts what Ollama accepts.
 *
 * Bodies arrive as raw text whatever their Content-Type (curl's `-d` sends
 * application/x-www-form-urlencoded, some clients send none) and are parsed here, so errors
 * keep Ollama's `{"error": "..."}` shape.
 */
import type { z } from 'zod';
import { SimError } from './sim-error.js';

/** Parses the raw body text as JSON; an empty body is Ollama's "missing request body". */
export function readJsonBody(body: unknown): unknown {
  if (body === undefined || body === null || body === '') throw new SimError('bad_request', 'missing request body');
  if (typeof body !== 'string') return body;
  try {
    return JSON.parse(body);
  } catch (error) {
    throw new SimError('bad_request', `invalid JSON body: ${(error as Error).message}`);
  }
}

/** Validates a parsed body; the first problem becomes a 400 naming its field. */
export function validateBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new SimError('bad_request', 'request body must be a JSON object');
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue) throw new SimError('bad_request', 'invalid request');
  if (issue.path.length === 1 && issue.path[0] === 'model') throw new SimError('bad_request', 'model is required');
  const path = issue.path
    .map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`))
    .join('')
    .replace(/^\./, '');
  throw new SimError('bad_request', `invalid request: ${path}: ${issue.message}`);
}
