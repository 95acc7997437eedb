import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { NodeMessage, RedNode } from '../../nodes/lib/red';
import { encodeError, encodeRequest, Opcode } from '../../nodes/lib/tftp/codec';
import { get, TestClient } from '../unit/tftp-helpers';
import tftpNode from '../../nodes/pxe-tftp';
import isoStoreNode from '../../nodes/pxe-iso-store';
import { waitFor, withLocale } from './node-helpers';
import { bootBus, type BootSignal, type TransferSignal } from '../../nodes/lib/boot-events/bus';

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

const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;
type Status = { fill?: string; shape?: string; text?: string };
const spied = (node: RedNode, method: 'status' | 'error' | 'warn' | 'debug'): unknown[][] => (node[method] as unknown as { args: unknown[][] }).args;

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const fill = (f: string) => (a: unknown[]) => (a[0] as Status).fill === f;

/**
 * The index of the first status call of `node` from index `from` on that `pred` accepts: one
 * already made (a slow machine may finish a transfer, and its dot updates, before the test looks),
 * else the next one, waited for up to 5 s from now (the dot changes at most once a second). The
 * helper's spy is shared by every node of the flow: its thisValues say whose call each was.
 */
async function statusSince(node: RedNode, from: number, pred: (a: unknown[]) => boolean): Promise<number> {
  const spy = node.status as unknown as { args: unknown[][]; thisValues: unknown[] };
  const i = spy.args.findIndex((a, k) => k >= from && spy.thisValues[k] === node && pred(a));
  if (i >= 0) return i;
  const args = await waitFor(node, 'status', pred);
  const at = spy.args.lastIndexOf(args);
  assert.ok(at >= from, `status call ${at} after ${from}`);
  return at;
}

describe('pxe-tftp node', () => {
  let dir: string;
  const file = randomBytes(200_000);

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-tftp-node-'));
    fs.mkdirSync(path.join(dir, 'arch/boot'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'arch/boot/vmlinuz-linux'), file);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    await helper.unload();
  });

  function flow(port: number, extra: Record<string, unknown> = {}): object[] {
    return [
      { id: 's1', type: 'pxe-iso-store', path: dir },
      { id: 'n1', type: 'pxe-tftp', store: 's1', address: '127.0.0.1', port, wires: [['h1']], ...extra },
      { id: 'h1', type: 'helper' },
    ];
  }

  it('serves the store and reports tftp/start, tftp/done, tftp/error and the active count', async () => {
    const port = await freeUdpPort();
    await helper.load([tftpNode, isoStoreNode], flow(port, { maxBlksize: 1024 }));
    const n1 = helper.getNode('n1') as RedNode;
    const h1 = helper.getNode('h1') as RedNode;
    const msgs: NodeMessage[] = [];
    h1.on('input', (m: NodeMessage) => msgs.push(m));
    // The idle dot may come before this test listens for it: look at what was shown so far too.
    if (!spied(n1, 'status').some(fill('green'))) await waitFor(n1, 'status', fill('green'));

    // The dot changes at most once a second: let the idle one age before the transfer starts.
    await new Promise((r) => setTimeout(r, 1100));
    const c = await TestClient.open();
    try {
      const from = spied(n1, 'status').length;
      const r = await get(c, port, '/arch/boot/vmlinuz-linux', { options: [{ name: 'blksize', value: '1468' }, { name: 'tsize', value: '0' }] });
      assert.deepEqual(r.data, file);
      // Busy while it ran, idle after it; counted from the transfer's end, not its start, since
      // under emulation (scripts/platforms/arm.sh) the transfer alone can take seconds.
      const busyAt = await statusSince(n1, from, fill('blue'));
      await statusSince(n1, busyAt + 1, fill('green'));
      const active = spied(n1, 'status').map((a) => (a[0] as Status).text);
      // While a transfer runs the dot says how many and how fast ("1 active, 12 MB/s").
      assert.ok(active.includes('pxe-tftp.status.busy'), active.join(','));

      // A missing file: tftp/error, logged at debug level only (pxelinux probes many paths).
      const miss = await get(c, port, 'pxelinux.cfg/default');
      assert.equal(miss.error?.code, 1);
      // A size probe that ends after the OACK: no message at all.
      c.send(encodeRequest(Opcode.RRQ, 'arch/boot/vmlinuz-linux', 'octet', [{ name: 'tsize', value: '0' }]), port);
      const oack = await c.recv();
      assert.ok(oack?.pkt?.op === Opcode.OACK);
      c.send(encodeError(8, 'tsize only'), oack.port);
      await waitFor(n1, 'debug', (a) => String(a[0]) === 'pxe-tftp.log.declined');
    } finally {
      await c.close();
    }
    assert.deepEqual(msgs.map((m) => m.topic), ['tftp/start', 'tftp/done', 'tftp/error']);
    const done = msgs[1]!.payload as { client: { address: string }; file: string; size: number; bytesSent: number; durationMs: number; options: { blksize: number; tsize: number } };
    assert.equal(done.client.address, '127.0.0.1');
    assert.equal(done.file, '/arch/boot/vmlinuz-linux');
    assert.equal(done.size, file.length);
    assert.equal(done.bytesSent, file.length);
    assert.ok(done.durationMs >= 0);
    assert.deepEqual(done.options, { blksize: 1024, windowsize: 1, tsize: file.length });
    assert.equal((msgs[2]!.payload as { code: number; quiet: boolean }).code, 1);
    assert.equal((msgs[2]!.payload as { quiet: boolean }).quiet, true);
    assert.deepEqual(spied(n1, 'warn'), []);
    assert.deepEqual(spied(n1, 'error'), []);
  });

  it('reports a long transfer as it goes: progress to the boot view, a busy dot with its rate, then idle', async () => {
    const port = await freeUdpPort();
    await helper.load([withLocale, tftpNode, isoStoreNode], flow(port));
    const n1 = helper.getNode('n1') as RedNode;
    const text = (a: unknown[]): string => String((a[0] as Status).text);
    if (!spied(n1, 'status').some((a) => text(a) === `listening :${port}`)) await waitFor(n1, 'status', (a) => text(a) === `listening :${port}`);
    await new Promise((r) => setTimeout(r, 1100));
    const msgs: NodeMessage[] = [];
    (helper.getNode('h1') as RedNode).on('input', (m: NodeMessage) => msgs.push(m));
    const signals: TransferSignal[] = [];
    const off = bootBus.subscribe((x: BootSignal) => {
      if (x.source === 'tftp') signals.push(x);
    });
    const c = await TestClient.open();
    try {
      // A slow client: 137 blocks, each ACK 8 ms late, over a second in all.
      const from = spied(n1, 'status').length;
      const r = await get(c, port, '/arch/boot/vmlinuz-linux', { options: [{ name: 'blksize', value: '1468' }, { name: 'tsize', value: '0' }], ackDelayMs: 8 });
      assert.deepEqual(r.data, file);
      const busyAt = await statusSince(n1, from, (a) => /^1 active, [1-9][\d.]* [kMG]?B\/s$/.test(text(a)));
      await statusSince(n1, busyAt + 1, (a) => text(a) === `listening :${port}`);
    } finally {
      off();
      await c.close();
    }
    const kinds = signals.map((x) => x.kind);
    assert.equal(kinds[0], 'start');
    assert.equal(kinds.at(-1), 'done');
    const progress = signals.filter((x) => x.kind === 'progress');
    assert.ok(progress.length >= 2, kinds.join(','));
    for (const p of progress) {
      assert.equal(p.file, '/arch/boot/vmlinuz-linux');
      assert.equal(p.size, file.length);
      assert.equal(p.ip, '127.0.0.1');
      assert.ok(p.bytes > 0 && p.bytes < file.length);
    }
    // No extra messages for progress: a flow still gets one start and one done.
    assert.deepEqual(msgs.map((m) => m.topic), ['tftp/start', 'tftp/done']);
  });

  it('a request waiting for a transfer slot is not a boot error; one refused past the wait queue is, and is warned about once a minute', async () => {
    const port = await freeUdpPort();
    await helper.load([tftpNode, isoStoreNode], flow(port, { maxTransfers: 1 }));
    const n1 = helper.getNode('n1') as RedNode;
    if (!spied(n1, 'status').some(fill('green'))) await waitFor(n1, 'status', fill('green'));
    const signals: TransferSignal[] = [];
    const off = bootBus.subscribe((x: BootSignal) => {
      if (x.source === 'tftp') signals.push(x);
    });
    const rrq = encodeRequest(Opcode.RRQ, 'arch/boot/vmlinuz-linux', 'octet');
    const busy = await TestClient.open();
    // maxTransfers 1: 4 requests wait (4 per slot), the next two are refused.
    const waiting = await Promise.all(Array.from({ length: 4 }, () => TestClient.open()));
    const refused = await Promise.all(Array.from({ length: 2 }, () => TestClient.open()));
    try {
      // One transfer holds the only slot (its client never acknowledges the first block).
      busy.send(rrq, port);
      assert.equal((await busy.recv())?.pkt?.op, Opcode.DATA);
      for (const c of waiting) for (let i = 0; i < 2; i++) c.send(rrq, port);
      await new Promise((r) => setTimeout(r, 100));
      const warned = waitFor(n1, 'warn', (a) => a[0] === 'pxe-tftp.warn.refused');
      for (const c of refused) c.send(rrq, port);
      await warned;
      for (const c of refused) {
        const r = await c.recv(500);
        assert.ok(r?.pkt?.op === Opcode.ERROR && r.pkt.code === 0, 'past the queue: an ERROR, not silence');
      }
      for (const c of waiting) assert.equal(await c.recv(50), null, 'waiting: no answer yet, no ERROR');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(spied(n1, 'warn').filter((a) => a[0] === 'pxe-tftp.warn.refused').length, 1, 'one warning for the burst');
      assert.equal(spied(n1, 'warn').filter((a) => a[0] === 'pxe-tftp.warn.dropped').length, 0);
      const errors = signals.filter((x) => x.kind === 'error');
      assert.equal(errors.length, 2, 'the boot view sees the two refused clients, not the waiting ones');
    } finally {
      off();
      for (const c of [busy, ...waiting, ...refused]) await c.close();
    }
  });

  it('explains a port already in use with a red status', async () => {
    const blocker = dgram.createSocket('udp4');
    await new Promise<void>((r) => blocker.bind(0, '127.0.0.1', () => r()));
    try {
      await helper.load([tftpNode, isoStoreNode], flow(blocker.address().port));
      const n1 = helper.getNode('n1') as RedNode;
      const [err] = await waitFor(n1, 'error', () => true);
      assert.equal(err, 'pxe-tftp.errors.inUse');
      assert.ok(spied(n1, 'status').some((a) => (a[0] as Status).fill === 'red' && (a[0] as Status).shape === 'ring' && (a[0] as Status).text === 'pxe-tftp.status.inUse'));
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });

  it('reports a missing store and invalid settings', async () => {
    await helper.load([tftpNode, isoStoreNode], [{ id: 'n1', type: 'pxe-tftp', store: '', port: 6969, wires: [] }]);
    const n1 = helper.getNode('n1') as RedNode;
    await waitFor(n1, 'error', (a) => a[0] === 'pxe-tftp.errors.noStore');
    await helper.unload();
    await helper.load([tftpNode, isoStoreNode], flow(6969, { maxBlksize: 4 }));
    const n2 = helper.getNode('n1') as RedNode;
    await waitFor(n2, 'error', (a) => a[0] === 'pxe-tftp.errors.setting');
    assert.ok(spied(n2, 'status').some((a) => (a[0] as Status).text === 'pxe-tftp.status.badConfig'));
    await helper.unload();
    await helper.load([tftpNode, isoStoreNode], flow(6969, { workers: 'many' }));
    await waitFor(helper.getNode('n1') as RedNode, 'error', (a) => a[0] === 'pxe-tftp.errors.setting');
  });

  it('runs on Node-RED\'s thread with dgram sockets when threads are 0 and native I/O is off, and still serves', async () => {
    const port = await freeUdpPort();
    await helper.load([tftpNode, isoStoreNode], flow(port, { workers: 0, nativeIo: false }));
    const n1 = helper.getNode('n1') as RedNode;
    await waitFor(n1, 'log', (a) => a[0] === 'pxe-tftp.log.dgramIo');
    const c = await TestClient.open();
    try {
      const r = await get(c, port, '/arch/boot/vmlinuz-linux', { options: [{ name: 'blksize', value: '1468' }] });
      assert.deepEqual(r.data, file);
    } finally {
      await c.close();
    }
  });

  it('redeploys 20 times on the same port with a transfer in flight: no EADDRINUSE, no leaked descriptors', async () => {
    const port = await freeUdpPort();
    const c = await TestClient.open();
    let baseline = 0;
    try {
      for (let i = 0; i < 20; i++) {
        await helper.load([tftpNode, isoStoreNode], flow(port));
        const n1 = helper.getNode('n1') as RedNode;
        const errors: unknown[] = [];
        n1.on('call:error', (call: { args: unknown[] }) => errors.push(call.args[0]));
        // Listening may be shown before this line runs (a slow machine): the calls so far count.
        await statusSince(n1, 0, fill('green'));
        // Start a transfer and leave it hanging: close must end it and free its socket and file.
        c.send(encodeRequest(Opcode.RRQ, 'arch/boot/vmlinuz-linux', 'octet'), port);
        const d1 = await c.recv();
        assert.ok(d1?.pkt?.op === Opcode.DATA, `cycle ${i}`);
        await helper.unload();
        assert.deepEqual(errors, [], `cycle ${i}`);
        // Retransmits of block 1 sent before the close (a busy machine) may come first.
        let bye = await c.recv();
        for (let k = 0; k < 20 && bye?.pkt?.op === Opcode.DATA; k++) bye = await c.recv();
        assert.ok(bye?.pkt?.op === Opcode.ERROR, `cycle ${i}: the client is told`);
        if (i === 0) baseline = fdCount();
      }
      assert.equal(fdCount(), baseline);
    } finally {
      await c.close();
    }
  });
});
