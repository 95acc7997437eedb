// The pxe-nfs node in Node-RED's runtime (node-red-node-test-helper), on loopback with the
// portmapper off and free ports: what a user sees (messages, status, errors) and what a redeploy
// must release (ports, the store, descriptors).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { NodeMessage, RedNode } from '../../nodes/lib/red';
import nfsNode from '../../nodes/pxe-nfs';
import isoStoreNode from '../../nodes/pxe-iso-store';
import { lookupPath, mnt, read, RpcTcp, umnt } from '../net/nfs-rpc';
import { freePort, waitFor, withLocale } from './node-helpers';

/** The part of node-red-node-test-helper used here (it ships no types). */
interface TestHelper {
  init(runtimePath: string): void;
  load(nodes: unknown[], flow: object[]): Promise<void>;
  unload(): Promise<void>;
  getNode(id: string): unknown;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports -- untyped CommonJS module
const helper = require('node-red-node-test-helper') as TestHelper;
helper.init(require.resolve('node-red'));

const statusIs = (fill: string, text?: string) => (a: unknown[]) => {
  const s = a[0] as { fill?: string; text?: string };
  return s.fill === fill && (text === undefined || s.text === text);
};

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

describe('pxe-nfs node', () => {
  let dir: string;
  const file = randomBytes(300 * 1024 + 5);

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-nfs-node-'));
    fs.mkdirSync(path.join(dir, 'arch', 'x86_64'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'arch', 'x86_64', 'airootfs.sfs'), file);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  afterEach(() => helper.unload());

  function flow(nfsPort: number, mountPort: number, extra: Record<string, unknown> = {}): object[] {
    return [
      { id: 's1', type: 'pxe-iso-store', path: dir },
      { id: 'n1', type: 'pxe-nfs', store: 's1', address: '127.0.0.1', nfsPort, mountPort, portmap: 'off', exportPaths: '', progressInterval: 0, wires: [['h1']], ...extra },
      { id: 'h1', type: 'helper' },
    ];
  }

  it('serves the store: mount, read and umount arrive as messages; the status counts mounts', async () => {
    const [nfsPort, mountPort] = [await freePort(), await freePort()];
    await helper.load([nfsNode, isoStoreNode], flow(nfsPort, mountPort));
    const n1 = helper.getNode('n1') as RedNode;
    const msgs: NodeMessage[] = [];
    (helper.getNode('h1') as RedNode).on('input', (m: NodeMessage) => msgs.push(m));
    await waitFor(n1, 'status', statusIs('green', 'pxe-nfs.status.mounted'));

    const mounted = waitFor(n1, 'status', statusIs('blue'));
    const m = await RpcTcp.connect('127.0.0.1', mountPort);
    const c = await RpcTcp.connect('127.0.0.1', nfsPort);
    try {
      const root = await mnt(m, '/run/archiso/bootmnt');
      assert.equal(root.status, 0);
      await mounted;
      const f = await lookupPath(c, root.fh!, 'arch/x86_64/airootfs.sfs');
      assert.equal(f.status, 0);
      const parts: Buffer[] = [];
      for (let off = 0; off < file.length; ) {
        const r = await read(c, f.fh!, off, 128 * 1024);
        assert.equal(r.status, 0);
        parts.push(r.data!);
        off += r.count!;
        if (r.eof) break;
      }
      assert.equal(createHash('sha256').update(Buffer.concat(parts)).digest('hex'), createHash('sha256').update(file).digest('hex'));
      const idle = waitFor(n1, 'status', statusIs('green'));
      await umnt(m, '/run/archiso/bootmnt');
      await idle;
    } finally {
      m.close();
      c.close();
    }
    const topics = msgs.map((x) => x.topic);
    assert.equal(topics[0], 'nfs/mount');
    assert.equal(topics.at(-1), 'nfs/umount');
    const reads = msgs.filter((x) => x.topic === 'nfs/read').map((x) => x.payload as { path: string; bytes: number; size: number; done: boolean; address: string });
    assert.ok(reads.length >= 1, JSON.stringify(topics));
    const last = reads.at(-1)!;
    assert.deepEqual([last.path, last.bytes, last.size, last.done, last.address], ['arch/x86_64/airootfs.sfs', file.length, file.length, true, '127.0.0.1']);
    assert.deepEqual((msgs[0]!.payload as { path: string }).path, '/run/archiso/bootmnt');
  });

  it('shows a file being read, with a rate, on its status dot, and idle once it is read whole', async () => {
    const [nfsPort, mountPort] = [await freePort(), await freePort()];
    await helper.load([withLocale, nfsNode, isoStoreNode], flow(nfsPort, mountPort));
    const n1 = helper.getNode('n1') as RedNode;
    const text = (a: unknown[]): string => String((a[0] as { text?: string }).text);
    await waitFor(n1, 'status', (a) => text(a) === '0 mounted');
    const m = await RpcTcp.connect('127.0.0.1', mountPort);
    const c = await RpcTcp.connect('127.0.0.1', nfsPort);
    try {
      const root = await mnt(m, '/run/archiso/bootmnt');
      await waitFor(n1, 'status', (a) => text(a) === '1 mounted');
      const f = await lookupPath(c, root.fh!, 'arch/x86_64/airootfs.sfs');
      // Half the file: one file being read.
      const busy = waitFor(n1, 'status', (a) => /^1 reading, [1-9][\d.]* [kMG]?B\/s \(1 mounted\)$/.test(text(a)));
      const r = await read(c, f.fh!, 0, 128 * 1024);
      assert.equal(r.status, 0);
      const [s] = await busy;
      assert.equal((s as { fill: string }).fill, 'blue');
      // The rest: read whole, nothing in flight, the mount remains.
      for (let off = r.count!; off < file.length; ) {
        const more = await read(c, f.fh!, off, 128 * 1024);
        off += more.count!;
        if (more.eof) break;
      }
      await waitFor(n1, 'status', (a) => text(a) === '1 mounted');
      await umnt(m, '/run/archiso/bootmnt');
      await waitFor(n1, 'status', (a) => text(a) === '0 mounted' && (a[0] as { fill?: string }).fill === 'green');
    } finally {
      m.close();
      c.close();
    }
  });

  it('explains a port already in use, and bad settings, with a red status', async () => {
    const blocker = net.createServer();
    const port = await new Promise<number>((r) => blocker.listen(0, '127.0.0.1', () => r((blocker.address() as net.AddressInfo).port)));
    try {
      await helper.load([nfsNode, isoStoreNode], flow(port, await freePort()));
      const n1 = helper.getNode('n1') as RedNode;
      const [err] = await waitFor(n1, 'error', () => true);
      assert.equal(err, 'pxe-nfs.errors.inUse');
      const statuses = (n1.status as unknown as { args: unknown[][] }).args;
      assert.ok(statuses.some(statusIs('red', 'pxe-nfs.status.inUse')), JSON.stringify(statuses));
    } finally {
      blocker.close();
    }
    for (const [extra, key] of [
      [{ exportPaths: 'relative/path' }, 'pxe-nfs.errors.exportPaths'],
      [{ nfsPort: 'x' }, 'pxe-nfs.errors.port'],
      [{ maxConnections: 0 }, 'pxe-nfs.errors.maxConnections'],
      [{ store: '' }, 'pxe-nfs.errors.noStore'],
    ] as const) {
      await helper.unload();
      await helper.load([nfsNode, isoStoreNode], flow(await freePort(), await freePort(), extra));
      const [err] = await waitFor(helper.getNode('n1') as RedNode, 'error', () => true);
      assert.equal(err, key, JSON.stringify(extra));
    }
  });

  it('20 redeploys with a client mounted each time: ports freed, no descriptor leaked, the client dropped', async () => {
    const [nfsPort, mountPort] = [await freePort(), await freePort()];
    let baseline = 0;
    for (let i = 0; i < 20; i++) {
      await helper.load([nfsNode, isoStoreNode], flow(nfsPort, mountPort));
      const n1 = helper.getNode('n1') as RedNode;
      await waitFor(n1, 'status', statusIs('green'));
      const m = await RpcTcp.connect('127.0.0.1', mountPort);
      assert.equal((await mnt(m, '/')).status, 0);
      await helper.unload();
      // close() waited for the server: the client's connection is gone and both ports are free.
      await m.closed;
      for (const port of [nfsPort, mountPort]) {
        const s = net.createServer();
        await new Promise<void>((resolve, reject) => s.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
        await new Promise((r) => s.close(r));
      }
      if (i === 1) baseline = openFds();
    }
    assert.ok(openFds() <= baseline + 2, `descriptors: ${baseline} after the 2nd redeploy, ${openFds()} after the 20th`);
  });
});
