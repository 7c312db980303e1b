import { existsSync, mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { readSse } from '../support/sse.js';
import { startStack, type Stack } from '../support/stack.js';
import { submitJob } from '../support/client.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// CI installs Chromium (.ci/run) and must run this test; a developer machine without it
// skips with a message rather than failing `pnpm test` for a missing browser.
const haveBrowser = existsSync(CHROMIUM);
if (!haveBrowser && process.env.CI) throw new Error(`Chromium not found at ${CHROMIUM}; CI must install it`);
if (!haveBrowser) process.stderr.write(`[bull-board browser test] skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)\n`);

const MODEL = 'qwen2.5:0.5b';
/** What a write control of Bull Board is called (button text, title or aria-label), in any of its views. */
const WRITE_ACTION = /\b(retry|promote|clean|pause|resume|add|delete|remove|duplicate|edit|empty|obliterate|update|run|rate.?limit|concurrency)\b/i;
/** The BullMQ encoding of a model name (`{llama3.1~3a70b}`): never what a person should read. */
const ENCODED_NAME = /\{[^}\s]*~[0-9a-f]{2}[^}\s]*\}/;

/**
 * Names of every control on the page: its text, title or aria-label; for an icon button
 * with a tooltip, the tooltip (Bull Board's job actions: Retry, Duplicate, Edit, Clean);
 * and the items of every menu it opens (a queue's Pause, Empty, Add job, …).
 */
async function controlNames(page: Page): Promise<string[]> {
  const names = () =>
    page.$$eval('button, [role=button], [role=menuitem], [role=menuitemradio], a', (elements) =>
      elements.map((element) => [element.textContent, element.getAttribute('title'), element.getAttribute('aria-label')].filter(Boolean).join(' ').trim()),
    );
  const found = await names();
  const menus = page.locator('button[aria-haspopup]');
  for (let i = 0; i < (await menus.count()); i++) {
    const trigger = menus.nth(i);
    if (!(await trigger.isVisible())) continue;
    await trigger.click();
    await page.locator('[role=menu]').first().waitFor({ timeout: 5_000 });
    found.push(...(await page.locator('[role=menu] [role^=menuitem]').allInnerTexts()));
    await page.keyboard.press('Escape');
    await page.locator('[role=menu]').first().waitFor({ state: 'detached', timeout: 5_000 });
  }
  const withTooltip = page.locator('[data-base-ui-tooltip-trigger]');
  for (let i = 0; i < (await withTooltip.count()); i++) {
    const trigger = withTooltip.nth(i);
    if (!(await trigger.isVisible())) continue;
    await trigger.hover();
    const tooltip = page.locator('[data-base-ui-portal] [data-open]').filter({ hasText: /\S/ }).last();
    await tooltip.waitFor({ timeout: 5_000 });
    found.push(`tooltip ${await tooltip.innerText()}`);
    await page.mouse.move(0, 0);
    await tooltip.waitFor({ state: 'detached', timeout: 5_000 });
  }
  return found.filter((name) => name.length > 0);
}

describe.runIf(haveBrowser)('Bull Board in a real browser', () => {
  let stack: Stack;
  let browser: Browser;
  let completedId: string;
  let pinnedId: string;
  let cancelledId: string;
  let pinnedLabel: string;
  beforeAll(async () => {
    // Real time, answers as long as num_predict: a long job is still running when it is cancelled.
    stack = await startStack({
      nodes: [{ sim: { time_scale: 1, load_overhead_ms: 0, load_bytes_per_s: 1e12, response_tokens_min: 1_000_000, response_tokens_max: 1_000_000 } }],
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });

    const completed = await submitJob(stack, { model: MODEL, prompt: 'shown in the board', options: { num_predict: 3 } });
    completedId = completed.id;
    expect((await readSse(`${stack.apiUrl}${completed.links.events}`)).events.at(-1)?.type).toBe('done');

    const models = (await fetch(`${stack.apiUrl}/v1/models`).then((response) => response.json())) as { data: Array<{ id: string; digests: string[] }> };
    const digest = models.data.find((model) => model.id === MODEL)!.digests[0]!;
    pinnedLabel = `${MODEL} · pinned sha256:${digest.slice(0, 12)}`;
    const pinned = await submitJob(stack, { model: MODEL, digest: `sha256:${digest}`, prompt: 'pinned', options: { num_predict: 3 } });
    pinnedId = pinned.id;
    expect((await readSse(`${stack.apiUrl}${pinned.links.events}`)).events.at(-1)?.type).toBe('done');

    // Cancelled while an agent runs it: BullMQ keeps it as failed, `cancelled: …`.
    const running = await submitJob(stack, { model: MODEL, prompt: 'cancelled on the GPU', detach: true, options: { num_predict: 20_000 } });
    cancelledId = running.id;
    await readSse(`${stack.apiUrl}${running.links.events}`, { stopAfter: (event) => event.type === 'token' });
    const cancel = await fetch(`${stack.apiUrl}/v1/jobs/${cancelledId}`, { method: 'DELETE' });
    expect(cancel.status).toBe(200);
    expect((await readSse(`${stack.apiUrl}${running.links.events}`)).events.at(-1)).toMatchObject({ type: 'error', code: 'cancelled' });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });

  const queuePage = (name: string, query = '') => `${stack.apiUrl}/admin/queues/queue/${encodeURIComponent(name)}${query}`;

  it('names each model queue by its model (pinned: labelled as a pinned digest of its model) in the sidebar, the cards and the queue page', async () => {
    const page = await browser.newPage();
    await page.goto(`${stack.apiUrl}/admin/queues`);
    const sidebar = page.locator('#bull-board-sidebar');
    await sidebar.getByText(MODEL, { exact: true }).waitFor({ timeout: 15_000 });
    await sidebar.getByText(pinnedLabel, { exact: true }).waitFor();
    await page.locator('main').getByText(pinnedLabel, { exact: true }).first().waitFor();
    const boardText = await page.evaluate(() => `${document.body.innerText}\n${[...document.querySelectorAll('[title]')].map((e) => e.getAttribute('title')).join('\n')}`);
    expect(boardText).not.toMatch(ENCODED_NAME);

    await page.goto(queuePage(pinnedLabel, '?status=completed'));
    await page.getByText(pinnedId).first().waitFor({ timeout: 15_000 });
    await page.getByRole('heading', { name: pinnedLabel }).waitFor();
    expect(await page.evaluate(() => document.body.innerText)).not.toMatch(ENCODED_NAME);
    expect(await page.title()).toContain('Switchyard');
    mkdirSync('test/.artifacts', { recursive: true });
    await page.screenshot({ path: 'test/.artifacts/bull-board.png', fullPage: true });
    await page.close();
  }, 60_000);

  it('offers no write action: not on the board, a queue page (failed, completed) or a job page', async () => {
    const page = await browser.newPage();
    const views: Array<[string, string, string]> = [
      ['board', `${stack.apiUrl}/admin/queues`, MODEL],
      ['failed jobs', queuePage(MODEL, '?status=failed'), cancelledId],
      ['completed jobs', queuePage(MODEL, '?status=completed'), completedId],
      ['latest jobs', queuePage(MODEL), completedId],
      ['a failed job', queuePage(MODEL, `/${cancelledId}`), cancelledId],
    ];
    for (const [view, url, shown] of views) {
      await page.goto(url);
      await page.getByText(shown).first().waitFor({ timeout: 15_000 });
      const names = await controlNames(page);
      expect(names.length, view).toBeGreaterThan(0);
      expect(
        names.filter((name) => WRITE_ACTION.test(name)),
        view,
      ).toEqual([]);
    }
    await page.close();
  }, 60_000);

  it('shows a job cancelled on the GPU as cancelled, with its reason, where BullMQ lists it (failed)', async () => {
    const page = await browser.newPage();
    await page.goto(queuePage(MODEL, '?status=failed'));
    await page.getByText(cancelledId).first().waitFor({ timeout: 15_000 });
    await page.getByText('cancelled: cancelled by client', { exact: true }).first().waitFor();
    await page.screenshot({ path: 'test/.artifacts/bull-board-cancelled.png', fullPage: true });
    await page.close();
  }, 60_000);
});
