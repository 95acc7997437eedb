/**
 * The README's privileges, as a Pi's `nodered.service` runs them: Node-RED as an ordinary user
 * (nobody here, `pi` on a Pi) with the README drop-in's AmbientCapabilities — set with setpriv,
 * which does what systemd does for them — serves TFTP on port 69 and HTTP on port 80, and its NAT
 * node's `nft` (a child process) changes the firewall. Without them each node fails with a message
 * that names the capability to give. In a network namespace of its own; needs root and dist/.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable, type Netns } from '../lab/netns';
import { waitForLine } from '../lab/process';
import { parseUnit } from './systemd-unit';

const root = path.resolve(__dirname, '..', '..');
const SETPRIV = '/usr/bin/setpriv';
const NOBODY = 65534;
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { name: string };
/** Whether an ordinary user can read this checkout (a clone under /root cannot be). */
const nobodyReads = (): boolean =>
  spawnSync(SETPRIV, ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', 'test', '-r', path.join(root, 'node_modules', 'node-red', 'red.js')]).status === 0;
const skip =
  labAvailable() ??
  (!fs.existsSync(SETPRIV) ? 'setpriv missing' : !fs.existsSync(path.join(root, 'dist', 'nodes', 'pxe-tftp.js')) ? 'dist/ not built' : !fs.existsSync('/usr/sbin/nft') ? 'nft missing' : !nobodyReads() ? `user ${NOBODY} cannot read ${root}` : false);

/** The AmbientCapabilities of the README's drop-in, as setpriv's list (net_bind_service,…). */
function readmeCaps(): string {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const block = /```ini\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf('systemctl edit nodered')))![1]!.replace(/^[ \t]+/gm, '');
  const caps = parseUnit(block).get('Service')!.get('AmbientCapabilities')!.join(' ').split(/\s+/).filter(Boolean);
  return caps.map((c) => c.replace(/^CAP_/, '').toLowerCase()).join(',');
}

describe("Node-RED as an ordinary user, with and without the README's capabilities", { skip }, () => {
  let lab: Lab;
  let ns: Netns;
  let dir: string;
  let red: ChildProcess | undefined;
  const content = Buffer.from(`pxe capability check ${process.pid}\n`);

  before(() => {
    lab = Lab.create();
    ns = lab.netns('caps');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-caps-'));
    fs.mkdirSync(path.join(dir, 'www'));
    fs.writeFileSync(path.join(dir, 'www', 'hello.txt'), content);
    const user = path.join(dir, 'user');
    // The package as the palette installs it, here linked to this checkout (dist/ and the addon).
    fs.mkdirSync(path.join(user, 'node_modules', ...pkg.name.split('/').slice(0, -1)), { recursive: true });
    fs.symlinkSync(root, path.join(user, 'node_modules', ...pkg.name.split('/')));
    fs.writeFileSync(path.join(user, 'package.json'), '{"name":"node-red-project","version":"0.0.1","private":true}\n');
    fs.writeFileSync(path.join(user, 'settings.js'), "module.exports = { uiHost: '127.0.0.1', uiPort: 1880, flowFile: 'flows.json', credentialSecret: false };\n");
    fs.writeFileSync(
      path.join(user, 'flows.json'),
      JSON.stringify([
        { id: 't1', type: 'tab', label: 'caps' },
        { id: 's1', type: 'pxe-iso-store', name: 'www', path: path.join(dir, 'www') },
        { id: 'f1', type: 'pxe-tftp', z: 't1', store: 's1', address: '127.0.0.1', port: 69, wires: [[]] },
        { id: 'h1', type: 'pxe-http', z: 't1', store: 's1', mode: 'listen', address: '127.0.0.1', port: 80, path: '/pxe', listing: false, ipxePath: '', wires: [[]] },
        { id: 'n1', type: 'pxe-nat', z: 't1', subnet: '192.168.77.0/24', outInterface: 'lo', redirect: false, forward: false, backend: 'nftables', wires: [[]] },
      ]),
    );
    execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, dir]);
    fs.chmodSync(dir, 0o755);
  });

  after(async () => {
    red?.kill('SIGKILL');
    await lab?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function startRed(caps: string): Promise<{ log: () => string; stop: () => Promise<void> }> {
    const capArgs = caps ? ['--inh-caps', caps.split(',').map((c) => `+${c}`).join(','), '--ambient-caps', caps.split(',').map((c) => `+${c}`).join(',')] : [];
    red = ns.spawn(SETPRIV, ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', ...capArgs, process.execPath, path.join(root, 'node_modules', 'node-red', 'red.js'), '--userDir', path.join(dir, 'user')], {
      env: { PATH: process.env.PATH, HOME: dir },
    });
    const proc = red;
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (out += d));
    await waitForLine(proc, /Started flows/, 60_000);
    return {
      log: () => out,
      stop: () =>
        new Promise((resolve) => {
          if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
          proc.once('exit', () => resolve());
          proc.kill('SIGTERM');
        }),
    };
  }

  const until = async (what: string, ok: () => boolean, log: () => string): Promise<void> => {
    for (let i = 0; i < 150 && !ok(); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(ok(), `${what}; Node-RED's log:\n${log().slice(-3000)}`);
  };

  it('without them: each node says which capability to give', async () => {
    const r = await startRed('');
    try {
      await until('the TFTP, HTTP and NAT nodes report their errors', () => /\[pxe-tftp:[^\]]*\][^\n]*CAP_NET_BIND_SERVICE/.test(r.log()) && /\[pxe-http:[^\]]*\][^\n]*CAP_NET_BIND_SERVICE/.test(r.log()), r.log);
      // The NAT node applies on deploy: its nft runs without CAP_NET_ADMIN.
      await until('the NAT node reports CAP_NET_ADMIN', () => /\[pxe-nat:[^\]]*\][^\n]*CAP_NET_ADMIN/.test(r.log()), r.log);
    } finally {
      await r.stop();
    }
  });

  it("with the drop-in's ambient capabilities: TFTP on 69, HTTP on 80, NAT's nft", async () => {
    const r = await startRed(readmeCaps());
    try {
      await until('TFTP serves on port 69', () => /TFTP serving .* on 127\.0\.0\.1:69\b/.test(r.log()), r.log);
      const tftp = await ns.run('/usr/bin/curl', ['-s', '-m', '20', 'tftp://127.0.0.1:69/hello.txt']);
      assert.equal(tftp.stdout, content.toString(), `TFTP: ${tftp.stderr}`);
      const http = await ns.run('/usr/bin/curl', ['-s', '-m', '20', 'http://127.0.0.1:80/hello.txt']);
      assert.equal(http.stdout, content.toString(), `HTTP: ${http.stderr}`);
      const tables = (): string => execFileSync('ip', ['netns', 'exec', ns.name, 'nft', 'list', 'tables'], { encoding: 'utf8' });
      await until('the NAT node applied its table (nft run by Node-RED)', () => /pxe/i.test(tables()), () => `${tables()}\n${r.log()}`);
      assert.doesNotMatch(r.log(), /\[error\]/);
    } finally {
      await r.stop();
    }
  });
});
