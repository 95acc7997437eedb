/**
 * The editor as a user sees it: `npm start`'s Node-RED driven in Debian's chromium through
 * playwright-core. Everything is read from package.json and examples/, so nodes added later are
 * covered without touching this file: the palette shows each pxe- node with its icon, each
 * example imports through Menu → Import → Examples, each node's edit dialog opens and closes with
 * Done, and the ISO store's Inspect button shows the archiso files of the fixture ISO. Any console
 * error or page error fails the test, except the one named in BENIGN.
 *
 * The screenshot of npm start's Arch PXE tab (disabled until the user sets it up) is written to
 * .cache/browser/; the README's picture of the example running comes from readme-picture.ts. The
 * rule editor's screenshot goes to .cache/browser/, and with UPDATE_SCREENSHOT=1 also replaces
 * docs/rule-editor.png, so a plain test run never dirties the checkout.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type ConsoleMessage, type Page } from 'playwright-core';
import { toBootRules, type RuleDef } from '../../nodes/lib/dhcp/node-config';
import { ensureFixtures, fixturePath, type FixtureIso } from '../fixtures/fixtures';
import { freePort } from '../lab/process';
import { startBootRed, type BootRed } from './boot-red';
import { openEditor, type Opened } from './editor-page';

const CHROMIUM = '/usr/bin/chromium';
const root = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const ourTypes = Object.keys(pkg['node-red'].nodes as Record<string, string>).filter((t) => t.startsWith('pxe-'));

// ---- what the page-side callbacks see (they run in chromium, where these are globals) ----------
interface RedNode {
  id: string;
  type: string;
  z?: string;
  [prop: string]: unknown;
}
interface HistoryEvent {
  t: string;
  nodes?: string[];
  events?: HistoryEvent[];
}
interface RedEditor {
  _(key: string): string;
  settings: { telemetryEnabled?: boolean };
  user: { hasPermission(permission: string): boolean };
  nodes: {
    getType(type: string): { category: string; icon?: unknown } | undefined;
    node(id: string): RedNode | null;
    filterNodes(filter: { type?: string; z?: string }): RedNode[];
  };
  history: { depth(): number; peek(): HistoryEvent | undefined };
  view: { state(): number };
  state: { DEFAULT: number; IMPORT_DRAGGING: number };
  workspaces: { active(): string };
}
declare const RED: RedEditor;
declare const document: { querySelectorAll(selector: string): ArrayLike<unknown> };

// ---- Node-RED started the way `npm start` starts it --------------------------------------------
interface Started {
  proc: ChildProcess;
  base: string;
  userDir: string;
  log(): string;
}

async function startNodeRed(): Promise<Started> {
  if (!fs.existsSync(path.join(root, 'dist', 'nodes'))) execFileSync(process.execPath, [path.join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' });
  fs.mkdirSync(path.join(root, '.cache'), { recursive: true });
  const userDir = fs.mkdtempSync(path.join(root, '.cache', 'browser-red-'));
  const port = await freePort();
  // Own process group: start.mjs and the Node-RED it spawns are stopped together, by this PID.
  const proc = spawn(process.execPath, [path.join(root, 'scripts', 'start.mjs'), '--port', String(port), '--user-dir', userDir, '--no-build'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out = (out + d).slice(-200000)));
  proc.stderr!.on('data', (d) => (out = (out + d).slice(-200000)));
  const base = `http://127.0.0.1:${port}/`;
  const started = { proc, base, userDir, log: () => out };
  const deadline = Date.now() + 60000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`npm start exited ${proc.exitCode}:\n${out}`);
    try {
      if ((await fetch(base)).ok) return started;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stopNodeRed(started);
      throw new Error(`Node-RED did not answer on ${base}:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopNodeRed(s: Started | undefined): Promise<void> {
  if (!s) return;
  const pgid = s.proc.pid!;
  if (groupAlive(pgid)) process.kill(-pgid, 'SIGTERM');
  const deadline = Date.now() + 10000;
  while (groupAlive(pgid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (groupAlive(pgid)) process.kill(-pgid, 'SIGKILL');
  fs.rmSync(s.userDir, { recursive: true, force: true });
}

// ---- console errors --------------------------------------------------------------------------
interface Problem {
  kind: 'console' | 'pageerror';
  text: string;
  url: string;
}

/**
 * The editor catches exceptions thrown by a node's definition (oneditprepare, label, validate...)
 * and only logs them, with console.log or console.warn: these lines count as errors too.
 */
const CAUGHT_BY_NODE_RED = /^(Definition error: |Validation error: |(oneditprepare|oneditsave|oneditcancel|oneditdelete|oneditresize) )/;

/**
 * Noise that is not ours, each with its reason. The palette manager fetches the online node
 * catalogue (catalogue.nodered.org) when the editor loads; this test lets the page reach nothing
 * but the Node-RED under test, so that request fails and chromium logs "Failed to load resource".
 */
const BENIGN: { name: string; match(p: Problem): boolean }[] = [
  { name: 'Node-RED palette catalogue fetch (blocked: offline test)', match: (p) => p.kind === 'console' && p.url.startsWith('https://catalogue.nodered.org/') },
];

function describeProblems(ps: Problem[]): string {
  return ps.map((p) => `${p.kind}: ${p.text}${p.url ? ` (${p.url})` : ''}`).join('\n');
}

// ---- examples, read from disk ----------------------------------------------------------------
interface FlowNode {
  id: string;
  type: string;
  x?: number;
  y?: number;
  [prop: string]: unknown;
}

function exampleFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? exampleFiles(path.join(dir, e.name)) : e.name.endsWith('.json') ? [path.join(dir, e.name)] : []))
    .sort();
}
const examples = exampleFiles(path.join(root, 'examples')).map((file) => ({
  // The import dialog's tree: Examples → package → sub-folders → flow name without .json.
  treePath: path.relative(path.join(root, 'examples'), file).replace(/\.json$/, '').split(path.sep),
  flow: JSON.parse(fs.readFileSync(file, 'utf8')) as FlowNode[],
}));

function countBy<T>(items: T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[key(i)] = (out[key(i)] ?? 0) + 1;
  return out;
}

/** Retries an action until it reports success (for UI clicks that may land before a handler is bound). */
async function expectSoon(attempt: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await attempt())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const skip = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium)`;

describe('the editor in chromium', { skip, timeout: 120000 }, () => {
  let red: Started | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let iso: FixtureIso;
  const problems: Problem[] = [];
  const ignored = new Set<string>();
  let seen = 0;
  let inflight = 0;

  /** Fails with the console/page errors since the last call (minus the named benign ones). */
  function assertNoNewProblems(what: string): void {
    const fresh = problems.slice(seen);
    seen = problems.length;
    const real = fresh.filter((p) => {
      const b = BENIGN.find((x) => x.match(p));
      if (b) ignored.add(b.name);
      return !b;
    });
    assert.equal(real.length, 0, `${what}: console or page errors:\n${describeProblems(real)}`);
  }

  async function markNotificationsSeen(): Promise<void> {
    // Notifications from one step must not be mistaken for those of the next (removing them
    // instead would break Node-RED's own fade-out, which expects them still in the DOM).
    await page.evaluate(() => {
      const els = document.querySelectorAll('.red-ui-notification');
      for (let i = 0; i < els.length; i++) (els[i] as { classList: { add(c: string): void } }).classList.add('pxe-test-seen');
    });
  }

  /** it() that leaves a screenshot of the page in .cache/browser/ when it fails. */
  function uiTest(name: string, fn: () => Promise<void>): void {
    it(name, async () => {
      try {
        await fn();
      } catch (err) {
        const file = path.join(root, '.cache', 'browser', `failed-${name.replace(/[^\w]+/g, '-').slice(0, 60)}.png`);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        await page?.screenshot({ path: file }).catch(() => undefined);
        throw err;
      }
    });
  }

  /** Closes the passing notifications ("Imported 5 nodes"...) the way a user does: a click on each. */
  async function dismissNotifications(): Promise<void> {
    const passing = page.locator('#red-ui-notifications .red-ui-notification:not(:has(button))');
    for (const n of await passing.all()) await n.click({ timeout: 2000 }).catch(() => undefined); // may be fading out already
    await expectSoon(async () => (await passing.count()) === 0, 'notifications closed');
  }

  /** Waits until the page has had no request in flight for 300 ms. */
  async function settle(): Promise<void> {
    let quietSince = Date.now();
    await expectSoon(async () => {
      if (inflight > 0) quietSince = Date.now();
      return Date.now() - quietSince >= 300;
    }, 'requests answered', 10000);
  }

  let lastTabClick = 0;
  async function showTab(z: string): Promise<void> {
    if (await page.evaluate((id) => RED.workspaces.active() === id, z)) return;
    // Node-RED takes two clicks on any tabs within 400 ms for a double-click (which opens the
    // flow's edit dialog), so space them as a user would.
    await new Promise((r) => setTimeout(r, Math.max(0, lastTabClick + 500 - Date.now())));
    await page.locator(`#red-ui-workspace-tabs li[id="red-ui-tab-${z}"] a`).click();
    lastTabClick = Date.now();
    await page.waitForFunction((id) => RED.workspaces.active() === id, z, { timeout: 5000 });
  }

  before(async () => {
    iso = ensureFixtures().isos.current;
    red = await startNodeRed();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const context = await browser.newContext({ viewport: { width: 1400, height: 800 }, locale: 'en-US' });
    // The page talks to the Node-RED under test and nothing else.
    const base = red.base;
    await context.route((u) => !u.href.startsWith(base), (route) => route.abort('blockedbyclient'));
    page = await context.newPage();
    page.setDefaultTimeout(10000);
    page.on('console', (m: ConsoleMessage) => {
      if (m.type() === 'error' || CAUGHT_BY_NODE_RED.test(m.text())) problems.push({ kind: 'console', text: m.text(), url: m.location().url });
    });
    page.on('request', () => inflight++);
    page.on('requestfinished', () => inflight--);
    page.on('requestfailed', () => inflight--);
    page.on('pageerror', (e) => problems.push({ kind: 'pageerror', text: `${e.message}\n${e.stack ?? ''}`, url: '' }));
    await page.goto(base);
    await page.waitForFunction(() => typeof RED !== 'undefined' && document.querySelectorAll('.red-ui-palette-node').length > 0 && document.querySelectorAll('.red-ui-flow-node-group').length > 0, null, {
      timeout: 30000,
    });
    // First visit: Node-RED asks whether to check for updates (a modal over the editor). Decline,
    // as a user would; later visits (telemetryEnabled set) do not ask.
    if (await page.evaluate(() => RED.settings.telemetryEnabled === undefined && RED.user.hasPermission('settings.write'))) {
      await page.getByRole('button', { name: await page.evaluate(() => RED._('telemetry.disableLabel')) }).click();
    }
    // No shade left over the editor. (The locator wait can time out with none in the page under a
    // heavily loaded machine; a real modal would make the clicks below fail anyway.)
    await page.locator('.red-ui-shade:visible').first().waitFor({ state: 'detached', timeout: 10000 }).catch(() => undefined);
  });

  after(async () => {
    await browser?.close();
    await stopNodeRed(red);
    if (ignored.size) console.log(`ignored benign editor noise: ${[...ignored].join('; ')}`);
  });

  uiTest('loads with every pxe- node in the PXE palette category, each with its own icon', async () => {
    const defs = await page.evaluate(
      (types) =>
        types.map((t) => {
          const d = RED.nodes.getType(t);
          return { type: t, def: d && { category: d.category, icon: typeof d.icon === 'string' ? d.icon : String(d.icon) } };
        }),
      ourTypes,
    );
    const palette = defs.filter((d) => d.def?.category !== 'config');
    for (const d of defs) assert.ok(d.def, `${d.type} is registered in the editor`);
    assert.ok(palette.length > 0);
    const shown = await page.locator('.red-ui-palette-node[data-palette-type^="pxe-"]').evaluateAll((els) => els.map((e) => (e as { dataset: { paletteType: string } }).dataset.paletteType));
    assert.deepEqual([...shown].sort(), palette.map((d) => d.type).sort(), 'pxe- nodes in the palette');

    for (const { type, def } of palette) {
      assert.equal(def!.category, 'PXE', `${type} category`);
      const node = page.locator(`#red-ui-palette-container-PXE .red-ui-palette-node[data-palette-type="${type}"]`);
      await node.waitFor({ state: 'visible' });
      const bg = await node.locator('.red-ui-palette-icon').evaluate((e) => (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundImage: string } }).getComputedStyle(e).backgroundImage);
      const url = /^url\("(.+)"\)$/.exec(bg)?.[1];
      assert.ok(url, `${type}: icon background-image ${bg}`);
      const file = path.posix.basename(new URL(url).pathname);
      assert.equal(def!.icon, file, `${type}: the palette shows the declared icon`);
      assert.equal(new URL(url).pathname, `/icons/${pkg.name}/${file}`, `${type}: icon served from our package`);
      const r = await fetch(url);
      assert.equal(r.status, 200, `${type}: GET ${url}`);
      assert.match(r.headers.get('content-type') ?? '', /^image\/svg\+xml/);
      assert.equal(await r.text(), fs.readFileSync(path.join(root, 'icons', file), 'utf8'), `${type}: ${file} is our svg`);
      // And the browser could decode it (a broken svg loads with 200 but draws nothing).
      const width = await page.evaluate(async (src) => {
        const img = new (globalThis as unknown as { Image: new () => { src: string; naturalWidth: number; decode(): Promise<void> } }).Image();
        img.src = src;
        await img.decode();
        return img.naturalWidth;
      }, url);
      assert.ok(width > 0, `${type}: ${file} decodes`);
    }
    assertNoNewProblems('loading the editor');
  });

  uiTest('shows the Arch PXE flow of npm start (screenshot)', async () => {
    const tab = page.locator('#red-ui-workspace-tabs .red-ui-tab', { hasText: 'Arch PXE' });
    await tab.click();
    const flow = JSON.parse(fs.readFileSync(path.join(root, 'examples', 'Arch PXE.json'), 'utf8')) as FlowNode[];
    const onCanvas = flow.filter((n) => n.type !== 'tab' && n.x !== undefined);
    assert.equal(await page.locator('#red-ui-workspace-chart .red-ui-flow-node-group').count(), onCanvas.length, 'every node of the example is drawn');
    // The palette filtered on "pxe", as a user looking for our nodes would, so the picture shows them.
    const filter = page.locator('#red-ui-palette-search input');
    await filter.pressSequentially('pxe');
    await expectSoon(async () => (await page.locator('.red-ui-palette-node:visible').count()) === (await page.locator('.red-ui-palette-node[data-palette-type^="pxe-"]:visible').count()), 'palette filtered');
    await page.mouse.move(900, 700); // no tooltip in the picture
    await page.waitForTimeout(300);
    await page.evaluate(() => (globalThis as unknown as { document: { fonts: { ready: Promise<unknown> } } }).document.fonts.ready);
    const shot = await page.screenshot({ type: 'png' });
    await filter.fill('');
    await filter.press('Escape');
    fs.mkdirSync(path.join(root, '.cache', 'browser'), { recursive: true });
    fs.writeFileSync(path.join(root, '.cache', 'browser', 'npm-start-flow.png'), shot);
    assert.ok(shot.length > 10000 && shot.length < 400000, `screenshot size ${shot.length}`);
    assertNoNewProblems('showing the Arch PXE tab');
  });

  for (const { treePath, flow } of examples) {
    const name = treePath.join('/');
    uiTest(`imports the "${name}" example through Menu → Import → Examples`, async () => {
      await markNotificationsSeen();
      const depth = await page.evaluate(() => RED.history.depth());
      await page.click('#red-ui-header-button-sidemenu');
      await page.click('#menu-item-import');
      const tree = page.locator('#red-ui-clipboard-dialog-import-tab-examples');
      // A click on the tab while the dialog is still settling can be lost: click until it shows.
      await expectSoon(async () => {
        await page.click('#red-ui-tab-red-ui-clipboard-dialog-import-tab-examples a.red-ui-tab-label');
        return tree.isVisible();
      }, 'the Examples tab opens');
      for (const label of [pkg.name as string, ...treePath]) {
        const item = tree.locator('.red-ui-treeList-label-text', { hasText: new RegExp(`^${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) });
        await item.click();
      }
      await page.click('#red-ui-clipboard-dialog-import-opt-new');
      await page.click('#red-ui-clipboard-dialog-ok');

      // The example may share ids with nodes already in the workspace (npm start's tab is the
      // Arch PXE example itself): Node-RED then offers "Import copy", which a user would pick.
      const importCopy = await page.evaluate(() => RED._('clipboard.import.importCopy'));
      const outcome = await page.waitForFunction(
        ([d, copy]) => {
          if (RED.history.depth() > (d as number)) return 'imported';
          const buttons = document.querySelectorAll('.red-ui-notification:not(.pxe-test-seen) button');
          for (let i = 0; i < buttons.length; i++) if ((buttons[i] as { textContent: string }).textContent.trim() === copy) return 'conflict';
          return false;
        },
        [depth, importCopy] as const,
        { timeout: 10000 },
      );
      if ((await outcome.jsonValue()) === 'conflict') {
        await page.locator('.red-ui-notification:not(.pxe-test-seen) button', { hasText: importCopy }).click();
        await page.waitForFunction((d) => RED.history.depth() > d, depth, { timeout: 10000 });
      }
      // Imported nodes follow the mouse until a click drops them on the canvas.
      if (await page.evaluate(() => RED.view.state() === RED.state.IMPORT_DRAGGING)) {
        await page.locator('#red-ui-workspace-chart').click({ position: { x: 200, y: 150 } });
      }
      assert.equal(await page.evaluate(() => RED.view.state() === RED.state.DEFAULT), true, 'nodes dropped');
      assert.equal(await page.locator('.red-ui-notification-error:not(.pxe-test-seen):visible').count(), 0, 'no import error notification');
      // The "Imported N nodes" notice sits over the tab bar.
      await dismissNotifications();

      const imported = await page.evaluate(() => {
        // No named inner functions here: tsx would wrap them in a __name() helper the page lacks.
        const ids: string[] = [];
        const events: (HistoryEvent | undefined)[] = [RED.history.peek()];
        while (events.length > 0) {
          const e = events.pop();
          if (e?.t === 'add') ids.push(...(e.nodes ?? []));
          events.push(...(e?.events ?? []));
        }
        // Plain copies: editor nodes hold references (_def, users) that need not cross over.
        return ids
          .map((id) => RED.nodes.node(id))
          .filter((n): n is RedNode => n !== null)
          .map((n) => Object.fromEntries(Object.entries(n).filter(([k, v]) => !k.startsWith('_') && (typeof v === 'string' || typeof v === 'number'))) as RedNode);
      });
      const onCanvas = flow.filter((n) => n.type !== 'tab' && n.x !== undefined);
      const placed = imported.filter((n) => n.z);
      assert.deepEqual(countBy(placed, (n) => n.type), countBy(onCanvas, (n) => n.type), 'the example\'s nodes, none of them "unknown"');

      // Links to config nodes (the ISO store) resolve to a node of the right type.
      const configIds = new Map(flow.filter((n) => n.type !== 'tab' && n.x === undefined).map((n) => [n.id, n.type]));
      for (const orig of onCanvas) {
        for (const [prop, value] of Object.entries(orig)) {
          if (typeof value !== 'string' || !configIds.has(value)) continue;
          const copy = placed.find((n) => n.type === orig.type && n.name === orig.name);
          assert.ok(copy, `${orig.type} "${String(orig.name)}" imported`);
          const target = await page.evaluate((id) => RED.nodes.node(id)?.type, copy[prop] as string);
          assert.equal(target, configIds.get(value), `${orig.type}.${prop} points at a ${configIds.get(value)}`);
        }
      }
      // Drawn in their flow tab: a new one, or the example's own tab.
      for (const z of new Set(placed.map((n) => n.z!))) {
        await showTab(z);
        for (const n of placed.filter((p) => p.z === z)) await page.locator(`#red-ui-workspace-chart g.red-ui-flow-node-group[id="${n.id}"]`).waitFor({ state: 'attached', timeout: 5000 });
      }
      assertNoNewProblems(`importing ${name}`);
    });
  }

  uiTest('opens and saves each pxe- node\'s edit dialog (double-click, Done)', async () => {
    const types = await page.evaluate((ts) => ts.filter((t) => RED.nodes.getType(t)?.category !== 'config'), ourTypes);
    for (const type of types) {
      const node = await page.evaluate((t) => {
        const n = RED.nodes.filterNodes({ type: t })[0];
        return n ? { id: n.id, z: n.z! } : null;
      }, type);
      assert.ok(node, `a ${type} node is in the workspace (every node is used by an example)`);
      await showTab(node.z);
      const el = page.locator(`#red-ui-workspace-chart g.red-ui-flow-node-group[id="${node.id}"] > rect.red-ui-flow-node`);
      await el.scrollIntoViewIfNeeded();
      await el.dblclick();
      const done = page.locator('#node-dialog-ok');
      await done.waitFor({ state: 'visible', timeout: 10000 });
      await settle(); // oneditprepare's requests (interface lists...) answer while the dialog is open
      await done.click();
      await page.locator('.red-ui-tray').first().waitFor({ state: 'detached', timeout: 10000 });
      await settle();
      assert.equal(await page.evaluate((id) => RED.nodes.node(id)?.type, node.id), type, `${type} still there after Done`);
      assertNoNewProblems(`editing ${type}`);
    }
  });

  uiTest('inspects the fixture ISO from the ISO store dialog', async () => {
    const configTypes = await page.evaluate((ts) => ts.filter((t) => RED.nodes.getType(t)?.category === 'config'), ourTypes);
    assert.ok(configTypes.includes('pxe-iso-store'));
    await page.click('#red-ui-header-button-sidemenu');
    await page.click('#menu-item-config-nodes');
    for (const type of configTypes) {
      // Configuration nodes sidebar: a header li with the type, then one li per node.
      const entry = page.locator('#red-ui-sidebar-content li.red-ui-palette-node-config-type', { hasText: new RegExp(`^${type}$`) }).first().locator('xpath=following-sibling::li[1]').locator('.red-ui-palette-node-config');
      await entry.dblclick();
      const done = page.locator('#node-config-dialog-ok');
      await done.waitFor({ state: 'visible', timeout: 10000 });
      if (type === 'pxe-iso-store') {
        await page.fill('#node-config-input-path', fixturePath(iso.file));
        await page.click('#pxe-iso-store-inspect');
        const result = page.locator('#pxe-iso-store-inspect-result');
        await page.waitForFunction(() => {
          const el = document.querySelectorAll('#pxe-iso-store-inspect-result')[0] as { textContent: string } | undefined;
          return !!el && el.textContent !== '' && el.textContent !== 'Looking…';
        }, undefined, { timeout: 30000 });
        const text = await result.innerText();
        assert.match(text, /^Arch ISO: yes\b/m, text);
        assert.ok(text.includes(`Volume: ${iso.volid}`), text);
        assert.ok(text.includes(iso.pxelinux) && /lpxelinux\.0$/.test(iso.pxelinux), `${iso.pxelinux} in:\n${text}`);
        assert.ok(text.includes(iso.kernel), `${iso.kernel} in:\n${text}`);
      }
      await settle();
      await done.click();
      await page.locator('.red-ui-tray').first().waitFor({ state: 'detached', timeout: 10000 });
      await settle();
      assertNoNewProblems(`editing ${type}`);
    }
  });

  it('logs no errors in Node-RED', () => {
    assert.doesNotMatch(red!.log(), /\[error\]/);
    assertNoNewProblems('the whole session');
  });
});

// ---- the DHCP rule editor, on a flow saved before it spoke of client kinds ---------------------

/** A rule as the editor stores it (nodes/lib/dhcp/node-config.ts reads it). */
type StoredRule = RuleDef & Record<string, unknown>;

const blank = { ipxe: 'any', nextServer: '', bootFile: '', configFile: '', pathPrefix: '', raspberryPi: false, options: '' };
/** Rules written with raw option-93 codes, as flows saved by earlier versions hold them. */
const OLD_RULES: StoredRule[] = [
  { ...blank, name: 'old BIOS', match: 'arch', value: '0' },
  { ...blank, name: 'old UEFI', match: 'arch', value: '9, 7', ipxe: 'no', bootFile: 'snponly.efi' },
  { ...blank, name: 'old HTTP Boot', match: 'httpboot', value: '16', ipxe: 'no', bootFile: 'http://{next-server}/snponly.efi' },
  { ...blank, name: 'x86 UEFI', match: 'arch', value: '6' },
  { ...blank, name: 'lab MAC', match: 'mac', value: '52:54:00:12:35:02', configFile: '::/broken.cfg', pathPrefix: '/boot/syslinux/' },
  { ...blank, name: 'to change', match: 'arch', value: '0', menu: 'now', entry: 'arch_nfs' },
];

describe('the DHCP rule editor in chromium', { skip, timeout: 120000 }, () => {
  let red: BootRed | undefined;
  let ed: Opened | undefined;
  const TAB = 'rules-tab';
  const DHCP = 'rules-dhcp';

  before(async () => {
    const iso = ensureFixtures().isos.current;
    if (!fs.existsSync(path.join(root, 'dist', 'nodes'))) execFileSync(process.execPath, [path.join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' });
    // A deployed store (config nodes start whatever their tab) and the DHCP node in a disabled
    // tab: nothing binds a port, the editor still edits it.
    red = await startBootRed({
      door: false,
      flow: [
        { id: 'rules-store', type: 'pxe-iso-store', name: 'Arch ISO', path: fixturePath(iso.file), extra: '' },
        { id: TAB, type: 'tab', label: 'Rules', disabled: true },
        { id: DHCP, type: 'pxe-dhcp', z: TAB, name: 'DHCP', mode: 'proxy', iface: 'lo', isolation: 'auto', store: 'rules-store', leaseTime: 3600, authoritative: true, force: false, reservations: [], rules: OLD_RULES, x: 140, y: 80, wires: [[]] },
      ],
    });
    ed = await openEditor(red.base, { viewport: { width: 1400, height: 1000 } });
  });

  after(async () => {
    await ed?.browser.close();
    await red?.stop(true);
  });

  it('shows raw codes as named kinds, folds what the ISO provides under "advanced", stores UEFI x64 as 7,9', async () => {
    const page = ed!.page;
    try {
      await page.evaluate((z) => (RED as unknown as { workspaces: { show(id: string): void } }).workspaces.show(z), TAB);
      await page.locator(`#red-ui-workspace-chart g.red-ui-flow-node-group[id="${DHCP}"] > rect.red-ui-flow-node`).dblclick();
      const rows = page.locator('#node-input-rules-container > li');
      await expectSoon(async () => (await rows.count()) === OLD_RULES.length, 'every rule listed');

      // Named kinds for the old codes; a value box only where the user's own value is the match.
      const kinds = await rows.locator('.pxe-rule-kind').evaluateAll((els) => els.map((e) => (e as unknown as { selectedOptions: { textContent: string }[] }).selectedOptions[0]!.textContent));
      assert.deepEqual(kinds, ['BIOS', 'UEFI x64', 'UEFI HTTP Boot x64', 'architecture codes (option 93)', 'MAC / prefix', 'BIOS']);
      const values = [];
      for (const row of await rows.all()) {
        const v = row.locator('.pxe-rule-value');
        values.push((await v.isVisible()) ? await v.inputValue() : null);
      }
      assert.deepEqual(values, [null, null, null, '6', '52:54:00:12:35:02', null]);

      // Advanced: folded in every rule, saying so when something is set in it.
      for (const row of await rows.all()) assert.equal(await row.locator('.pxe-rule-advanced').isVisible(), false, 'advanced folded');
      assert.equal((await rows.nth(4).locator('.pxe-rule-advanced-toggle').innerText()).trim(), 'advanced (2 set)');
      assert.equal((await rows.nth(0).locator('.pxe-rule-advanced-toggle').innerText()).trim(), 'advanced');
      // Unfolded: what the fixture ISO fills into a BIOS rule, then the fields themselves.
      const dhcp = ensureFixtures().isos.current.dhcp;
      await rows.nth(0).locator('.pxe-rule-advanced-toggle').click();
      const isoLine = rows.nth(0).locator('.pxe-rule-iso');
      await isoLine.waitFor({ state: 'visible' });
      await expectSoon(async () => (await isoLine.innerText()).startsWith('From the ISO'), 'the store answered', 15000);
      assert.equal(await isoLine.innerText(), `From the ISO: ${dhcp.bootFile}, 209 ${dhcp.option209}, 210 ${dhcp.option210} (where these fields are empty)`);
      for (const f of ['.pxe-rule-next', '.pxe-rule-cfg', '.pxe-rule-prefix', '.pxe-rule-options']) assert.ok(await rows.nth(0).locator(f).isVisible(), `${f} shown`);
      assert.equal(await rows.nth(0).locator('.pxe-rule-cfg').getAttribute('placeholder'), `209: ${dhcp.option209}`);
      assert.equal(await rows.nth(1).locator('.pxe-rule-iso').textContent(), 'The ISO fills the empty fields of BIOS rules only: this rule sends what you enter.');

      await rows.nth(0).scrollIntoViewIfNeeded();
      await page.mouse.move(10, 990);
      const shot = await page.locator('.red-ui-tray').first().screenshot({ type: 'png' });
      fs.mkdirSync(path.join(root, '.cache', 'browser'), { recursive: true });
      fs.writeFileSync(path.join(root, '.cache', 'browser', 'rule-editor.png'), shot);
      if (process.env.UPDATE_SCREENSHOT === '1') fs.writeFileSync(path.join(root, 'docs', 'rule-editor.png'), shot);

      // The unattended-boot menu is offered where clients may run pxelinux only.
      const menuShown = [];
      for (const row of await rows.all()) menuShown.push(await row.locator('.pxe-rule-menu').isVisible());
      assert.deepEqual(menuShown, [true, false, false, true, true, true]);
      assert.equal(await rows.nth(5).locator('.pxe-rule-entry').inputValue(), 'arch_nfs');

      // The user picks "UEFI x64" for the last rule and saves: its menu choice goes with it.
      await rows.nth(5).locator('.pxe-rule-kind').selectOption({ label: 'UEFI x64' });
      assert.equal(await rows.nth(5).locator('.pxe-rule-value').isVisible(), false);
      assert.equal(await rows.nth(5).locator('.pxe-rule-menu').isVisible(), false);
      assert.equal(await rows.nth(5).locator('.pxe-rule-khttp').isVisible(), false);
      await page.locator('#node-dialog-ok').click();
      await page.locator('.red-ui-tray').first().waitFor({ state: 'detached' });
      const saved = await page.evaluate((id) => (RED as unknown as { nodes: { node(id: string): { rules: StoredRule[] } } }).nodes.node(id).rules, DHCP);
      assert.deepEqual([saved[5]!.match, saved[5]!.value, saved[5]!.menu], ['arch', '7,9', 'iso']);
      assert.deepEqual(toBootRules(saved.slice(5))[0]!.match, { arch: [7, 9] });
      // The rules it did not touch mean what they meant (as the runtime reads them: arch codes are a set).
      const meaning = (rules: StoredRule[]): ReturnType<typeof toBootRules> => toBootRules(rules).map((r) => ({ ...r, match: { ...r.match, ...(r.match.arch ? { arch: [...r.match.arch].sort((a, b) => a - b) } : {}) } }));
      assert.deepEqual(meaning(saved.slice(0, 5)), meaning(OLD_RULES.slice(0, 5)));
      assert.deepEqual(ed!.problems, []);
    } catch (err) {
      fs.mkdirSync(path.join(root, '.cache', 'browser'), { recursive: true });
      await page.screenshot({ path: path.join(root, '.cache', 'browser', 'failed-rule-editor.png') }).catch(() => undefined);
      throw err;
    }
  });
});
