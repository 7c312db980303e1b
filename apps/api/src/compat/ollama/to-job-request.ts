import type {
  JobRequest,
  JobRequestInput,
  OllamaCompatChatRequest,
  OllamaCompatEmbeddingsRequest,
  OllamaCompatEmbedRequest,
  OllamaCompatGenerateRequest,
} from '@switchyard/protocol';
import { validJobRequest } from '../compat-error.js';

type Common = Pick<OllamaCompatChatRequest, 'model' | 'options' | 'keep_alive' | 'priority' | 'deadline_ms'> & Partial<Pick<OllamaCompatChatRequest, 'format'>>;

function common(body: Common): Partial<JobRequestInput> {
  return {
    model: body.model,
    ...(body.options != null && { options: body.options as JobRequestInput['options'] }),
    ...(body.format != null && body.format !== '' && { format: body.format }),
    // keep_alive is a hint for the fleet's residency policy, not a timer on one node: it is
    // recorded with the job (visible to agents) and the agents decide what stays loaded.
    ...(body.keep_alive != null && { metadata: { keep_alive: String(body.keep_alive) } }),
    ...(body.priority != null && { priority: body.priority as JobRequestInput['priority'] }),
    ...(body.deadline_ms != null && { deadline_ms: body.deadline_ms }),
  };
}

/**
 * A generate that loads the model and generates nothing. Stricter than Ollama's rule
 * (isOllamaLoadOnlyGenerate: no prompt): images without a prompt are a question here, since
 * they become a one-message chat job (generateToJobRequest) rather than being dropped.
 * (A load-only chat is Ollama's rule, isOllamaLoadOnlyChat.)
 */
export function isLoadOnlyGenerate(body: OllamaCompatGenerateRequest): boolean {
  return (body.prompt == null || body.prompt === '') && (body.images == null || body.images.length === 0);
}

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * A tool as the job takes it: the fields a function tool has, others dropped as Ollama drops
 * them (its decoder ignores unknown fields); what is kept the job request checks, naming the
 * field at fault (`tools[0].function.name`).
 */
function knownToolFields(tool: unknown): unknown {
  if (!isObject(tool) || !isObject(tool['function'])) return tool;
  const fn = tool['function'];
  const picked: Record<string, unknown> = { name: fn['name'] };
  for (const key of ['description', 'parameters', 'strict'] as const) if (fn[key] != null) picked[key] = fn[key];
  // Ollama's templates read only the function: a tool without a type is a function tool there.
  return { type: tool['type'] ?? 'function', function: picked };
}

/** A chat: messages with their images, calls (arguments as objects, as on the job) and tool names; the tools offered. */
export function chatToJobRequest(body: OllamaCompatChatRequest): JobRequest {
  return validJobRequest({
    ...common(body),
    model: body.model,
    messages: (body.messages ?? []).map((message) => ({
      role: message.role as 'user',
      content: message.content ?? '',
      ...(message.images != null && message.images.length > 0 && { images: message.images }),
      ...(message.tool_calls != null &&
        message.tool_calls.length > 0 && {
          // Ollama's calls have no id; clients that give one (LangChain) keep it.
          tool_calls: message.tool_calls.map((call) => ({
            ...(typeof call['id'] === 'string' && call['id'] !== '' && { id: call['id'] }),
            function: { name: call.function.name, arguments: call.function.arguments },
          })),
        }),
      ...(message.tool_name != null && message.tool_name !== '' && { tool_name: message.tool_name }),
    })),
    ...(body.tools != null && body.tools.length > 0 && { tools: body.tools.map(knownToolFields) as JobRequestInput['tools'] }),
  });
}

/**
 * A generate request. With images it becomes a one-message chat, since jobs carry images
 * only on messages (Ollama itself turns such a request into a templated chat turn).
 */
export function generateToJobRequest(body: OllamaCompatGenerateRequest): JobRequest {
  const images = body.images ?? [];
  return validJobRequest(
    {
      ...common(body),
      model: body.model,
      ...(body.system != null && { system: body.system }),
      ...(images.length > 0 ? { messages: [{ role: 'user' as const, content: body.prompt ?? '', images }] } : { prompt: body.prompt ?? '' }),
    },
    // The one-message chat's images are the request's.
    (param) =>
      param
        .replace(/^messages\[0\]\.images/, 'images')
        .replace(/^messages\[0\]\.content/, 'prompt')
        .replace(/^messages$/, 'prompt'),
  );
}

/** `/api/embed` without input, or with an empty one, only loads the model (Ollama's rule). */
export function isLoadOnlyEmbed(body: OllamaCompatEmbedRequest): boolean {
  return body.input == null || body.input === '' || (Array.isArray(body.input) && body.input.length === 0);
}

/** `/api/embed` → an embed job. */
export function embedToJobRequest(body: OllamaCompatEmbedRequest): JobRequest {
  return validJobRequest({
    ...common(body),
    model: body.model,
    kind: 'embed',
    ...(body.input != null && { input: body.input }),
    ...(body.truncate != null && { truncate: body.truncate }),
    ...(body.dimensions != null && { dimensions: body.dimensions }),
  });
}

/** The legacy `/api/embeddings` → an embed job of its one `prompt`. */
export function embeddingsToJobRequest(body: OllamaCompatEmbeddingsRequest): JobRequest {
  return validJobRequest({ ...common(body), model: body.model, kind: 'embed', input: body.prompt ?? '' }, (param) => param.replace(/^input/, 'prompt'));
}
