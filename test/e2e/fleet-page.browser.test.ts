import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { SAMPLE_CATALOG } from '@switchyard/gpu-sim';
import { startStack, type Stack } from '../support/stack.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// As the Bull Board browser test: CI installs Chromium and must run this; a machine without it skips with a message.
const haveBrowser = existsSync(CHROMIUM);
if (!haveBrowser && process.env.CI) throw new Error(`Chromium not found at ${CHROMIUM}; CI must install it`);
if (!haveBrowser) process.stderr.write(`[fleet page browser test] skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)\n`);

const GB = 1e9;
const KEYS = { tenant: 'tenant-a-key-0123456789', admin: 'admin-key-0123456789abc' };
const VIEWPORT = { width: 1400, height: 900 };
const catalog = (...names: string[]) => SAMPLE_CATALOG.filter((model) => names.includes(model.name));

describe.runIf(haveBrowser)('the fleet page in a real browser', () => {
  let stack: Stack;
  let browser: Browser;
  const artifacts = mkdtempSync(join(tmpdir(), 'switchyard-fleet-page-'));

  /** A job that must be accepted, run to its end (detached: the page is what watches it). */
  const submit = async (model: string) => {
    const response = await fetch(`${stack.apiUrl}/v1/jobs`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${KEYS.tenant}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model, prompt: 'seen on the fleet page', detach: true, options: { num_predict: 3 } }),
    });
    expect(response.status, await response.clone().text()).toBe(202);
  };

  beforeAll(async () => {
    stack = await startStack({
      api: { apiKeys: `a:${KEYS.tenant}`, adminApiKeys: KEYS.admin, fleetSummaryIntervalMs: 200 },
      nodes: [
        { sim: { vram_bytes: 24 * GB, models: catalog('qwen2.5:0.5b', 'llama3.2:3b') }, agent: { gpuVramBytes: [24 * GB], gpuName: 'Simulated L4' } },
        { sim: { vram_bytes: 16 * GB, models: catalog('llama3.1:8b', 'qwen2.5:0.5b') }, agent: { gpuVramBytes: [8 * GB, 8 * GB], gpuName: 'Simulated T4' } },
      ],
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });

  it('lists the agents and draws a model’s VRAM segment once it loads; readable at 1400×900', async () => {
    const context = await browser.newContext({ viewport: VIEWPORT });
    const page = await context.newPage();
    // One visit with the admin key: traded for the session cookie, the key gone from the address.
    await page.goto(`${stack.apiUrl}/admin/fleet?key=${KEYS.admin}`);
    expect(new URL(page.url()).search).toBe('');
    for (const id of ['agent-0', 'agent-1']) await page.locator(`[data-agent="${id}"]`).waitFor({ timeout: 15_000 });
    await page.getByText('live ·').waitFor();
    await page.locator('[data-agent="agent-0"][data-state="ready"] .state', { hasText: 'ready' }).waitFor();

    const segment = page.locator('[data-agent="agent-0"] [data-role="vram"] [data-model="llama3.2:3b"][data-kind="model"]');
    expect(await segment.count()).toBe(0);
    await submit('llama3.2:3b');
    // The page redraws on every summary, so the segment is found and measured in one go, in the page.
    const width = await page.waitForFunction(
      (selector) => {
        const element = document.querySelector(selector);
        const bar = element?.parentElement?.getBoundingClientRect().width ?? 0;
        const own = element?.getBoundingClientRect().width ?? 0;
        // 4.4 GB of 24 GB: about a fifth of the bar.
        return own > bar * 0.1 ? own / bar : false;
      },
      '[data-agent="agent-0"] [data-role="vram"] [data-model="llama3.2:3b"][data-kind="model"]',
      { timeout: 15_000 },
    );
    expect(await width.jsonValue()).toBeLessThan(0.3);
    await page.locator('[data-agent="agent-0"] tr[data-model="llama3.2:3b"][data-state="loaded"]').waitFor();
    await page.locator('#lifecycle tr[data-kind="loaded"][data-model="llama3.2:3b"]').waitFor();

    // More to show: a model on the second node, and a refusal.
    await submit('llama3.1:8b');
    const refused = await fetch(`${stack.apiUrl}/v1/jobs`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${KEYS.tenant}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'no-such-model:1b', prompt: 'x' }),
    });
    expect(refused.status).toBe(404);
    await page.locator('[data-agent="agent-1"] [data-role="vram"] [data-model="llama3.1:8b"]').waitFor({ timeout: 15_000 });
    await page.locator('#refusals tr[data-reason="model_not_found"]').waitFor({ timeout: 15_000 });
    await page.locator('#queues tr[data-queue="llama3.1:8b"]').waitFor();

    // Readable: nothing runs off the side, the agents and every side panel are in the first
    // screen, no text is tiny. Measured in one go in the page, which redraws on every summary.
    const layout = await page.evaluate(
      (selectors) => ({
        scrollWidth: document.documentElement.scrollWidth,
        boxes: selectors.map((selector) => {
          const box = document.querySelector(selector)?.getBoundingClientRect();
          return { selector, right: box ? box.right : Infinity, top: box ? box.top : Infinity };
        }),
        smallestFont: Math.min(
          ...[...document.querySelectorAll('main *')].filter((e) => e.childNodes.length > 0 && e.textContent?.trim()).map((e) => parseFloat(getComputedStyle(e).fontSize)),
        ),
      }),
      ['[data-agent="agent-0"]', '[data-agent="agent-1"]', '#queues', '#lifecycle', '#refusals'],
    );
    expect(layout.scrollWidth).toBeLessThanOrEqual(VIEWPORT.width);
    for (const box of layout.boxes) {
      expect(box.right, box.selector).toBeLessThanOrEqual(VIEWPORT.width);
      expect(box.top, box.selector).toBeLessThan(VIEWPORT.height);
    }
    expect(layout.smallestFont).toBeGreaterThanOrEqual(11);
    const screenshot = join(artifacts, 'fleet-page-1400x900.png');
    await page.screenshot({ path: screenshot });
    process.stderr.write(`[fleet page browser test] screenshot: ${screenshot}\n`);
    await context.close();
  }, 60_000);

  it('refuses a tenant key (403) and a visit without a key (401), in the API’s JSON error shape, setting no session', async () => {
    const context = await browser.newContext({ viewport: VIEWPORT });
    const page = await context.newPage();
    const tenant = await page.goto(`${stack.apiUrl}/admin/fleet?key=${KEYS.tenant}`);
    expect(tenant!.status()).toBe(403);
    expect(await tenant!.json()).toMatchObject({ error: { code: 'forbidden' } });
    const anonymous = await page.goto(`${stack.apiUrl}/admin/fleet`);
    expect(anonymous!.status()).toBe(401);
    expect(await anonymous!.json()).toMatchObject({ error: { code: 'unauthorized' } });
    expect(await context.cookies()).toEqual([]);
    await context.close();
  }, 30_000);
});
