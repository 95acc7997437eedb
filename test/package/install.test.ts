/**
 * The package as users get it: `npm pack` holds the icons and locales beside the compiled node
 * files, a real Node-RED loads the packed package without errors, and `npm start` serves the
 * editor with our nodes in the palette and the Arch PXE example in a disabled tab.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../lab/process';

const root = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const types = Object.keys(pkg['node-red'].nodes as Record<string, string>);

async function waitForEditor(port: number, proc: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`Node-RED exited: ${log()}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/settings`);
      if (r.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`Node-RED did not start: ${log()}`);
}

function stop(proc: ChildProcess | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return resolve();
    const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
    proc.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}

async function json(port: number, p: string): Promise<unknown> {
  const r = await fetch(`http://127.0.0.1:${port}${p}`, { headers: { Accept: 'application/json' } });
  assert.equal(r.status, 200, `GET ${p}`);
  return r.json();
}

interface NodeSet {
  module: string;
  name: string;
  types: string[];
  enabled: boolean;
  err?: string;
}

async function assertLoaded(port: number): Promise<void> {
  const sets = (await json(port, '/nodes')) as NodeSet[];
  const ours = sets.filter((s) => s.module === pkg.name);
  assert.ok(ours.length > 0, 'our module is listed');
  for (const s of ours) {
    assert.equal(s.err, undefined, `${s.name}: ${s.err}`);
    assert.equal(s.enabled, true, `${s.name} enabled`);
  }
  assert.deepEqual(ours.flatMap((s) => s.types).sort(), [...types].sort());
  const html = await (await fetch(`http://127.0.0.1:${port}/nodes`, { headers: { Accept: 'text/html' } })).text();
  for (const t of types) assert.match(html, new RegExp(`registerType\\('${t}'`));
}

// Build output must exist (npm test builds first); build here when run on its own.
before(() => {
  if (!fs.existsSync(path.join(root, 'dist', 'nodes'))) execFileSync(process.execPath, [path.join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' });
});

describe('packed package', () => {
  // Inside the checkout so the packed copy resolves its runtime dependencies like an install would.
  const work = path.join(root, '.cache', `pkgtest-${process.pid}`);
  const modDir = path.join(work, 'user', 'node_modules', ...pkg.name.split('/'));
  let files: string[] = [];
  let red: ChildProcess | undefined;
  let port = 0;
  let out = '';

  before(async () => {
    fs.mkdirSync(work, { recursive: true });
    const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8' }));
    files = packed[0].files.map((f: { path: string }) => f.path);
    fs.mkdirSync(modDir, { recursive: true });
    execFileSync('tar', ['-xzf', path.join(work, packed[0].filename), '-C', modDir, '--strip-components=1']);
    fs.writeFileSync(path.join(work, 'user', 'settings.js'), "module.exports = { uiHost: '127.0.0.1', credentialSecret: false };\n");
    port = await freePort();
    red = spawn(process.execPath, [path.join(root, 'node_modules', 'node-red', 'red.js'), '--userDir', path.join(work, 'user'), '--port', String(port)], { stdio: 'pipe' });
    red.stdout!.on('data', (d) => (out += d));
    red.stderr!.on('data', (d) => (out += d));
    await waitForEditor(port, red, () => out);
  });
  after(async () => {
    await stop(red);
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('builds the native UDP addon from its packed sources, as its npm install script does', { skip: process.platform !== 'linux' }, () => {
    for (const f of ['binding.gyp', 'native/pxe_udp.c', 'scripts/build-native.mjs']) assert.ok(files.includes(f), f);
    assert.equal(pkg.scripts.install, 'node scripts/build-native.mjs');
    const r = spawnSync(process.execPath, [path.join(modDir, 'scripts', 'build-native.mjs'), '--required'], { cwd: modDir, encoding: 'utf8', timeout: 180_000 });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.ok(fs.existsSync(path.join(modDir, 'build', 'Release', 'pxe_udp.node')));
    // The compiled nodes find it where the build put it.
    const probe = `const m = require(${JSON.stringify(path.join(modDir, 'dist', 'nodes', 'lib', 'native-udp.js'))}); process.stdout.write(String(m.nativeUdpMissing() ?? 'loaded'))`;
    assert.equal(execFileSync(process.execPath, ['-e', probe], { encoding: 'utf8' }), 'loaded');
  });

  it('holds the compiled nodes with their editor files, icons and locales beside them', () => {
    for (const t of types) {
      for (const f of [`dist/nodes/${t}.js`, `dist/nodes/${t}.html`, `dist/nodes/locales/en-US/${t}.json`]) assert.ok(files.includes(f), f);
      const icon = /icon:\s*'([^'/]+)'/.exec(fs.readFileSync(path.join(root, 'nodes', `${t}.html`), 'utf8'))?.[1];
      assert.ok(icon && files.includes(`dist/nodes/icons/${icon}`), `icon ${icon} beside ${t}.js`);
    }
    assert.ok(files.includes('examples/Arch PXE.json'));
    assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('bench/') || (f.endsWith('.ts') && !f.endsWith('.d.ts'))), 'no sources or tests');
  });

  it('declares Node-RED support the way the Flow Library checks it', () => {
    assert.ok(pkg.keywords.includes('node-red'));
    assert.equal(pkg['node-red'].version, '>=4.0.0');
    assert.ok(pkg.engines.node);
    assert.ok(pkg.license && pkg.repository);
    for (const field of ['dependencies', 'peerDependencies']) assert.ok(!(pkg[field] ?? {})['node-red'], `node-red not in ${field}`);
    assert.ok(Object.keys(pkg.dependencies ?? {}).length <= 6, 'at most 6 runtime dependencies');
  });

  it('loads into a real Node-RED without errors, with icons and examples', async () => {
    await assertLoaded(port);
    for (const t of types) {
      const icon = /icon:\s*'([^'/]+)'/.exec(fs.readFileSync(path.join(root, 'nodes', `${t}.html`), 'utf8'))![1];
      const r = await fetch(`http://127.0.0.1:${port}/icons/${pkg.name}/${icon}`);
      assert.equal(r.status, 200, `icon ${icon}`);
      assert.match(r.headers.get('content-type') ?? '', /svg/);
    }
    const modules = (await json(port, '/library/examples/flows/')) as unknown[];
    assert.ok(JSON.stringify(modules).includes(pkg.name));
    const arch = (await json(port, `/library/examples/flows/${pkg.name}/Arch%20PXE`)) as unknown[];
    assert.ok(Array.isArray(arch) && arch.length > 0);
    assert.doesNotMatch(out, /\[error\]/, 'no errors in the Node-RED log');
  });
});

describe('npm start', () => {
  const userDir = path.join(root, '.cache', `starttest-${process.pid}`);
  let proc: ChildProcess | undefined;
  let out = '';
  let port = 0;

  before(async () => {
    port = await freePort();
    proc = spawn(process.execPath, [path.join(root, 'scripts', 'start.mjs'), '--port', String(port), '--user-dir', userDir, '--no-build'], { stdio: 'pipe' });
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (out += d));
    await waitForEditor(port, proc, () => out);
  });
  after(async () => {
    await stop(proc);
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('serves the editor on 127.0.0.1 with our nodes in the palette', async () => {
    await assertLoaded(port);
  });

  it('puts the Arch PXE example in a disabled tab', async () => {
    const flows = (await json(port, '/flows')) as { id: string; type: string; label?: string; disabled?: boolean; z?: string }[];
    const tab = flows.find((n) => n.type === 'tab' && n.label === 'Arch PXE');
    assert.ok(tab, 'Arch PXE tab');
    assert.equal(tab.disabled, true);
    assert.ok(flows.some((n) => n.type === 'pxe-iso-store'));
    assert.ok(flows.filter((n) => n.z).every((n) => n.z === tab.id));
  });
});
