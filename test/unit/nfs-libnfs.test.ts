// The server against an independent client, libnfs's nfs-ls / nfs-cat / nfs-cp, on loopback with
// explicit ports (no portmapper needed). Skipped where libnfs-utils is not installed; the lab tests
// (test/net/nfs.test.ts) run the same tools, and more, inside network namespaces.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NfsServer, type NfsListening, type NfsReadProgress } from '../../nodes/lib/nfs/server';
import { FolderStore } from '../../nodes/lib/store/folder-store';
import { tempDir, writeTree } from '../helpers/iso-images';

const HAVE_LIBNFS = ['/usr/bin/nfs-ls', '/usr/bin/nfs-cat', '/usr/bin/nfs-cp'].every((p) => fs.existsSync(p));
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'buffer', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr: stderr.toString() });
    });
  });
}

describe('nfs server with libnfs clients', { skip: HAVE_LIBNFS ? false : 'libnfs-utils (nfs-ls, nfs-cat, nfs-cp) not installed' }, () => {
  const ROOTFS = randomBytes(6 * 1024 * 1024 + 777);
  let dir: string;
  let server: NfsServer;
  let l: NfsListening;
  const reads: NfsReadProgress[] = [];
  const url = (p: string): string => `nfs://127.0.0.1${p}?nfsport=${l.nfsPort}&mountport=${l.mountPort}&version=3`;

  before(async () => {
    dir = tempDir('nfs-libnfs');
    writeTree(path.join(dir, 'root'), {
      'arch/x86_64/airootfs.sfs': ROOTFS,
      'arch/boot/x86_64/vmlinuz-linux': 'kernel',
      'Mixed Case Dir/a file.txt': 'spaces\n',
      'empty.txt': '',
    });
    const store = await new FolderStore(path.join(dir, 'root')).init();
    server = new NfsServer({ store, progressIntervalMs: 0 });
    server.on('read', (p) => reads.push(p));
    l = await server.listen({ address: '127.0.0.1', nfsPort: 0, mountPort: 0, portmapPort: 0, portmap: 'off' });
  });

  after(async () => {
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('nfs-ls lists the export with kinds, read-only modes and sizes', async () => {
    const r = await run('nfs-ls', [url('/run/archiso/bootmnt/arch/x86_64')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), new RegExp(`^-r--r--r-- .* ${ROOTFS.length} airootfs\\.sfs$`, 'm'));
    const top = await run('nfs-ls', [url('/run/archiso/bootmnt')]);
    assert.equal(top.code, 0, top.stderr);
    const names = top.stdout.toString().trim().split('\n').map((line) => line.replace(/^\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+/, ''));
    assert.deepEqual(names.sort(), ['Mixed Case Dir', 'arch', 'empty.txt']);
    assert.match(top.stdout.toString(), /^dr-xr-xr-x .* arch$/m);
  });

  it('nfs-cat and nfs-cp read files whole and intact; the server reports the file complete', async () => {
    const cat = await run('nfs-cat', [url('/run/archiso/bootmnt/arch/x86_64/airootfs.sfs')]);
    assert.equal(cat.code, 0, cat.stderr);
    assert.equal(sha(cat.stdout), sha(ROOTFS));
    const out = path.join(dir, 'copy.sfs');
    const cp = await run('nfs-cp', [url('/arch/x86_64/airootfs.sfs'), out]);
    assert.equal(cp.code, 0, cp.stderr);
    assert.equal(sha(fs.readFileSync(out)), sha(ROOTFS));
    assert.ok(reads.some((r) => r.path === 'arch/x86_64/airootfs.sfs' && r.done && r.bytes === ROOTFS.length));
    const spaced = await run('nfs-cat', [url('/Mixed Case Dir/a file.txt')]);
    assert.equal(spaced.stdout.toString(), 'spaces\n', spaced.stderr);
    const empty = await run('nfs-cat', [url('/run/archiso/bootmnt/empty.txt')]);
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(empty.stdout.length, 0);
  });

  it('nfs-cp onto the server fails read-only; an unknown export fails to mount', async () => {
    const src = path.join(dir, 'local.txt');
    fs.writeFileSync(src, 'x');
    const r = await run('nfs-cp', [src, url('/run/archiso/bootmnt/written.txt')]);
    assert.notEqual(r.code, 0);
    assert.equal(fs.existsSync(path.join(dir, 'root', 'written.txt')), false);
    const bad = await run('nfs-ls', [url('/srv/nothing')]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /MNT3ERR_NOENT/);
  });
});
