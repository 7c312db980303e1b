export * from './backend.js';
export { OllamaBackend, type OllamaBackendOptions } from './ollama/ollama-backend.js';
export { parseNdjson } from './ndjson.js';
