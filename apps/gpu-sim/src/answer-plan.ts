/**
 * What the simulated model answers, beyond plain text: a tool call, a JSON document for
 * `format`, an answer about a tool's result or about images. Every choice is deterministic
 * (seeded from the seed and the prompt), like the text generator's.
 *
 * In order of precedence:
 * 1. **Tool calls** (chat, a tool-capable model, non-empty `tools`, `tool_choice` not "none",
 *    the last message a user turn): the model answers with calls instead of text. The tool is
 *    the one `tool_choice` names (`{type: "function", function: {name}}`, a Switchyard
 *    extension Ollama ignores), else one picked by a hash of the conversation. With two or more
 *    tools, `tool_choice` absent, "auto" or "required" and `parallel_tool_calls` not false, it
 *    calls two: the picked one and the next in the list (wrapping round). Arguments satisfy the
 *    tool's `parameters` schema (json-schema-sample.ts). `num_predict` does not cut calls.
 * 2. **`format`**: `"json"` gives a JSON object (`{"answer": "<the text it would have said>"}`),
 *    a JSON schema a document that satisfies it. Streamed as JSON-sized tokens; `num_predict`
 *    at or below the token count cuts it there (done_reason "length"), leaving invalid JSON, as
 *    Ollama's would.
 * 3. **A tool's result** (the chat ends with `tool` messages): the answer quotes each result
 *    (`The get_weather tool returned "…".`) before going on in the usual generated words.
 * 4. **Images** (a vision model with images in the request): the answer starts "The image
 *    shows …" ("The 2 images show …"), seeded by the images too, so other images, other text.
 * 5. Otherwise the plain generated text (token-generator.ts), unchanged.
 * A chat ending in a partial assistant answer continues the answer when the partial answer is
 * its beginning; for 2–4 it otherwise gets the whole answer (plain text: a fresh one, as before).
 */
import { createHash } from 'node:crypto';
import type { OllamaTool, OllamaToolCall } from '@switchyard/protocol';
import { sampleArguments, sampleJson } from './json-schema-sample.js';
import {
  continuedPlan,
  continuePlan,
  fixedTextPlan,
  jsonTokens,
  planResponse,
  planText,
  proseTokens,
  seededRandom,
  type PlanInput,
  type ResponsePlan,
} from './token-generator.js';

export type ToolChoice = string | { type?: string | null | undefined; function: { name: string } } | null | undefined;

export interface ToolResult {
  content: string;
  toolName?: string | undefined;
}

export interface AnswerInput extends PlanInput {
  /** The partial assistant answer the chat ends with, to be continued. */
  continues?: string | undefined;
  tools: readonly OllamaTool[];
  toolChoice: ToolChoice;
  parallelToolCalls: boolean | undefined;
  /** Role of the chat's last message (undefined for generate). */
  lastRole?: string | undefined;
  /** The `tool` messages the chat ends with, oldest first. */
  toolResults: readonly ToolResult[];
  /** `format` as sent: "json", a schema object, or nothing. */
  format: unknown;
  /** Base64 images the (vision) model is shown. */
  images: readonly string[];
}

export type Answer = { kind: 'text'; plan: ResponsePlan } | { kind: 'tool_calls'; calls: OllamaToolCall[]; plan: ResponsePlan };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The tools to call: the named one, else a hashed pick (and its neighbour when parallel calls are allowed). */
function chooseTools(input: AnswerInput): OllamaTool[] {
  const { tools, toolChoice } = input;
  if (isObject(toolChoice)) {
    const named = tools.find((tool) => tool.function.name === toolChoice.function.name);
    if (named) return [named];
  }
  const start = Math.floor(seededRandom(input.seed, `tools\u0000${input.prompt}`)() * tools.length);
  const first = tools[start] as OllamaTool;
  const open = toolChoice === undefined || toolChoice === null || toolChoice === 'auto' || toolChoice === 'required';
  if (tools.length >= 2 && open && input.parallelToolCalls !== false) return [first, tools[(start + 1) % tools.length] as OllamaTool];
  return [first];
}

function toolCalls(input: AnswerInput): OllamaToolCall[] {
  return chooseTools(input).map((tool, index) => ({
    function: {
      index,
      name: tool.function.name,
      arguments: sampleArguments(tool.function.parameters, `${input.seed}\u0000${input.prompt}\u0000${tool.function.name}\u0000${index}`),
    },
  }));
}

function wantsToolCall(input: AnswerInput): boolean {
  return input.tools.length > 0 && input.toolChoice !== 'none' && input.lastRole === 'user' && input.continues === undefined;
}

/** The whole natural text for this input, uncut (what prefixed answers go on with). */
function naturalText(input: PlanInput): string {
  return planText(planResponse({ ...input, numPredict: undefined }));
}

function excerpt(text: string, max = 80): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max).trimEnd()}…` : flat;
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

function formatText(input: AnswerInput): string | undefined {
  if (input.format === 'json') return JSON.stringify({ answer: naturalText(input) });
  if (isObject(input.format)) return JSON.stringify(sampleJson(input.format, `${input.seed}\u0000${input.prompt}`) ?? null);
  return undefined;
}

function imagesKey(images: readonly string[]): string {
  const hash = createHash('sha256');
  for (const image of images) hash.update(image).update('\u0000');
  return hash.digest('hex');
}

export function planAnswer(input: AnswerInput): Answer {
  if (wantsToolCall(input)) {
    const calls = toolCalls(input);
    return { kind: 'tool_calls', calls, plan: fixedTextPlan(jsonTokens(JSON.stringify(calls.map((call) => call.function)))) };
  }
  const json = formatText(input);
  let whole: ResponsePlan | undefined;
  if (json !== undefined) {
    whole = fixedTextPlan(jsonTokens(json), input.numPredict);
  } else if (input.toolResults.length > 0) {
    const quotes = input.toolResults.map((result) => `The ${result.toolName ? `${result.toolName} ` : ''}tool returned "${excerpt(result.content)}".`).join(' ');
    whole = fixedTextPlan(proseTokens(`${quotes} ${naturalText(input)}`), input.numPredict);
  } else if (input.images.length > 0) {
    const seeded = { ...input, prompt: `${input.prompt}\u0000images\u0000${imagesKey(input.images)}` };
    const lead = input.images.length === 1 ? 'The image shows' : `The ${input.images.length} images show`;
    whole = fixedTextPlan(proseTokens(`${lead} ${lowerFirst(naturalText(seeded))}`), input.numPredict);
  }
  if (whole === undefined) return { kind: 'text', plan: input.continues !== undefined ? continuedPlan(input, input.continues) : planResponse(input) };
  if (input.continues === undefined) return { kind: 'text', plan: whole };
  const fixed = whole;
  return { kind: 'text', plan: continuePlan(fixed, input.continues, () => fixed) };
}
