import { existsSync, mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { modelToQueueName } from '@switchyard/protocol';
import { readSse } from '../support/sse.js';
import { startStack, type Stack } from '../support/stack.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// CI installs Chromium (.ci/run) and must run this test; a developer machine without it
// skips with a message rather than failing `pnpm test` for a missing browser.
const haveBrowser = existsSync(CHROMIUM);
if (!haveBrowser && process.env.CI) throw new Error(`Chromium not found at ${CHROMIUM}; CI must install it`);
if (!haveBrowser) process.stderr.write(`[bull-board browser test] skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)\n`);

describe.runIf(haveBrowser)('Bull Board in a real browser', () => {
  let stack: Stack;
  let browser: Browser;
  beforeAll(async () => {
    stack = await startStack();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });

  it('shows each model queue by name and the jobs in it', async () => {
    const response = await fetch(`${stack.apiUrl}/v1/jobs`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'qwen2.5:0.5b', prompt: 'shown in the board', options: { num_predict: 3 } }),
    });
    const job = (await response.json()) as { id: string; links: { events: string } };
    await readSse(`${stack.apiUrl}${job.links.events}`);

    const page = await browser.newPage();
    await page.goto(`${stack.apiUrl}/admin/queues`);
    await page.getByText('qwen2.5:0.5b').first().waitFor({ timeout: 15_000 });
    await page.goto(`${stack.apiUrl}/admin/queues/queue/${encodeURIComponent(modelToQueueName('qwen2.5:0.5b'))}?status=completed`);
    await page.getByText(job.id).first().waitFor({ timeout: 15_000 });
    mkdirSync('test/.artifacts', { recursive: true });
    await page.screenshot({ path: 'test/.artifacts/bull-board.png', fullPage: true });
    expect(await page.title()).toContain('Switchyard');
    await page.close();
  }, 60_000);
});
