/** Ollama model names are `name:tag`; a missing tag means `latest`. */
export function normalizeModelName(name: string): string {
  const trimmed = name.trim();
  const lastSlash = trimmed.lastIndexOf('/');
  return trimmed.indexOf(':', lastSlash + 1) === -1 ? `${trimmed}:latest` : trimmed;
}
