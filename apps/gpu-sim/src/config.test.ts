import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, GpuSimConfig, loadConfig, parseConfig } from './config.js';
import { derivedDigest } from './model-spec.js';

function configFile(content: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'gpu-sim-config-'));
  const path = join(dir, 'config.json');
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

describe('loadConfig', () => {
  it('has Ollama-like defaults and the sample catalog', () => {
    const config = loadConfig([], {});
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 11_434,
      vram_bytes: 24 * 2 ** 30,
      time_scale: 1,
      num_parallel: 4,
      max_queue: 512,
      keep_alive: '5m',
    });
    expect(config.models.map((model) => model.name)).toEqual([
      'qwen2.5:0.5b',
      'llama3.2:3b',
      'llama3.1:8b',
      'llama3.1:70b',
      'llava:7b',
      'nomic-embed-text:latest',
      'mxbai-embed-large:latest',
      'all-minilm:latest',
    ]);
  });

  it('reads flags, with human byte sizes', () => {
    const config = loadConfig(['--port', '0', '--vram', '80GB', '--time-scale', '0.01', '--keep-alive', '-1', '--seed', 'random'], {});
    expect(config).toMatchObject({ port: 0, vram_bytes: 80e9, time_scale: 0.01, keep_alive: '-1', default_seed: 'random' });
  });

  it('layers file < env < flags', () => {
    const path = configFile({ port: 1, num_parallel: 2, max_queue: 3, gpu_name: 'from file' });
    const config = loadConfig(['--config', path, '--port', '3'], { GPU_SIM_PORT: '2', OLLAMA_NUM_PARALLEL: '5' });
    expect(config).toMatchObject({ port: 3, num_parallel: 5, max_queue: 3, gpu_name: 'from file' });
  });

  it('understands OLLAMA_HOST', () => {
    expect(loadConfig([], { OLLAMA_HOST: '0.0.0.0:11500' })).toMatchObject({ host: '0.0.0.0', port: 11_500 });
    expect(loadConfig([], { OLLAMA_HOST: 'http://[::1]:9000' })).toMatchObject({ host: '::1', port: 9000 });
  });

  it('takes a catalog from the file and fills in what is derivable', () => {
    const path = configFile({ models: [{ name: 'tiny', size_bytes: '1GB', family: 'qwen2' }] });
    const [model] = loadConfig(['--config', path], {}).models;
    expect(model).toMatchObject({
      name: 'tiny:latest',
      size_bytes: 1e9,
      digest: derivedDigest('tiny:latest'),
      families: ['qwen2'],
      format: 'gguf',
      quantization_level: 'Q4_K_M',
    });
    expect(model?.parameter_count).toBeGreaterThan(1e9);
    expect(model?.parameter_size).toMatch(/^\d+\.\dB$/);
    expect(model?.block_count).toBeGreaterThan(0);
  });

  it('accepts digests with or without the sha256: prefix and serves bare hex', () => {
    const hex = 'a'.repeat(64);
    const config = parseConfig({ models: [{ name: 'x:1', size_bytes: 1, digest: `sha256:${hex.toUpperCase()}` }] });
    expect(config.models[0]?.digest).toBe(hex);
  });

  it('has the embedding time model knobs, with flags', () => {
    expect(loadConfig([], {})).toMatchObject({ embed_call_ms: 10, embed_input_ms: 0.3, embed_token_ms: 0 });
    expect(loadConfig(['--embed-call-ms', '4', '--embed-input-ms', '0.5', '--embed-token-ms', '0.01'], {})).toMatchObject({
      embed_call_ms: 4,
      embed_input_ms: 0.5,
      embed_token_ms: 0.01,
    });
    expect(() => loadConfig(['--embed-call-ms', '-1'], {})).toThrow(/embed_call_ms \(from --embed-call-ms\)/);
  });

  it('declares embedding, tool and vision models; embedding dimensions default to embedding_length', () => {
    const [vec, sized, tools, seer] = parseConfig({
      models: [
        { name: 'vec', size_bytes: '300MB', embedding_length: 512, embedding: {} },
        { name: 'sized', size_bytes: '300MB', embedding: { dimensions: 256, call_ms: 1, input_ms: 0.1, token_ms: 0 } },
        { name: 'tools', size_bytes: '1GB', tools: true },
        { name: 'seer', size_bytes: '1GB', vision: true },
      ],
    }).models;
    expect(vec).toMatchObject({ embedding: { dimensions: 512 }, tools: false, vision: false });
    expect(sized?.embedding).toEqual({ dimensions: 256, call_ms: 1, input_ms: 0.1, token_ms: 0 });
    expect(tools).toMatchObject({ tools: true, vision: false });
    expect(tools?.embedding).toBeUndefined();
    expect(seer).toMatchObject({ tools: false, vision: true });
    expect(() => parseConfig({ models: [{ name: 'x', size_bytes: 1, embedding: {}, tools: true }] })).toThrow(/models\[0\]\.tools: an embedding model/);
    expect(() => parseConfig({ models: [{ name: 'x', size_bytes: 1, embedding: { dims: 3 } }] })).toThrow(/dims/);
  });

  it('is idempotent: a parsed config parses to itself', () => {
    const config = loadConfig(['--vram', '12GiB', '--keep-alive', '30s'], {});
    expect(GpuSimConfig.parse(config)).toEqual(config);
    const embedding = parseConfig({
      models: [
        { name: 'vec', size_bytes: 1e8, embedding: {} },
        { name: 'v', size_bytes: 1e9, vision: true },
      ],
    });
    expect(GpuSimConfig.parse(embedding)).toEqual(embedding);
  });

  it.each([
    [['--vram', 'lots'], /vram_bytes \(from --vram\): not a byte size/],
    [['--port', '70000'], /port \(from --port\)/],
    [['--time-scale', '-1'], /time_scale \(from --time-scale\): Too small/],
    [['--keep-alive', 'soon'], /keep_alive \(from --keep-alive\): time: invalid duration "soon"/],
    [['--num-parallel', '0'], /num_parallel/],
    [['--response-tokens-min', '100'], /response_tokens_min \(from --response-tokens-min\): must not exceed response_tokens_max/],
    [['--bogus', '1'], /Unknown option '--bogus'/],
  ])('rejects %j naming the field', (argv, message) => {
    expect(() => loadConfig(argv, {})).toThrow(ConfigError);
    expect(() => loadConfig(argv, {})).toThrow(message);
  });

  it('names the field inside the catalog, and the file it came from', () => {
    const path = configFile({
      models: [
        { name: 'ok', size_bytes: 1 },
        { name: 'bad', size_bytes: 'huge' },
      ],
    });
    expect(() => loadConfig(['--config', path], {})).toThrow(/models\[1\]\.size_bytes \(from config file .*config\.json\): not a byte size/);
  });

  it('rejects unknown fields and duplicate models', () => {
    expect(() => parseConfig({ vram: 1 })).toThrow(/vram/);
    expect(() =>
      parseConfig({
        models: [
          { name: 'a', size_bytes: 1 },
          { name: 'a:latest', size_bytes: 2 },
        ],
      }),
    ).toThrow(/models\[1\]\.name: duplicate of models\[0\]/);
  });

  it('reports unreadable and malformed files', () => {
    expect(() => loadConfig(['--config', '/nonexistent/gpu-sim.json'], {})).toThrow(/cannot read config file/);
    expect(() => loadConfig(['--config', configFile('{nope')], {})).toThrow(/not valid JSON/);
  });
});
