import { MAX_EMBED_INPUTS, ToolName, type ChatMessage, type GenerationOptions, type JobRequest, type JobRequestInput, type ToolCall } from '@switchyard/protocol';
import { invalidParam, validJobRequest } from '../compat-error.js';
import type { ChatCompletionRequest, CompletionRequest, EmbeddingRequest, OpenAiMessage, OpenAiToolCall } from './request-schemas.js';

type Sampling = Pick<
  ChatCompletionRequest,
  'max_tokens' | 'temperature' | 'top_p' | 'seed' | 'stop' | 'presence_penalty' | 'frequency_penalty' | 'num_ctx' | 'metadata' | 'priority' | 'deadline_ms'
>;

/** OpenAI parameter names for the JobRequest fields they become (for 400s). */
const PARAM_OF: Record<string, string> = {
  'options.num_predict': 'max_tokens',
  'options.temperature': 'temperature',
  'options.top_p': 'top_p',
  'options.seed': 'seed',
  'options.stop': 'stop',
  'options.presence_penalty': 'presence_penalty',
  'options.frequency_penalty': 'frequency_penalty',
  'options.num_ctx': 'num_ctx',
  format: 'response_format',
};

function rename(param: string): string {
  const options = /^options\.[a-z_]+/.exec(param)?.[0];
  return (options && PARAM_OF[options]) ?? PARAM_OF[param] ?? param;
}

/**
 * A chat's renaming: also the job's `messages[i].images[k]` as the content part it came
 * from (`messages[i].content[p].image_url`), and a tool turn's `tool_name` as its `name`.
 */
function chatRename(imageParts: ReadonlyMap<string, number>): (param: string) => string {
  return (param) => {
    const image = /^messages\[(\d+)\]\.images\[(\d+)\]/.exec(param);
    if (image) {
      const part = imageParts.get(`${image[1]}:${image[2]}`);
      if (part !== undefined) return `messages[${image[1]}].content[${part}].image_url`;
    }
    const toolName = /^messages\[(\d+)\]\.tool_name$/.exec(param);
    if (toolName) return `messages[${toolName[1]}].name`;
    return rename(param);
  };
}

function options(body: Sampling, maxTokens: number | null | undefined): GenerationOptions | undefined {
  const result: GenerationOptions = {};
  if (maxTokens != null) result.num_predict = maxTokens;
  if (body.temperature != null) result.temperature = body.temperature;
  if (body.top_p != null) result.top_p = body.top_p;
  if (body.seed != null) result.seed = body.seed;
  if (body.stop != null) result.stop = typeof body.stop === 'string' ? [body.stop] : body.stop;
  if (body.presence_penalty != null) result.presence_penalty = body.presence_penalty;
  if (body.frequency_penalty != null) result.frequency_penalty = body.frequency_penalty;
  if (body.num_ctx != null) result.num_ctx = body.num_ctx;
  return Object.keys(result).length > 0 ? result : undefined;
}

function common(body: Sampling, maxTokens: number | null | undefined): Partial<JobRequestInput> {
  const opts = options(body, maxTokens);
  return {
    ...(opts && { options: opts }),
    ...(body.metadata != null && { metadata: body.metadata }),
    ...(body.priority != null && { priority: body.priority as JobRequestInput['priority'] }),
    ...(body.deadline_ms != null && { deadline_ms: body.deadline_ms }),
  };
}

const DATA_URL = /^data:image\/[A-Za-z0-9.+-]+;base64,(.+)$/s;

/**
 * A call's `arguments` (a JSON string on this wire) as the object a job carries. An empty
 * string is a call without arguments, as some clients write one.
 */
function parseArguments(text: string, param: string): Record<string, unknown> {
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalidParam(param, `invalid value for '${param}': arguments must be a JSON object encoded as a string, got text that is not JSON`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidParam(
      param,
      `invalid value for '${param}': arguments must be a JSON object encoded as a string, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`,
    );
  }
  return value as Record<string, unknown>;
}

function toToolCalls(message: OpenAiMessage, index: number): ToolCall[] | undefined {
  const calls: OpenAiToolCall[] = message.tool_calls ?? [];
  const result = calls.map((call, callIndex) => ({
    ...(call.id != null && call.id !== '' && { id: call.id }),
    function: { name: call.function.name, arguments: parseArguments(call.function.arguments, `messages[${index}].tool_calls[${callIndex}].function.arguments`) },
  }));
  if (message.function_call != null) {
    result.push({ function: { name: message.function_call.name, arguments: parseArguments(message.function_call.arguments, `messages[${index}].function_call.arguments`) } });
  }
  return result.length > 0 ? result : undefined;
}

/**
 * One OpenAI message as an Ollama chat message: text parts joined, data-URL images inlined
 * (`imageParts` learns which content part each image came from), calls with their arguments
 * as objects, and a tool turn named by the call it answers (`callNames`: id → tool name of
 * the calls earlier in the history), or by its `name`.
 */
function toChatMessage(message: OpenAiMessage, index: number, callNames: ReadonlyMap<string, string>, imageParts: Map<string, number>): ChatMessage {
  const role = message.role === 'developer' ? 'system' : message.role === 'function' ? 'tool' : message.role;
  const toolCalls = message.role === 'assistant' ? toToolCalls(message, index) : undefined;
  const extras: Partial<ChatMessage> = {};
  if (toolCalls) extras.tool_calls = toolCalls;
  if (role === 'tool') {
    const answered = message.tool_call_id != null ? callNames.get(message.tool_call_id) : undefined;
    const named = answered ?? (message.name != null && ToolName.safeParse(message.name).success ? message.name : undefined);
    if (named !== undefined) extras.tool_name = named;
    if (message.tool_call_id != null && message.tool_call_id !== '') extras.tool_call_id = message.tool_call_id;
  }
  if (typeof message.content === 'string' || message.content == null) return { role, content: message.content ?? '', ...extras };
  const texts: string[] = [];
  const images: string[] = [];
  message.content.forEach((part, partIndex) => {
    if (part.type === 'text') {
      texts.push(part.text);
      return;
    }
    const url = typeof part.image_url === 'string' ? part.image_url : part.image_url.url;
    const data = DATA_URL.exec(url)?.[1];
    if (data === undefined) {
      throw invalidParam(
        `messages[${index}].content[${partIndex}].image_url`,
        'only base64 data URLs (data:image/png;base64,...) are supported for images; the fleet does not fetch remote URLs',
      );
    }
    imageParts.set(`${index}:${images.length}`, partIndex);
    images.push(data);
  });
  return { role, content: texts.join('\n'), ...(images.length > 0 && { images }), ...extras };
}

/** `POST /v1/chat/completions` body → the job it becomes. */
export function chatToJobRequest(body: ChatCompletionRequest): JobRequest {
  if (body.functions != null)
    throw invalidParam('functions', '\'functions\' is deprecated and not supported: send the functions as \'tools\' ({"type":"function","function":{...}})');
  if (body.function_call != null) throw invalidParam('function_call', "'function_call' is deprecated and not supported: use 'tool_choice'");
  let format: JobRequestInput['format'];
  if (body.response_format?.type === 'json_object') format = 'json';
  if (body.response_format?.type === 'json_schema') format = body.response_format.json_schema.schema ?? 'json';
  const callNames = new Map<string, string>();
  const imageParts = new Map<string, number>();
  const messages = body.messages.map((message, index) => {
    const mapped = toChatMessage(message, index, callNames, imageParts);
    for (const call of mapped.tool_calls ?? []) if (call.id !== undefined) callNames.set(call.id, call.function.name);
    return mapped;
  });
  return validJobRequest(
    {
      model: body.model,
      messages,
      ...common(body, body.max_completion_tokens ?? body.max_tokens),
      ...(format !== undefined && { format }),
      ...(body.tools != null && {
        tools: body.tools.map((tool) => ({
          type: tool.type,
          function: {
            name: tool.function.name,
            ...(tool.function.description != null && { description: tool.function.description }),
            ...(tool.function.parameters != null && { parameters: tool.function.parameters }),
            ...(tool.function.strict != null && { strict: tool.function.strict }),
          },
        })),
      }),
      ...(body.tool_choice != null && { tool_choice: body.tool_choice }),
      ...(body.parallel_tool_calls != null && { parallel_tool_calls: body.parallel_tool_calls }),
    },
    chatRename(imageParts),
  );
}

/** Why `input` cannot be embedded, in the wire's words: token arrays are OpenAI's, Ollama embeds text. */
const TOKEN_ARRAYS =
  "invalid value for 'input': token arrays (arrays of integers) are not supported: Ollama embeds text only; send the text as a string or an array of strings";

function embedInput(input: unknown): string | string[] {
  const wrongType = () => invalidParam('input', "invalid value for 'input': input must be a string or an array of strings");
  if (typeof input === 'string') {
    if (input === '') throw invalidParam('input', "invalid value for 'input': input must not be an empty string");
    return input;
  }
  if (!Array.isArray(input)) throw input === undefined ? invalidParam('input', "missing required parameter: 'input'") : wrongType();
  if (input.length === 0) throw invalidParam('input', "invalid value for 'input': input must not be an empty array");
  if (input.length > MAX_EMBED_INPUTS) throw invalidParam('input', `invalid value for 'input': at most ${MAX_EMBED_INPUTS} inputs per request`);
  if (input.every((item) => typeof item === 'number') || input.every((item) => Array.isArray(item) && item.every((token) => typeof token === 'number'))) {
    throw invalidParam('input', TOKEN_ARRAYS);
  }
  input.forEach((item, index) => {
    if (typeof item !== 'string') {
      if (typeof item === 'number' || Array.isArray(item)) throw invalidParam(`input[${index}]`, TOKEN_ARRAYS);
      throw invalidParam(`input[${index}]`, `invalid value for 'input[${index}]': each input must be a string`);
    }
    if (item === '') throw invalidParam(`input[${index}]`, `invalid value for 'input[${index}]': an input must not be an empty string`);
  });
  return input as string[];
}

/** `POST /v1/embeddings` body → the embed job it becomes. */
export function embeddingToJobRequest(body: EmbeddingRequest): JobRequest {
  return validJobRequest(
    {
      kind: 'embed',
      model: body.model,
      input: embedInput(body.input),
      ...(body.dimensions != null && { dimensions: body.dimensions }),
      ...(body.priority != null && { priority: body.priority as JobRequestInput['priority'] }),
      ...(body.deadline_ms != null && { deadline_ms: body.deadline_ms }),
    },
    rename,
  );
}

/** `POST /v1/completions` body → the job it becomes. */
export function completionToJobRequest(body: CompletionRequest): JobRequest {
  const prompt = typeof body.prompt === 'string' ? body.prompt : (body.prompt[0] ?? '');
  return validJobRequest({ model: body.model, prompt, ...common(body, body.max_tokens) }, rename);
}
