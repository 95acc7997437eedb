// Real NBD clients (libnbd's nbdinfo and nbdcopy, qemu-img) against our server, across two lab
// namespaces: the copy must equal the exported image byte for byte.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable, type Netns } from '../lab/netns';
import { waitForLine } from '../lab/process';

const skip =
  labAvailable() ?? (['/usr/bin/nbdinfo', '/usr/bin/nbdcopy', '/usr/bin/qemu-img'].find((p) => !fs.existsSync(p)) ? 'needs libnbd-bin and qemu-utils' : null);
const SRV = '10.91.9.1';
const PORT = 10809;
const SIZE = 20 * 1024 * 1024;

describe('pxe-nbd server with nbdinfo, nbdcopy and qemu-img (lab)', { skip: skip ?? false }, () => {
  let lab: Lab;
  let srv: Netns;
  let cli: Netns;
  let tmp: string;
  let iso: string;
  let image: Buffer;
  let child: ChildProcess;
  const events: { event: string; [k: string]: unknown }[] = [];

  before(async () => {
    lab = Lab.create();
    srv = lab.netns('srv');
    cli = lab.netns('cli');
    lab.veth(srv, `${SRV}/24`, cli, '10.91.9.2/24', { mtu: 1500 });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-nbd-'));
    iso = path.join(tmp, 'x.iso');
    image = randomBytes(SIZE);
    fs.writeFileSync(iso, image);
    child = srv.spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'nbd-child.ts'), iso, 'archiso', SRV, String(PORT), '200']);
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) if (l.startsWith('{"event"')) events.push(JSON.parse(l));
    });
    await waitForLine(child, /"listening"/, 20000);
  });
  after(async () => {
    await lab?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const uri = `nbd://${SRV}:${PORT}/archiso`;

  it('nbdinfo describes the export: size, read-only, flush', async () => {
    const r = await cli.run('/usr/bin/nbdinfo', [uri], { timeoutMs: 20000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`export-size: ${SIZE}\\b`));
    assert.match(r.stdout, /is_read_only: true/);
    assert.match(r.stdout, /can_flush: true/);
    assert.match(r.stdout, /can_trim: false/);
  });

  it('nbdinfo --list lists the archiso export', async () => {
    const r = await cli.run('/usr/bin/nbdinfo', ['--list', `nbd://${SRV}:${PORT}`], { timeoutMs: 20000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /export="archiso"/);
  });

  it('nbdinfo on an unknown export name fails cleanly', async () => {
    const r = await cli.run('/usr/bin/nbdinfo', [`nbd://${SRV}:${PORT}/nope`], { timeoutMs: 20000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /nope|unknown|not (found|available)/i);
  });

  it('nbdcopy copies the export byte for byte', async () => {
    const out = path.join(tmp, 'nbdcopy.img');
    const r = await cli.run('/usr/bin/nbdcopy', [uri, out], { timeoutMs: 60000 });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fs.readFileSync(out).equals(image), 'nbdcopy output differs from the image');
  });

  it('qemu-img convert copies the export byte for byte', async () => {
    const out = path.join(tmp, 'qemu.img');
    const r = await cli.run('/usr/bin/qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, out], { timeoutMs: 60000 });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fs.readFileSync(out).equals(image), 'qemu-img output differs from the image');
  });

  it('reported connect, progress and disconnect for the copies, and is still serving', async () => {
    // Events travel through the child's stdout: the last copy's disconnect may not be read yet
    // when its client has exited, so wait (bounded) for the bytes to add up.
    const readSoFar = (): number => events.filter((e) => e.event === 'disconnect').reduce((n, e) => n + (e.bytesRead as number), 0);
    for (const end = Date.now() + 5000; readSoFar() < 2 * SIZE && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
    const connects = events.filter((e) => e.event === 'connect');
    const disconnects = events.filter((e) => e.event === 'disconnect');
    assert.ok(connects.length >= 3, JSON.stringify(connects));
    assert.ok(connects.every((e) => e.address === '10.91.9.2' && e.export === 'archiso'));
    assert.ok(events.some((e) => e.event === 'progress' && typeof e.share === 'number'));
    // Every byte of the image was read at least twice (nbdcopy + qemu-img) across the sessions.
    const total = disconnects.reduce((n, e) => n + (e.bytesRead as number), 0);
    assert.ok(total >= 2 * SIZE, `bytes read ${total}`);
    assert.equal(child.exitCode, null, 'server exited');
    const r = await cli.run('/usr/bin/nbdinfo', ['--size', uri], { timeoutMs: 20000 });
    assert.equal(r.stdout.trim(), String(SIZE));
  });
});
