/**
 * A real Node-RED for the boot-view tests: this package from the checkout's build, a user dir of
 * the test's own (kept across restarts when the test says so), optional adminAuth users, and a
 * test door for boot signals: settings.js hands the package's own bus to function nodes
 * (functionGlobalContext), and a flow turns `POST /pxe-test/signals` into bus publications — the
 * same path a serving node's signal takes, from inside the runtime.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BootSignal } from '../../nodes/lib/boot-events/bus';
import type { Netns } from '../lab/netns';
import { freePort } from '../lab/process';

const root = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { name: string };

export interface RedUser {
  username: string;
  password: string;
  permissions: string | string[];
}

export interface BootRedOptions {
  /** Reused when given (a restart); made under .cache/ otherwise. */
  userDir?: string;
  users?: RedUser[];
  /** Flow nodes besides the signal door (a tab 'boot-test-tab' exists for them). */
  flow?: Record<string, unknown>[];
  /** Include the signal door (default true); without it `flow` is the whole flow. */
  door?: boolean;
  port?: number;
  /** Run inside a lab namespace (the editor is then reachable from that namespace only). */
  ns?: Netns;
  logLevel?: string;
}

export interface BootRed {
  base: string;
  port: number;
  userDir: string;
  proc: ChildProcess;
  log(): string;
  /** Publishes signals on the runtime's bus (through the test door). */
  inject(signals: BootSignal[]): Promise<void>;
  /** An admin API token for a user (adminAuth only). */
  token(username: string, password: string): Promise<string>;
  /** Stops Node-RED; the user dir stays unless `remove`. */
  stop(remove?: boolean): Promise<void>;
}

export const TEST_TAB = 'boot-test-tab';

export function signalDoor(): Record<string, unknown>[] {
  return [
    { id: TEST_TAB, type: 'tab', label: 'boot view test' },
    { id: 'boot-test-in', type: 'http in', z: TEST_TAB, name: '', url: '/pxe-test/signals', method: 'post', upload: false, x: 120, y: 60, wires: [['boot-test-fn']] },
    {
      id: 'boot-test-fn',
      type: 'function',
      z: TEST_TAB,
      name: 'publish on the PXE bus',
      func: "const bus = global.get('pxeBootBus');\nfor (const s of msg.payload.signals) bus.publish(s);\nmsg.payload = { published: msg.payload.signals.length };\nreturn msg;",
      outputs: 1,
      x: 330,
      y: 60,
      wires: [['boot-test-out']],
    },
    { id: 'boot-test-out', type: 'http response', z: TEST_TAB, name: '', statusCode: '', headers: {}, x: 530, y: 60, wires: [] },
  ];
}

export async function startBootRed(o: BootRedOptions = {}): Promise<BootRed> {
  if (!fs.existsSync(path.join(root, 'dist', 'nodes', 'pxe-sidebar.js'))) throw new Error('build first (npm run build)');
  fs.mkdirSync(path.join(root, '.cache'), { recursive: true });
  // Inside the checkout so the linked package resolves its dependencies from node_modules.
  const userDir = o.userDir ?? fs.mkdtempSync(path.join(root, '.cache', 'boot-red-'));
  const modDir = path.join(userDir, 'node_modules', ...pkg.name.split('/'));
  if (!fs.existsSync(modDir)) {
    fs.mkdirSync(path.dirname(modDir), { recursive: true });
    fs.symlinkSync(root, modDir, 'dir');
  }
  const flowFile = path.join(userDir, 'flows.json');
  if (!fs.existsSync(flowFile)) fs.writeFileSync(flowFile, JSON.stringify([...(o.door === false ? [] : signalDoor()), ...(o.flow ?? [])], null, 2));
  const port = o.port ?? (await freePort());
  // The bus module the package itself loads (the link resolves to the checkout's dist/).
  const bus = path.join(root, 'dist', 'nodes', 'lib', 'boot-events', 'bus.js');
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- Node-RED's own dependency, no types
  const bcrypt = require('bcryptjs') as { hashSync(p: string, rounds: number): string };
  const adminAuth = o.users
    ? `adminAuth: { type: 'credentials', users: ${JSON.stringify(o.users.map((u) => ({ username: u.username, password: bcrypt.hashSync(u.password, 4), permissions: u.permissions })))} },`
    : '';
  fs.writeFileSync(
    path.join(userDir, 'settings.js'),
    `module.exports = {
  uiHost: '127.0.0.1',
  uiPort: ${port},
  flowFile: 'flows.json',
  credentialSecret: false,
  ${adminAuth}
  functionGlobalContext: { pxeBootBus: require(${JSON.stringify(bus)}).bootBus },
  logging: { console: { level: ${JSON.stringify(o.logLevel ?? 'info')} } },
  editorTheme: { tours: false, palette: { catalogues: [] } },
};
`,
  );
  const args = [path.join(root, 'node_modules', 'node-red', 'red.js'), '--userDir', userDir, '--port', String(port)];
  const env = { ...process.env, HOME: os.tmpdir() };
  const proc = o.ns ? o.ns.spawn(process.execPath, args, { env }) : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  proc.stdout!.on('data', (d) => (out = (out + d).slice(-300000)));
  proc.stderr!.on('data', (d) => (out = (out + d).slice(-300000)));
  const base = `http://127.0.0.1:${port}/`;
  const stop = (remove = false): Promise<void> =>
    new Promise((resolve) => {
      const finish = (): void => {
        if (remove) fs.rmSync(userDir, { recursive: true, force: true });
        resolve();
      };
      if (proc.exitCode !== null || proc.signalCode !== null) return finish();
      const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
      proc.once('exit', () => {
        clearTimeout(t);
        finish();
      });
      proc.kill('SIGTERM');
    });
  const red: BootRed = {
    base,
    port,
    userDir,
    proc,
    log: () => out,
    stop,
    async inject(signals) {
      const r = await fetch(`${base}pxe-test/signals`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ signals }) });
      if (!r.ok) throw new Error(`inject: HTTP ${r.status} ${await r.text()}`);
    },
    async token(username, password) {
      const r = await fetch(`${base}auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ client_id: 'node-red-editor', grant_type: 'password', scope: '', username, password }),
      });
      if (!r.ok) throw new Error(`token for ${username}: HTTP ${r.status}`);
      return ((await r.json()) as { access_token: string }).access_token;
    },
  };
  // Inside a namespace the test cannot fetch from here: it waits for the log line instead.
  const deadline = Date.now() + 60000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`Node-RED exited ${proc.exitCode}:\n${out}`);
    if (o.ns ? /Started flows/.test(out) : await fetch(`${base}settings`).then((r) => r.ok || r.status === 401, () => false)) {
      if (/Started flows/.test(out)) break;
    }
    if (Date.now() > deadline) {
      await stop(true);
      throw new Error(`Node-RED did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return red;
}
