import type { JobRequest, JobRequestInput, OllamaCompatChatRequest, OllamaCompatGenerateRequest } from '@switchyard/protocol';
import { validJobRequest } from '../compat-error.js';

type Common = Pick<OllamaCompatChatRequest, 'model' | 'format' | 'options' | 'keep_alive' | 'priority' | 'deadline_ms'>;

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

export function chatToJobRequest(body: OllamaCompatChatRequest): JobRequest {
  return validJobRequest({
    ...common(body),
    model: body.model,
    messages: (body.messages ?? []).map((message) => ({
      role: message.role as 'user',
      content: message.content ?? '',
      ...(message.images != null && message.images.length > 0 && { images: message.images }),
    })),
  });
}

/**
 * A generate request. With images it becomes a one-message chat, since jobs carry images
 * only on messages (Ollama itself turns such a request into a templated chat turn).
 */
export function generateToJobRequest(body: OllamaCompatGenerateRequest): JobRequest {
  const images = body.images ?? [];
  return validJobRequest({
    ...common(body),
    model: body.model,
    ...(body.system != null && { system: body.system }),
    ...(images.length > 0 ? { messages: [{ role: 'user' as const, content: body.prompt ?? '', images }] } : { prompt: body.prompt ?? '' }),
  });
}
