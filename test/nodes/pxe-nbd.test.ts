import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import * as P from '../../nodes/lib/nbd/protocol';
import type { NodeDef, NodeMessage, RedApi, RedNode } from '../../nodes/lib/red';
import type { FileStore } from '../../nodes/lib/store/types';
import { WireClient } from '../unit/nbd-wire';
import nbdNode from '../../nodes/pxe-nbd';
import isoStoreNode from '../../nodes/pxe-iso-store';
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

/**
 * A stand-in pxe-iso-store whose store is an ISO image (kind 'iso'), so this test does not depend
 * on the ISO backend; only kind and source matter to pxe-nbd.
 */
function fakeIsoStoreNode(RED: RedApi): void {
  RED.nodes.registerType('pxe-iso-store', function (this: RedNode & Record<string, unknown>, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const store = { kind: 'iso', source: String(def.path), close: async () => undefined } as unknown as FileStore;
    this.acquire = async () => store;
    this.release = async () => {
      fakeReleases++;
    };
  });
}
let fakeReleases = 0;

describe('pxe-nbd node', () => {
  let dir: string;
  let iso: string;
  const image = randomBytes(1024 * 1024 + 17);

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-nbd-node-'));
    iso = path.join(dir, 'x.iso');
    fs.writeFileSync(iso, image);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    await helper.unload();
  });

  function flow(port: number, storePath: string, extra: Record<string, unknown> = {}): object[] {
    return [
      { id: 's1', type: 'pxe-iso-store', path: storePath },
      { id: 'n1', type: 'pxe-nbd', store: 's1', exportName: 'archiso', address: '127.0.0.1', port, progressInterval: 0, wires: [['h1']], ...extra },
      { id: 'h1', type: 'helper' },
    ];
  }

  it('exports the ISO file and reports connect, progress, disconnect and the client count', async () => {
    const port = await freePort();
    await helper.load([nbdNode, fakeIsoStoreNode], flow(port, iso));
    const n1 = helper.getNode('n1') as RedNode;
    const h1 = helper.getNode('h1') as RedNode;
    const msgs: NodeMessage[] = [];
    h1.on('input', (m: NodeMessage) => msgs.push(m));
    await waitFor(n1, 'status', (a) => (a[0] as { fill?: string }).fill === 'green');

    const attachedStatus = waitFor(n1, 'status', (a) => (a[0] as { fill?: string }).fill === 'blue');
    const c = await WireClient.connect(port);
    await c.handshake();
    const go = await c.go('archiso');
    assert.equal(go.final.type, P.NBD_REP_ACK);
    assert.deepEqual(go.infos[0], { type: P.NBD_INFO_EXPORT, size: image.length, flags: P.NBD_FLAG_HAS_FLAGS | P.NBD_FLAG_READ_ONLY | P.NBD_FLAG_SEND_FLUSH | P.NBD_FLAG_CAN_MULTI_CONN });
    await attachedStatus;
    c.request(P.NBD_CMD_READ, image.length - 4096, 4096);
    assert.equal((await c.simpleReply()).error, 0);
    assert.deepEqual(await c.read(4096), image.subarray(image.length - 4096));
    c.request(P.NBD_CMD_DISC, 0, 0);
    await c.waitEnd();
    // Wait for the disconnect message itself (the dot and the message come from different events),
    // then for the dot back to idle, unless it is there already.
    for (let i = 0; i < 500 && !msgs.some((m) => m.topic === 'nbd/disconnect'); i++) await new Promise((r) => setTimeout(r, 10));
    const last = (n1.status as unknown as { lastCall: { args: [{ fill?: string }] } }).lastCall.args[0];
    if (last.fill !== 'green') await waitFor(n1, 'status', (a) => (a[0] as { fill?: string }).fill === 'green');

    const topics = msgs.map((m) => m.topic);
    assert.deepEqual(topics, ['nbd/connect', 'nbd/progress', 'nbd/disconnect']);
    const progress = msgs[1]!.payload as { bytesRead: number; share: number; address: string; export: string };
    assert.equal(progress.bytesRead, 4096);
    assert.equal(progress.share, 4096 / image.length);
    assert.equal(progress.address, '127.0.0.1');
    assert.equal(progress.export, 'archiso');
  });

  it('shows a client reading, with a rate, on its status dot; connected but quiet is not busy', async () => {
    const port = await freePort();
    await helper.load([withLocale, nbdNode, fakeIsoStoreNode], flow(port, iso));
    const n1 = helper.getNode('n1') as RedNode;
    const text = (a: unknown[]): string => String((a[0] as { text?: string }).text);
    await waitFor(n1, 'status', (a) => text(a) === '0 client(s)');
    const c = await WireClient.connect(port);
    try {
      await c.handshake();
      await c.go('archiso');
      await waitFor(n1, 'status', (a) => text(a) === '1 client(s)');
      // Reading: one client busy, bytes per second from its progress reports.
      const busy = waitFor(n1, 'status', (a) => /^1 reading, [1-9][\d.]* [kMG]?B\/s \(1 connected\)$/.test(text(a)));
      for (let off = 0; off + 65536 <= image.length; off += 65536) {
        c.request(P.NBD_CMD_READ, off, 65536);
        assert.equal((await c.simpleReply()).error, 0);
        assert.deepEqual(await c.read(65536), image.subarray(off, off + 65536));
      }
      const [s] = await busy;
      assert.equal((s as { fill: string }).fill, 'blue');
      // It stops reading but stays connected (a booted kernel's client does): after a few quiet
      // seconds it is only connected.
      await waitFor(n1, 'status', (a) => text(a) === '1 client(s)', 9000);
      // It leaves: idle.
      c.request(P.NBD_CMD_DISC, 0, 0);
      await c.waitEnd();
      await waitFor(n1, 'status', (a) => text(a) === '0 client(s)' && (a[0] as { fill?: string }).fill === 'green');
    } finally {
      c.destroy();
    }
  });

  it('refuses a folder store with a clear error and a red status', async () => {
    const port = await freePort();
    await helper.load([nbdNode, isoStoreNode], flow(port, dir));
    const n1 = helper.getNode('n1') as RedNode;
    const [err] = await waitFor(n1, 'error', () => true);
    assert.equal(err, 'pxe-nbd.errors.folderStore');
    const status = (n1.status as unknown as { args: unknown[][] }).args.map((a) => a[0] as { fill?: string; shape?: string; text?: string });
    assert.ok(status.some((s) => s.fill === 'red' && s.shape === 'ring' && s.text === 'pxe-nbd.status.folderStore'));
    await assert.rejects(WireClient.connect(port));
  });

  it('explains a port already in use', async () => {
    const blocker = net.createServer();
    const port = await new Promise<number>((r) => blocker.listen(0, '127.0.0.1', () => r((blocker.address() as net.AddressInfo).port)));
    try {
      await helper.load([nbdNode, fakeIsoStoreNode], flow(port, iso));
      const n1 = helper.getNode('n1') as RedNode;
      const [err] = await waitFor(n1, 'error', () => true);
      assert.equal(err, 'pxe-nbd.errors.inUse');
    } finally {
      blocker.close();
    }
  });

  it('gives the store back as soon as listening fails, not only at close', async () => {
    const blocker = net.createServer();
    const port = await new Promise<number>((r) => blocker.listen(0, '127.0.0.1', () => r((blocker.address() as net.AddressInfo).port)));
    try {
      const before = fakeReleases;
      await helper.load([nbdNode, fakeIsoStoreNode], flow(port, iso));
      const n1 = helper.getNode('n1') as RedNode;
      await waitFor(n1, 'error', () => true);
      assert.equal(fakeReleases, before + 1, 'the store is released with the red dot');
      const last = (n1.status as unknown as { lastCall: { args: [{ fill?: string; text?: string }] } }).lastCall.args[0];
      assert.deepEqual([last.fill, last.text], ['red', 'pxe-nbd.status.inUse']);
      await helper.unload();
      assert.equal(fakeReleases, before + 1, 'and not released twice at close');
    } finally {
      blocker.close();
    }
  });

  it('reports a missing store and a bad port', async () => {
    await helper.load([nbdNode, fakeIsoStoreNode], [{ id: 'n1', type: 'pxe-nbd', store: '', port: 10809, wires: [] }]);
    const n1 = helper.getNode('n1') as RedNode;
    await new Promise((r) => setTimeout(r, 50));
    const errs = (n1.error as unknown as { args: unknown[][] }).args.map((a) => a[0]);
    assert.ok(errs.includes('pxe-nbd.errors.noStore'), JSON.stringify(errs));
    await helper.unload();
    await helper.load([nbdNode, fakeIsoStoreNode], flow(0, iso, { port: 'x' }));
    await new Promise((r) => setTimeout(r, 50));
    const n2 = helper.getNode('n1') as RedNode;
    const errs2 = (n2.error as unknown as { args: unknown[][] }).args.map((a) => a[0]);
    assert.ok(errs2.includes('pxe-nbd.errors.port'), JSON.stringify(errs2));
  });

  it('warns once about an address over its connection limit, however many connections it opens', async () => {
    const port = await freePort();
    await helper.load([nbdNode, fakeIsoStoreNode], flow(port, iso));
    const n1 = helper.getNode('n1') as RedNode;
    await waitFor(n1, 'status', (a) => (a[0] as { fill?: string }).fill === 'green');
    const open: WireClient[] = [];
    try {
      for (let i = 0; i < 8; i++) open.push(await WireClient.connect(port));
      for (let i = 0; i < 5; i++) {
        const extra = await WireClient.connect(port);
        await extra.closed;
      }
      const warns = (n1.warn as unknown as { args: unknown[][] }).args.map((a) => a[0]);
      assert.deepEqual(warns, ['pxe-nbd.errors.tooManyFromAddress']);
    } finally {
      for (const c of open) c.destroy();
    }
  });

  it('on close, drops clients, frees the port and releases the store', async () => {
    const port = await freePort();
    await helper.load([nbdNode, fakeIsoStoreNode], flow(port, iso));
    const n1 = helper.getNode('n1') as RedNode;
    await waitFor(n1, 'status', (a) => (a[0] as { fill?: string }).fill === 'green');
    const c = await WireClient.connect(port);
    await c.handshake();
    await c.go('archiso');
    // A client that does not read its reply: closing must not wait for it.
    c.socket.pause();
    c.request(P.NBD_CMD_READ, 0, image.length);
    await new Promise((r) => setTimeout(r, 50));
    const before = fakeReleases;
    await helper.unload();
    c.socket.resume();
    await c.closed;
    assert.equal(fakeReleases, before + 1);
    // The port is free again: a new server can take it.
    const s = net.createServer();
    await new Promise<void>((resolve, reject) => s.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
    await new Promise((r) => s.close(r));
  });
});
