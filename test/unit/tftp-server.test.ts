import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { nativeUdp } from '../../nodes/lib/native-udp';
import { FolderStore } from '../../nodes/lib/store/folder-store';
import type { FileStore, StoreFile } from '../../nodes/lib/store/types';
import { encodeAck, encodeError, encodeRequest, ErrorCode, Opcode } from '../../nodes/lib/tftp/codec';
import { netasciiEncode } from '../../nodes/lib/tftp/netascii';
import { TftpServer, type ProgressEvent, type TftpEvent, type TftpServerOptions } from '../../nodes/lib/tftp/server';
import { get, sleep, TestClient } from './tftp-helpers';

const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;

// Every test runs twice: on the native addon's sockets (when built) and on Node's dgram.
for (const nativeIo of nativeUdp() ? [true, false] : [false]) describe(`tftp server (127.0.0.1, ${nativeIo ? 'native' : 'dgram'} I/O)`, () => {
  let dir: string;
  let outside: string;
  let store: FolderStore;
  const files: Record<string, Buffer> = {};
  const servers: TftpServer[] = [];
  const clients: TestClient[] = [];

  async function start(opts: Partial<TftpServerOptions> = {}): Promise<{ server: TftpServer; port: number; events: TftpEvent[] }> {
    const server = new TftpServer({ store, address: '127.0.0.1', port: 0, nativeIo, ...opts });
    const events: TftpEvent[] = [];
    server.on('transfer', (e) => events.push(e));
    servers.push(server);
    const { port } = await server.listen();
    return { server, port, events };
  }
  async function client(): Promise<TestClient> {
    const c = await TestClient.open();
    clients.push(c);
    return c;
  }
  const waitFor = async (cond: () => boolean, ms = 5000): Promise<void> => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error('condition not met in time');
      await sleep(10);
    }
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-tftp-'));
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-tftp-outside-'));
    const put = (name: string, data: Buffer): void => {
      files[name] = data;
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      fs.writeFileSync(path.join(dir, name), data);
    };
    put('empty', Buffer.alloc(0));
    put('one', Buffer.from('x'));
    for (const n of [511, 512, 513, 1467, 1468, 1469, 100_000]) put(`f${n}`, randomBytes(n));
    // Just past 65535 blocks of 8 bytes: block numbers roll over to 0.
    put('rollover', randomBytes(65_536 * 8 + 100));
    put('big', randomBytes(3 * 1024 * 1024 + 17));
    put('arch/boot/syslinux/archiso.cfg', Buffer.from('DEFAULT arch\nLABEL arch\r\n  KERNEL vmlinuz\n'));
    fs.writeFileSync(path.join(outside, 'secret'), 'secret');
    fs.symlinkSync(path.join(outside, 'secret'), path.join(dir, 'escape'));
    store = await new FolderStore(dir).init();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(outside, { recursive: true, force: true });
  });

  it('serves files of every edge size, with and without options, windowsize 1 and 8', async () => {
    const { port, events } = await start();
    const c = await client();
    for (const name of ['empty', 'one', 'f511', 'f512', 'f513', 'f1467', 'f1468', 'f1469', 'f100000']) {
      const plain = await get(c, port, name);
      assert.equal(plain.oack, null, 'no options, no OACK');
      assert.deepEqual(plain.data, files[name], `${name} without options`);
      for (const windowsize of ['1', '8']) {
        const r = await get(c, port, `/${name}`, { options: [{ name: 'blksize', value: '1468' }, { name: 'tsize', value: '0' }, { name: 'windowsize', value: windowsize }] });
        assert.deepEqual(r.data, files[name], `${name} blksize 1468 windowsize ${windowsize}`);
        assert.deepEqual(r.oack, [{ name: 'blksize', value: '1468' }, { name: 'tsize', value: String(files[name]!.length) }, { name: 'windowsize', value: windowsize }]);
      }
    }
    await waitFor(() => events.filter((e) => e.type === 'done').length === 27);
    const done = events.find((e) => e.type === 'done' && e.file === '/f100000' && e.options.windowsize === 8);
    assert.ok(done && done.type === 'done');
    assert.equal(done.bytesSent, 100_000);
    assert.equal(done.size, 100_000);
    assert.deepEqual(done.options, { blksize: 1468, windowsize: 8, tsize: 100_000 });
    assert.deepEqual(done.requested, { blksize: '1468', tsize: '0', windowsize: '8' });
    assert.equal(done.client.address, '127.0.0.1');
    assert.ok(done.durationMs >= 0);
    assert.equal(events.filter((e) => e.type === 'start').length, 27);
    assert.equal(events.filter((e) => e.type === 'error' || e.type === 'declined').length, 0);
  });

  it('reports progress of a long transfer at most once per interval, between its start and its end; a short one has none', async () => {
    const { server, port, events } = await start({ progressIntervalMs: 50 });
    const progress: (ProgressEvent & { t: number })[] = [];
    const order: string[] = [];
    server.on('transfer', (e) => order.push(e.type));
    server.on('progress', (e) => {
      progress.push({ ...e, t: performance.now() });
      order.push('progress');
    });
    const c = await client();
    // 100 000 bytes in 69 blocks, each ACK 5 ms late: the transfer takes about 400 ms.
    const t0 = performance.now();
    const r = await get(c, port, 'f100000', { options: [{ name: 'blksize', value: '1468' }, { name: 'tsize', value: '0' }], ackDelayMs: 5 });
    const took = performance.now() - t0;
    assert.deepEqual(r.data, files.f100000);
    await waitFor(() => events.some((e) => e.type === 'done'));
    assert.ok(progress.length >= 2, `progress events: ${progress.length} in ${took.toFixed(0)} ms`);
    assert.ok(progress.length <= took / 50 + 1, `at most one per 50 ms: ${progress.length} in ${took.toFixed(0)} ms`);
    for (let i = 1; i < progress.length; i++) {
      assert.ok(progress[i]!.bytesSent > progress[i - 1]!.bytesSent, 'only when bytes moved');
      assert.ok(progress[i]!.t - progress[i - 1]!.t >= 45, `spaced by the interval: ${(progress[i]!.t - progress[i - 1]!.t).toFixed(1)} ms`);
    }
    const begun = events.find((e) => e.type === 'start')!;
    for (const p of progress) {
      assert.equal(p.type, 'progress');
      assert.equal(p.id, begun.id);
      assert.equal(p.file, 'f100000');
      assert.equal(p.size, 100_000);
      assert.ok(p.bytesSent > 0 && p.bytesSent < 100_000 && p.bytesSent % 1468 === 0, String(p.bytesSent));
    }
    assert.equal(order[0], 'start');
    assert.equal(order.at(-1), 'done');
    // A transfer shorter than the interval: start and done only.
    progress.length = 0;
    assert.deepEqual((await get(c, port, 'f1468')).data, files.f1468);
    await sleep(120);
    assert.equal(progress.length, 0);
  });

  it('reports no progress with progressIntervalMs 0', async () => {
    const { server, port } = await start({ progressIntervalMs: 0 });
    let n = 0;
    server.on('progress', () => n++);
    const c = await client();
    assert.deepEqual((await get(c, port, 'f100000', { options: [{ name: 'blksize', value: '1468' }], ackDelayMs: 5 })).data, files.f100000);
    await sleep(100);
    assert.equal(n, 0);
  });

  it('rolls block numbers over from 65535 to 0, windowsize 1 and 16', async () => {
    const { port } = await start();
    const c = await client();
    for (const windowsize of ['1', '16']) {
      const r = await get(c, port, 'rollover', { options: [{ name: 'blksize', value: '8' }, { name: 'windowsize', value: windowsize }] });
      assert.equal(r.data.length, files.rollover!.length);
      assert.ok(r.data.equals(files.rollover!), `windowsize ${windowsize}`);
    }
  });

  it('clamps blksize and windowsize to the configured maxima and echoes timeout', async () => {
    const { port } = await start({ maxBlksize: 1024, maxWindowsize: 4 });
    const c = await client();
    const r = await get(c, port, 'f100000', { options: [{ name: 'blksize', value: '65464' }, { name: 'windowsize', value: '512' }, { name: 'timeout', value: '3' }] });
    assert.deepEqual(r.oack, [{ name: 'blksize', value: '1024' }, { name: 'windowsize', value: '4' }, { name: 'timeout', value: '3' }]);
    assert.deepEqual(r.data, files.f100000);
  });

  it('converts netascii and reports no tsize for it', async () => {
    const { port } = await start();
    const c = await client();
    const r = await get(c, port, 'arch/boot/syslinux/archiso.cfg', { mode: 'NetASCII', options: [{ name: 'tsize', value: '0' }, { name: 'blksize', value: '16' }] });
    assert.deepEqual(r.oack, [{ name: 'blksize', value: '16' }]);
    assert.deepEqual(r.data, netasciiEncode(files['arch/boot/syslinux/archiso.cfg']!));
  });

  it('reads through StoreFile.read in read-ahead chunks, not per block', async () => {
    const reads: number[] = [];
    const counting: FileStore = Object.assign(Object.create(store) as FileStore, {
      open: async (p: string): Promise<StoreFile> => {
        const f = await store.open(p);
        return { ...f, path: f.path, size: f.size, mtime: f.mtime, read: (b: Buffer, o: number, l: number, pos: number) => (reads.push(l), f.read(b, o, l, pos)), close: () => f.close() };
      },
    });
    const server = new TftpServer({ store: counting, address: '127.0.0.1', port: 0, readAheadBytes: 256 * 1024, nativeIo });
    servers.push(server);
    const { port } = await server.listen();
    const c = await client();
    const r = await get(c, port, 'big', { options: [{ name: 'blksize', value: '1468' }, { name: 'windowsize', value: '16' }] });
    assert.ok(r.data.equals(files.big!));
    const chunk = Math.floor((256 * 1024) / 1468) * 1468;
    assert.ok(reads.length <= Math.ceil(files.big!.length / chunk) + 1, `${reads.length} reads`);
    assert.ok(reads.every((l) => l === chunk || l === files.big!.length % chunk), reads.join(','));
  });

  it('finishes a client that declines the OACK (tsize probe, error 8) silently', async () => {
    const { server, port, events } = await start();
    const c = await client();
    c.send(encodeRequest(Opcode.RRQ, 'f100000', 'octet', [{ name: 'tsize', value: '0' }]), port);
    const oack = await c.recv();
    assert.ok(oack?.pkt?.op === Opcode.OACK);
    assert.deepEqual(oack.pkt.options, [{ name: 'tsize', value: '100000' }]);
    c.send(encodeError(ErrorCode.OPTION_REFUSED, 'tsize only'), oack.port);
    await waitFor(() => events.length > 0 && server.activeTransfers === 0);
    assert.deepEqual(events.map((e) => e.type), ['declined']);
    assert.equal(events[0]!.type === 'declined' && events[0]!.code, 8);
    // The probe is followed by the real download, as a PXE ROM does.
    assert.deepEqual((await get(c, port, 'f100000', { options: [{ name: 'tsize', value: '0' }] })).data, files.f100000);
  });

  it('treats silence after an OACK as declined, after bounded retries', async () => {
    const { server, port, events } = await start({ retransmitMs: 40, minRetransmitMs: 20, maxRetries: 3 });
    const c = await client();
    c.send(encodeRequest(Opcode.RRQ, 'one', 'octet', [{ name: 'tsize', value: '0' }]), port);
    const got = await c.drain(1000);
    assert.equal(got.filter((r) => r.pkt?.op === Opcode.OACK).length, 4, 'the OACK and 3 retransmissions');
    await waitFor(() => server.activeTransfers === 0);
    assert.deepEqual(events.map((e) => e.type), ['declined']);
  });

  it('a client\'s timeout option never stretches retransmissions beyond the server\'s cap', async () => {
    const { server, port, events } = await start({ retransmitMs: 40, minRetransmitMs: 20, maxRetries: 3 });
    const c = await client();
    // timeout=255 from a client that then stays silent (a spoofed request): still 4 OACKs quickly.
    c.send(encodeRequest(Opcode.RRQ, 'one', 'octet', [{ name: 'tsize', value: '0' }, { name: 'timeout', value: '255' }]), port);
    const got = await c.drain(1000);
    assert.equal(got.filter((r) => r.pkt?.op === Opcode.OACK).length, 4, 'the OACK and 3 retransmissions within a second');
    await waitFor(() => server.activeTransfers === 0);
    assert.deepEqual(events.map((e) => e.type), ['declined']);
  });

  it('a transfer listener that throws is reported as a warning; the transfer still closes', async () => {
    const { server, port } = await start();
    const warnings: string[] = [];
    server.on('warning', (err) => warnings.push(err.message));
    server.on('transfer', (e) => {
      if (e.type === 'done') throw new Error('listener bug');
    });
    const c = await client();
    assert.deepEqual((await get(c, port, 'f1468')).data, files.f1468);
    await waitFor(() => server.openTransfers === 0);
    assert.deepEqual(warnings, ['listener bug']);
    await server.close(); // resolves: nothing left open
  });

  it('never answers a duplicate ACK with a duplicate block (Sorcerer\'s Apprentice)', async () => {
    const { port } = await start({ retransmitMs: 5000, minRetransmitMs: 5000 });
    const c = await client();
    c.send(encodeRequest(Opcode.RRQ, 'f100000', 'octet'), port);
    const d1 = await c.recv();
    assert.ok(d1?.pkt?.op === Opcode.DATA && d1.pkt.block === 1);
    for (let i = 0; i < 4; i++) c.send(encodeAck(1), d1.port);
    const after1 = await c.drain(300);
    assert.deepEqual(after1.map((r) => r.pkt?.op === Opcode.DATA && r.pkt.block), [2]);
    // An ACK for a block not sent yet, and a stale one, are ignored too.
    c.send(encodeAck(500), d1.port);
    c.send(encodeAck(0), d1.port);
    assert.deepEqual(await c.drain(200), []);
  });

  it('retransmits on timeout, restarts a window after a partial ACK, gives up after max retries', async () => {
    const { server, port, events } = await start({ retransmitMs: 60, minRetransmitMs: 60, maxRetries: 3 });
    const c = await client();
    c.send(encodeRequest(Opcode.RRQ, 'f100000', 'octet', [{ name: 'windowsize', value: '4' }]), port);
    const oack = await c.recv();
    assert.ok(oack?.pkt?.op === Opcode.OACK);
    c.send(encodeAck(0), oack.port);
    const blocks = async (ms: number): Promise<number[]> => (await c.drain(ms)).map((r) => (r.pkt?.op === Opcode.DATA ? r.pkt.block : -1));
    assert.deepEqual(await blocks(40), [1, 2, 3, 4]);
    // Partial ACK: the client missed block 3; the window restarts there.
    c.send(encodeAck(2), oack.port);
    assert.deepEqual(await blocks(40), [3, 4, 5, 6]);
    // Silence: the window comes again after the timeout (3 times), then the server gives up.
    const rest = await blocks(1000);
    assert.deepEqual(rest.slice(0, 12), [3, 4, 5, 6, 3, 4, 5, 6, 3, 4, 5, 6]);
    assert.equal(rest.length, 13, 'three retransmissions and a final ERROR');
    const last = rest[12];
    assert.equal(last, -1);
    await waitFor(() => server.activeTransfers === 0);
    const err = events.find((e) => e.type === 'error');
    assert.ok(err && err.type === 'error');
    assert.equal(err.stage, 'transfer');
    assert.equal(err.bytesSent, 2 * 512);
    assert.match(err.message, /no answer/);
  });

  it('reports a client ERROR in the middle of a transfer', async () => {
    const { server, port, events } = await start();
    const c = await client();
    c.send(encodeRequest(Opcode.RRQ, 'f100000', 'octet'), port);
    const d1 = await c.recv();
    assert.ok(d1?.pkt?.op === Opcode.DATA);
    c.send(encodeError(0, 'disk full'), d1.port);
    await waitFor(() => server.activeTransfers === 0);
    const err = events.find((e) => e.type === 'error');
    assert.ok(err?.type === 'error' && err.by === 'client' && err.message === 'disk full' && !err.quiet);
  });

  it('refuses writes (2), missing files (1, quietly), paths out of the store (2), odd modes (4)', async () => {
    const { port, events } = await start();
    const c = await client();
    const ask = async (buf: Buffer): Promise<{ code: number; message: string } | string> => {
      c.send(buf, port);
      const r = await c.recv();
      return r?.pkt?.op === Opcode.ERROR ? { code: r.pkt.code, message: r.pkt.message } : `got ${r?.pkt?.op ?? 'nothing'}`;
    };
    const code = async (buf: Buffer): Promise<number | string> => {
      const r = await ask(buf);
      return typeof r === 'string' ? r : r.code;
    };
    assert.deepEqual(await ask(encodeRequest(Opcode.WRQ, 'new-file', 'octet')), { code: 2, message: 'Access violation: writes are not allowed' });
    assert.equal(fs.existsSync(path.join(dir, 'new-file')), false);
    assert.deepEqual(await ask(encodeRequest(Opcode.RRQ, 'pxelinux.cfg/01-52-54-00-12-34-56', 'octet')), { code: 1, message: 'File not found' });
    for (const bad of ['../secret', '/../etc/passwd', 'arch/../../x', '..\\..\\etc\\passwd']) {
      assert.equal(await code(encodeRequest(Opcode.RRQ, bad, 'octet')), 2, bad);
    }
    assert.equal(await code(encodeRequest(Opcode.RRQ, 'escape', 'octet')), 2, 'symlink out of the store');
    // An absolute path is a store path: /etc/passwd is looked up inside the store, not in /etc.
    assert.equal(await code(encodeRequest(Opcode.RRQ, '/etc/passwd', 'octet')), 1);
    assert.equal(await code(encodeRequest(Opcode.RRQ, 'arch', 'octet')), 1, 'a directory');
    // A NUL ends the name on the wire: "one\0../x" is the file "one" in mode "../x".
    assert.equal(await code(Buffer.concat([encodeRequest(Opcode.RRQ, 'one', '../x')])), 4);
    assert.equal(await code(encodeRequest(Opcode.RRQ, 'one', 'mail')), 4);
    assert.equal(await code(Buffer.from([0, 1, 0x41])), 4, 'malformed request');
    const errs = events.filter((e) => e.type === 'error');
    assert.equal(errs.length, 12);
    assert.ok(errs.every((e) => e.type === 'error' && e.stage === 'request'));
    assert.deepEqual(errs.filter((e) => e.type === 'error' && e.quiet).map((e) => e.file), ['pxelinux.cfg/01-52-54-00-12-34-56', '/etc/passwd', 'arch']);
  });

  it('ignores a repeated request from the same port, drops requests over the per-client limit, lets those over maxTransfers wait', async () => {
    const { server, port, events } = await start({ maxPerClient: 1, retransmitMs: 5000, minRetransmitMs: 5000 });
    const a = await client();
    const rrq = encodeRequest(Opcode.RRQ, 'f100000', 'octet');
    a.send(rrq, port);
    a.send(rrq, port);
    const first = await a.drain(200);
    assert.equal(first.length, 1, 'one transfer for a repeated RRQ');
    const b = await client();
    b.send(rrq, port);
    assert.deepEqual(await b.drain(200), [], 'over the per-client limit: no answer, so the client retries');
    assert.equal(server.activeTransfers, 1);
    const dropped = events.find((e) => e.type === 'error');
    assert.ok(dropped?.type === 'error' && dropped.code === undefined && /too many/.test(dropped.message));
    await server.close();
    const { port: port2, server: s2 } = await start({ maxTransfers: 2, retransmitMs: 5000, minRetransmitMs: 5000 });
    const cs = [await client(), await client(), await client()];
    for (const c of cs) c.send(rrq, port2);
    const answered = await Promise.all(cs.map(async (c) => (await c.drain(200)).length));
    assert.deepEqual(answered.sort(), [0, 1, 1]);
    assert.equal(s2.activeTransfers, 2);
    assert.equal(s2.waitingRequests, 1, 'the third waits for a slot');
  });

  it('lets requests past maxTransfers wait, starts them first come first served as slots free, and queues a resend once', async () => {
    const { server, port, events } = await start({ maxTransfers: 1, retransmitMs: 5000, minRetransmitMs: 5000 });
    const rrq = encodeRequest(Opcode.RRQ, 'f100000', 'octet');
    const [a, b, c] = [await client(), await client(), await client()];
    a.send(rrq, port);
    const first = await a.recv();
    assert.equal(first?.pkt?.op, Opcode.DATA);
    b.send(rrq, port);
    await sleep(20);
    c.send(rrq, port);
    b.send(rrq, port); // a client resending while it waits
    await sleep(100);
    assert.equal(server.waitingRequests, 2);
    assert.deepEqual(await b.drain(150), [], 'no answer while waiting');
    // a gives up: its slot goes to the oldest waiting request, b, and only to it.
    a.send(encodeError(0, 'bye'), first!.port);
    const bFirst = await b.drain(300);
    assert.deepEqual(bFirst.map((r) => r.pkt?.op), [Opcode.DATA], 'one transfer for b, not two');
    assert.deepEqual(await c.drain(100), [], 'c still waits');
    assert.equal(server.waitingRequests, 1);
    b.send(encodeError(0, 'bye'), bFirst[0]!.port);
    assert.equal((await c.recv())?.pkt?.op, Opcode.DATA);
    assert.equal(server.waitingRequests, 0);
    assert.ok(!events.some((e) => e.type === 'error' && e.stage === 'request'), 'nothing refused or dropped');
  });

  it('refuses with ERROR 0 past the wait queue bound and past the longest wait, and tells waiting clients on close', async () => {
    const { server, port, events } = await start({ maxTransfers: 1, maxWaiting: 1, maxWaitMs: 300, retransmitMs: 5000, minRetransmitMs: 5000 });
    const rrq = encodeRequest(Opcode.RRQ, 'f100000', 'octet');
    const [a, b, c] = [await client(), await client(), await client()];
    a.send(rrq, port);
    assert.equal((await a.recv())?.pkt?.op, Opcode.DATA);
    b.send(rrq, port);
    await sleep(20);
    c.send(rrq, port);
    const full = await c.recv(200);
    assert.ok(full?.pkt?.op === Opcode.ERROR && full.pkt.code === 0 && /busy/i.test(full.pkt.message), 'past the bound: ERROR 0 at once');
    const late = await b.recv(1000);
    assert.ok(late?.pkt?.op === Opcode.ERROR && late.pkt.code === 0 && /busy/i.test(late.pkt.message), 'past the wait: ERROR 0');
    assert.equal(server.waitingRequests, 0);
    const refused = events.filter((e) => e.type === 'error' && e.stage === 'request');
    assert.equal(refused.length, 2);
    assert.ok(refused.every((e) => e.type === 'error' && e.busy === true && e.code === 0));
    // The slots and per-client counts were given back: a fresh request still waits rather than being dropped.
    const d = await client();
    d.send(rrq, port);
    await sleep(50);
    assert.equal(server.waitingRequests, 1);
    await server.close();
    const bye = await d.recv(500);
    assert.ok(bye?.pkt?.op === Opcode.ERROR && /shutting down/.test(bye.pkt.message));
  });

  it('survives a bounded fuzz loop on port 69 and on a transfer port, then still serves', async () => {
    const { server, port } = await start({ retransmitMs: 100, minRetransmitMs: 50, maxRetries: 2 });
    const c = await client();
    c.send(encodeRequest(Opcode.RRQ, 'big', 'octet', [{ name: 'windowsize', value: '4' }]), port);
    const oack = await c.recv();
    assert.ok(oack?.pkt?.op === Opcode.OACK);
    const tid = oack.port;
    const seeds = [
      encodeRequest(Opcode.RRQ, 'f512', 'octet', [{ name: 'blksize', value: '1468' }, { name: 'tsize', value: '0' }]),
      encodeRequest(Opcode.WRQ, 'x', 'octet'),
      encodeAck(3),
      encodeError(8, 'x'),
    ];
    for (let i = 0; i < 3000; i++) {
      let buf: Buffer;
      const seed = seeds[i % seeds.length]!;
      if (i % 3 === 0) buf = randomBytes(i % 1400);
      else if (i % 3 === 1) buf = seed.subarray(0, i % (seed.length + 1));
      else buf = Buffer.concat([seed.subarray(0, 2), Buffer.from('f\0octet\0'), Buffer.from(`${'o'.repeat(i % 700)}\0${'9'.repeat(i % 300)}\0`.repeat(1 + (i % 40)))]);
      c.send(buf, i % 2 ? port : tid);
      if (i % 100 === 0) await sleep(5);
    }
    await sleep(300);
    await waitFor(() => server.activeTransfers === 0, 10000);
    const d = await client();
    assert.deepEqual((await get(d, port, 'f100000', { options: [{ name: 'blksize', value: '1468' }] })).data, files.f100000);
  });

  it('close() ends transfers, tells their clients, and frees every socket and file (20 cycles)', async () => {
    const before = fdCount();
    for (let i = 0; i < 20; i++) {
      const server = new TftpServer({ store, address: '127.0.0.1', port: 0, nativeIo });
      const { port } = await server.listen();
      const c = await TestClient.open();
      c.send(encodeRequest(Opcode.RRQ, 'big', 'octet'), port);
      const d1 = await c.recv();
      assert.ok(d1?.pkt?.op === Opcode.DATA);
      assert.equal(server.activeTransfers, 1);
      await server.close();
      assert.equal(server.activeTransfers, 0);
      const bye = await c.recv();
      assert.ok(bye?.pkt?.op === Opcode.ERROR && /shutting down/.test(bye.pkt.message));
      await c.close();
    }
    assert.equal(fdCount(), before);
  });

  it('rejects listening on a port in use with EADDRINUSE, and leaks nothing', async () => {
    const taken = dgram.createSocket('udp4');
    await new Promise<void>((r) => taken.bind(0, '127.0.0.1', () => r()));
    const before = fdCount();
    const server = new TftpServer({ store, address: '127.0.0.1', port: taken.address().port, nativeIo });
    await assert.rejects(server.listen(), (e: NodeJS.ErrnoException) => e.code === 'EADDRINUSE');
    await server.close();
    await sleep(20);
    assert.equal(fdCount(), before);
    await new Promise<void>((r) => taken.close(() => r()));
  });
});
