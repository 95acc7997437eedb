/**
 * Debian's chromium on a test Node-RED's editor (playwright-core). Kept apart from boot-red.ts,
 * which the Node-RED runtime tests import on Node 18 too, where playwright-core does not load.
 */
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
const BROWSER_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// What the page-side callbacks below see.
declare const RED: { _(key: string): string; settings: { telemetryEnabled?: boolean }; user: { hasPermission(p: string): boolean } };
declare const document: { querySelectorAll(s: string): ArrayLike<unknown> };

export interface Opened {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  problems: string[];
  requests: string[];
}

/**
 * The editor at `base`, loaded, with the update-check question declined; the page reaches nothing
 * but that Node-RED. `problems` collects console and page errors, `requests` every URL asked.
 */
export async function openEditor(base: string, opts: { executablePath?: string; token?: string; viewport?: { width: number; height: number } } = {}): Promise<Opened> {
  const browser = await chromium.launch({ executablePath: opts.executablePath ?? CHROMIUM, headless: true, args: BROWSER_ARGS });
  const context = await browser.newContext({ viewport: opts.viewport ?? { width: 1400, height: 860 }, locale: 'en-US' });
  await context.route((u) => !u.href.startsWith(base), (route) => route.abort('blockedbyclient'));
  if (opts.token) {
    // What the editor's login dialog stores.
    await context.addInitScript((t) => (globalThis as unknown as { localStorage: { setItem(k: string, v: string): void } }).localStorage.setItem('auth-tokens', JSON.stringify({ access_token: t, expires_in: 604800, token_type: 'Bearer' })), opts.token);
  }
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const problems: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.location().url.startsWith('https://catalogue.nodered.org/')) problems.push(`console: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}\n${e.stack ?? ''}`));
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(base);
  await page.waitForFunction(() => typeof RED !== 'undefined' && document.querySelectorAll('.red-ui-palette-node').length > 0, null, { timeout: 60000 });
  if (await page.evaluate(() => RED.settings.telemetryEnabled === undefined && RED.user.hasPermission('settings.write'))) {
    await page.getByRole('button', { name: await page.evaluate(() => RED._('telemetry.disableLabel')) }).click();
  }
  await page.locator('.red-ui-shade:visible').first().waitFor({ state: 'detached', timeout: 10000 }).catch(() => undefined);
  return { browser, context, page, problems, requests };
}
