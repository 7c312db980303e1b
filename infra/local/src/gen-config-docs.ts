#!/usr/bin/env node
/**
 * `pnpm docs:config`: writes docs/configuration.md from the apps' config schemas
 * (see config-docs.ts). With `--check` it writes nothing and exits 1 when the file differs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONFIG_DOCS_PATH, renderConfigDocs } from './config-docs.js';

const root = resolve(fileURLToPath(import.meta.url), '../../../..');
const path = join(root, CONFIG_DOCS_PATH);
const text = renderConfigDocs();
const current = (() => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
})();

if (process.argv.includes('--check')) {
  if (current !== text) {
    process.stderr.write(`${CONFIG_DOCS_PATH} is out of date: run pnpm docs:config\n`);
    process.exitCode = 1;
  }
} else if (current === text) {
  process.stdout.write(`${CONFIG_DOCS_PATH} is up to date\n`);
} else {
  writeFileSync(path, text);
  process.stdout.write(`wrote ${CONFIG_DOCS_PATH}\n`);
}
