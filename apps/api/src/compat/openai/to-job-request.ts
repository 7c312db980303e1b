import type { ChatMessage, GenerationOptions, JobRequest, JobRequestInput } from '@switchyard/protocol';
import { invalidParam, validJobRequest } from '../compat-error.js';
import type { ChatCompletionRequest, CompletionRequest, OpenAiMessage } from './request-schemas.js';

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

/** One OpenAI message as an Ollama chat message: text parts joined, data-URL images inlined. */
function toChatMessage(message: OpenAiMessage, index: number): ChatMessage {
  const role = message.role === 'developer' ? 'system' : message.role === 'function' ? 'tool' : message.role;
  if (typeof message.content === 'string' || message.content == null) return { role, content: message.content ?? '' };
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
    images.push(data);
  });
  return { role, content: texts.join('\n'), ...(images.length > 0 && { images }) };
}

/** `POST /v1/chat/completions` body → the job it becomes. */
export function chatToJobRequest(body: ChatCompletionRequest): JobRequest {
  let format: JobRequestInput['format'];
  if (body.response_format?.type === 'json_object') format = 'json';
  if (body.response_format?.type === 'json_schema') format = body.response_format.json_schema.schema ?? 'json';
  return validJobRequest(
    {
      model: body.model,
      messages: body.messages.map(toChatMessage),
      ...common(body, body.max_completion_tokens ?? body.max_tokens),
      ...(format !== undefined && { format }),
    },
    rename,
  );
}

/** `POST /v1/completions` body → the job it becomes. */
export function completionToJobRequest(body: CompletionRequest): JobRequest {
  const prompt = typeof body.prompt === 'string' ? body.prompt : (body.prompt[0] ?? '');
  return validJobRequest({ model: body.model, prompt, ...common(body, body.max_tokens) }, rename);
}
