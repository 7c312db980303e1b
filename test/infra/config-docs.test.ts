/**
 * docs/configuration.md is generated (`pnpm docs:config`) from the apps' config schemas and
 * loaders (infra/local/src/config-docs.ts). This fails when the file is out of date, and
 * proves the generator refuses what it cannot document truthfully.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_DOCS_PATH, describeConfig, renderConfigDocs, type ConfigSource } from '../../infra/local/src/config-docs.js';
import { REPO_ROOT } from '../support/workspace-build.js';

describe('docs/configuration.md', () => {
  it('is what pnpm docs:config renders from the config schemas today', () => {
    const committed = readFileSync(join(REPO_ROOT, CONFIG_DOCS_PATH), 'utf8');
    const rendered = renderConfigDocs();
    if (committed !== rendered) {
      expect.fail(`${CONFIG_DOCS_PATH} is out of date: run \`pnpm docs:config\` and commit the result`);
    }
  });

  it('lists every variable each app reads, with the API and agent defaults the loaders apply', () => {
    const text = renderConfigDocs();
    expect(text).toContain('| `BACKEND_URL` (or `OLLAMA_URL`) | `http://127.0.0.1:11434` |');
    expect(text).toContain('| `REDIS_URL` | `redis://127.0.0.1:6379` |');
    expect(text).toContain('| `GPU_VRAM` | `24GB` |');
    expect(text).toContain('| `num_parallel` | `--num-parallel` | `GPU_SIM_NUM_PARALLEL` (or `OLLAMA_NUM_PARALLEL`) | `4` |');
  });
});

/** A two-field app whose loader reads FOO_MS (field foo) and BAR (field bar, default unset). */
function fakeApp(overrides: Partial<ConfigSource> = {}, read: Record<string, string> = { FOO_MS: 'foo', BAR: 'bar' }): ConfigSource {
  const field = (description: string | undefined) => ({
    description,
    safeParse: (value: unknown) => ({ success: true, data: value }),
  });
  return {
    heading: 'Fake',
    intro: '',
    shape: { foo: field('Foo interval.'), bar: field('Bar.') },
    load: (env) => {
      const out: Record<string, unknown> = { foo: 5 };
      for (const [name, target] of Object.entries(read)) if (env[name] !== undefined) out[target] = env[name];
      return out;
    },
    keyColumn: 'variable',
    ...overrides,
  };
}

describe('the configuration docs generator', () => {
  it('documents what the loader does', () => {
    const { rows } = describeConfig(fakeApp());
    expect(rows.map((row) => [row.field, row.variables, row.defaultText])).toEqual([
      ['foo', ['FOO_MS'], '`5`'],
      ['bar', ['BAR'], '(none)'],
    ]);
  });

  it('refuses a field without a .describe() text', () => {
    const source = fakeApp();
    expect(() => describeConfig({ ...source, shape: { ...source.shape, bar: { safeParse: source.shape.foo!.safeParse } } })).toThrow('field bar has no .describe() text');
  });

  it('refuses a variable the loader reads that sets no field, unless it is described', () => {
    const source = fakeApp({}, { FOO_MS: 'foo', BAR: 'bar', STRAY: 'nothing' });
    expect(() => describeConfig(source)).toThrow('STRAY is read but sets no field');
    expect(() => describeConfig({ ...source, otherInputs: { STRAY: 'read for no field.' } })).not.toThrow();
  });

  it('refuses a field no variable sets, and a default note that hides a real default', () => {
    expect(() => describeConfig(fakeApp({}, { FOO_MS: 'foo' }))).toThrow('no variable sets bar');
    expect(() => describeConfig(fakeApp({ defaultNotes: { foo: 'five' } }))).toThrow('foo has a fixed default');
  });
});
