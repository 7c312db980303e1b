/**
 * What an app reads, from its sources (apps/<app>/src/config.ts and main.ts): the environment
 * variables and the config field each sets. Shared by the checks of docker-compose.yml
 * (test/infra/compose.test.ts) and the Kubernetes manifests (test/infra/k8s.test.ts), so a
 * variable renamed in an app fails both until they follow.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export function appSources(app: string): Array<{ file: string; text: string }> {
  return ['config.ts', 'main.ts']
    .map((file) => join(ROOT, 'apps', app, 'src', file))
    .filter((file) => existsSync(file))
    .map((file) => ({ file: relative(ROOT, file), text: readFileSync(file, 'utf8') }));
}

/** The initializer (`{...}` or `[...]`) of every `const NAME = ...` whose NAME matches. */
export function constTables(text: string, name: RegExp): string[] {
  const tables: string[] = [];
  for (const match of text.matchAll(/\bconst\s+([A-Za-z_$][\w$]*)\b[^=;]*=\s*/g)) {
    if (!name.test(match[1]!)) continue;
    let index = match.index + match[0].length;
    const open = text[index];
    if (open !== '{' && open !== '[') continue;
    let depth = 0;
    let quote: string | undefined;
    const begin = index;
    for (; index < text.length; index++) {
      const char = text[index]!;
      if (quote) {
        if (char === '\\') index++;
        else if (char === quote) quote = undefined;
      } else if (char === '"' || char === "'" || char === '`') {
        quote = char;
      } else if (char === '{' || char === '[') {
        depth++;
      } else if (char === '}' || char === ']') {
        depth--;
        if (depth === 0) break;
      }
    }
    tables.push(text.slice(begin, index + 1));
  }
  return tables;
}

const ENV_NAME = '[A-Z_][A-Z0-9_]*';

/**
 * Environment variables the app reads: `env.NAME` / `process.env.NAME`, `env['NAME']`, and
 * the names listed in env tables (`const ENV_NAMES = {...}`, `const ENV = [...]`) that
 * config.ts loops over.
 */
export function envNamesReadBy(app: string): Set<string> {
  const names = new Set<string>();
  for (const { text } of appSources(app)) {
    for (const match of text.matchAll(new RegExp(`\\benv\\.(${ENV_NAME})\\b`, 'g'))) names.add(match[1]!);
    for (const match of text.matchAll(new RegExp(`\\benv\\[\\s*(['"\`])(${ENV_NAME})\\1\\s*\\]`, 'g'))) names.add(match[2]!);
    for (const table of constTables(text, /^[A-Z0-9_]*ENV[A-Z0-9_]*$/)) {
      for (const match of table.matchAll(new RegExp(`(['"\`])(${ENV_NAME})\\1`, 'g'))) names.add(match[2]!);
    }
  }
  return names;
}

/** The environment variables that set one config field: on the lines `field: ...` of
 * config.ts / main.ts (`redisUrl: env.REDIS_URL ?? ...`, or `redisUrl: 'REDIS_URL'` in a
 * name table). */
export function envNamesForField(app: string, field: string): Set<string> {
  const names = new Set<string>();
  for (const { text } of appSources(app)) {
    for (const line of text.split('\n')) {
      if (!new RegExp(`(^|[\\s{,])${field}\\s*:`).test(line)) continue;
      for (const match of line.matchAll(new RegExp(`\\benv\\.(${ENV_NAME})\\b`, 'g'))) names.add(match[1]!);
      for (const match of line.matchAll(new RegExp(`(['"\`])(${ENV_NAME})\\1`, 'g'))) names.add(match[2]!);
    }
  }
  return names;
}
