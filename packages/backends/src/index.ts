export * from './backend.js';
export { OllamaBackend, type OllamaBackendOptions, type OllamaTimeouts } from './ollama/ollama-backend.js';
export { parseNdjson, NdjsonParseError, type ParseNdjsonOptions } from './ndjson.js';
