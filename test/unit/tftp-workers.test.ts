/**
 * The TFTP server with transfer worker threads: the same files served intact by workers that
 * open their own store, the same refusals, clean close (transfers aborted, threads gone, no
 * descriptor left), and a clear failure when a worker cannot open the store.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { FolderStore } from '../../nodes/lib/store/folder-store';
import { encodeError, encodeRequest, ErrorCode, Opcode } from '../../nodes/lib/tftp/codec';
import { netasciiEncode } from '../../nodes/lib/tftp/netascii';
import { defaultTransferWorkers, TftpServer, type ProgressEvent, type TftpEvent, type TftpServerOptions } from '../../nodes/lib/tftp/server';
import { get, sleep, TestClient } from './tftp-helpers';

const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;

describe('how many transfer workers the node starts when Threads is empty', () => {
  const GiB = 1024 ** 3;
  it('one per core up to 4 with 2 GiB or more; none on one core or under 2 GiB (a 1 GiB Pi)', () => {
    assert.equal(defaultTransferWorkers(2, 24 * GiB), 2);
    assert.equal(defaultTransferWorkers(4, 4 * GiB), 4);
    assert.equal(defaultTransferWorkers(16, 64 * GiB), 4);
    assert.equal(defaultTransferWorkers(1, 8 * GiB), 0);
    assert.equal(defaultTransferWorkers(4, 0.9 * GiB), 0);
    assert.equal(defaultTransferWorkers(4, 1.8 * GiB), 0);
  });
});

describe('tftp server with transfer workers (127.0.0.1)', () => {
  let dir: string;
  let store: FolderStore;
  const files: Record<string, Buffer> = {};
  const servers: TftpServer[] = [];
  const clients: TestClient[] = [];

  async function start(opts: Partial<TftpServerOptions> = {}): Promise<{ server: TftpServer; port: number; events: TftpEvent[] }> {
    const server = new TftpServer({ store, address: '127.0.0.1', port: 0, workers: 2, workerStore: { source: dir }, localTransfers: 0, ...opts });
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

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-tftp-workers-'));
    const put = (name: string, data: Buffer): void => {
      files[name] = data;
      fs.writeFileSync(path.join(dir, name), data);
    };
    put('empty', Buffer.alloc(0));
    for (const n of [511, 512, 1468, 100_000]) put(`f${n}`, randomBytes(n));
    put('big', randomBytes(2 * 1024 * 1024 + 5));
    put('text', Buffer.from('line one\nline two\r\nbare\rend\n'));
    store = await new FolderStore(dir).init();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('serves files intact from the workers, with events like the single-thread server', async () => {
    const { server, port, events } = await start();
    const c = await client();
    for (const name of ['empty', 'f511', 'f512', 'f1468', 'f100000']) {
      assert.deepEqual((await get(c, port, name)).data, files[name], `${name} plain`);
      const opt = await get(c, port, name, { options: [{ name: 'blksize', value: '1468' }, { name: 'windowsize', value: '8' }, { name: 'tsize', value: '0' }] });
      assert.deepEqual(opt.data, files[name], `${name} with options`);
      assert.equal(opt.oack?.find((o) => o.name === 'tsize')?.value, String(files[name]!.length));
    }
    assert.deepEqual((await get(c, port, 'text', { mode: 'netascii' })).data, netasciiEncode(files.text!));
    // Several at once, spread over both workers.
    const many = await Promise.all(Array.from({ length: 6 }, async () => get(await client(), port, 'big', { options: [{ name: 'blksize', value: '1468' }] })));
    for (const r of many) assert.ok(r.data.equals(files.big!), 'big intact');
    for (let i = 0; i < 200 && server.activeTransfers > 0; i++) await sleep(10);
    const done = events.filter((e) => e.type === 'done');
    assert.equal(done.length, 17);
    const big = done.filter((e) => e.file === 'big');
    assert.ok(big.every((e) => e.type === 'done' && e.bytesSent === files.big!.length && e.size === files.big!.length && e.options.blksize === 1468));
    assert.equal(events.filter((e) => e.type === 'start').length, 17);
  });

  it('serves files the flow published in front of the store, as the main thread does', async () => {
    const published = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-tftp-published-'));
    try {
      fs.writeFileSync(path.join(published, 'f511'), 'published');
      const { port } = await start({ workerStore: { source: dir, publishedFolder: published } });
      const c = await client();
      assert.equal((await get(c, port, 'f511')).data.toString(), 'published');
      assert.deepEqual((await get(c, port, 'f512')).data, files.f512, 'the rest of the store still served');
    } finally {
      fs.rmSync(published, { recursive: true, force: true });
    }
  });

  it('passes the progress of a worker transfer back, between its start and its end', async () => {
    const { server, port, events } = await start({ progressIntervalMs: 50 });
    const order: string[] = [];
    const progress: ProgressEvent[] = [];
    server.on('transfer', (e) => order.push(e.type));
    server.on('progress', (e) => {
      progress.push(e);
      order.push('progress');
    });
    const c = await client();
    const r = await get(c, port, 'f100000', { options: [{ name: 'blksize', value: '1468' }], ackDelayMs: 5 });
    assert.deepEqual(r.data, files.f100000);
    for (let i = 0; i < 200 && !events.some((e) => e.type === 'done'); i++) await sleep(10);
    assert.ok(progress.length >= 2, `progress events: ${progress.length}`);
    assert.deepEqual([order[0], order.at(-1)], ['start', 'done']);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i]!.bytesSent > progress[i - 1]!.bytesSent);
    assert.ok(progress.every((p) => p.file === 'f100000' && p.size === 100_000 && p.bytesSent < 100_000));
  });

  it('refuses missing files (1, quietly) and paths out of the store (2) from a worker', async () => {
    const { port, events } = await start();
    const c = await client();
    const code = async (name: string): Promise<number | string> => {
      c.send(encodeRequest(Opcode.RRQ, name, 'octet'), port);
      const r = await c.recv();
      return r?.pkt?.op === Opcode.ERROR ? r.pkt.code : `got ${r?.pkt?.op ?? 'nothing'}`;
    };
    assert.equal(await code('pxelinux.cfg/default'), 1);
    assert.equal(await code('../etc/passwd'), 2);
    const errs = events.filter((e) => e.type === 'error');
    assert.deepEqual(errs.map((e) => e.type === 'error' && [e.stage, e.quiet]), [['request', true], ['request', false]]);
  });

  it('close() aborts worker transfers, tells their clients, ends the threads, frees every descriptor (5 cycles)', async () => {
    const before = fdCount();
    for (let i = 0; i < 5; i++) {
      const server = new TftpServer({ store, address: '127.0.0.1', port: 0, workers: 2, workerStore: { source: dir }, localTransfers: 0 });
      const { port } = await server.listen();
      const c = await TestClient.open();
      c.send(encodeRequest(Opcode.RRQ, 'big', 'octet'), port);
      const d1 = await c.recv();
      assert.ok(d1?.pkt?.op === Opcode.DATA);
      assert.equal(server.activeTransfers, 1);
      await server.close();
      assert.equal(server.activeTransfers, 0);
      assert.equal(server.openTransfers, 0);
      const bye = await c.recv();
      assert.ok(bye?.pkt?.op === Opcode.ERROR && /shutting down/.test(bye.pkt.message));
      await c.close();
    }
    assert.equal(fdCount(), before);
  });

  it('rejects listen() when a worker cannot open the store, and leaks nothing', async () => {
    const before = fdCount();
    const server = new TftpServer({ store, address: '127.0.0.1', port: 0, workers: 2, workerStore: { source: path.join(dir, 'no-such-dir') } });
    await assert.rejects(server.listen(), /does not exist/);
    await server.close();
    assert.equal(server.address, undefined);
    assert.equal(fdCount(), before);
  });

  it('answers at once the real request a PXE ROM sends right after declining the OACK of its size probe', async () => {
    const { port } = await start();
    const c = await client();
    c.send(encodeRequest(Opcode.RRQ, 'f100000', 'octet', [{ name: 'tsize', value: '0' }]), port);
    const oack = await c.recv();
    assert.equal(oack?.pkt?.op, Opcode.OACK);
    // ERROR 8 and the next request from the same port, back to back: the worker has not yet
    // reported the probe's end when the request arrives; it must wait, not be dropped.
    c.send(encodeError(ErrorCode.OPTION_REFUSED, 'tsize only'), oack!.port);
    c.send(encodeRequest(Opcode.RRQ, 'f100000', 'octet', [{ name: 'blksize', value: '1468' }]), port);
    const next = await c.recv(500);
    assert.equal(next?.pkt?.op, Opcode.OACK, 'the real request is answered well before the client would resend it');
    assert.deepEqual(next?.pkt?.op === Opcode.OACK && next.pkt.options, [{ name: 'blksize', value: '1468' }]);
  });

  it('runs the first transfers on its own thread, the rest on workers (localTransfers)', async () => {
    const { server, port, events } = await start({ localTransfers: 1 });
    const many = await Promise.all(Array.from({ length: 4 }, async () => get(await client(), port, 'big', { options: [{ name: 'blksize', value: '1468' }] })));
    for (const r of many) assert.ok(r.data.equals(files.big!), 'big intact');
    for (let i = 0; i < 200 && server.activeTransfers > 0; i++) await sleep(10);
    assert.equal(events.filter((e) => e.type === 'done').length, 4);
  });

  it('requires workerStore for workers; without it the default is this thread', async () => {
    assert.throws(() => new TftpServer({ store, address: '127.0.0.1', port: 0, workers: 2 }), /workerStore/);
    const { port } = await start({ workers: undefined, workerStore: undefined });
    assert.deepEqual((await get(await client(), port, 'f1468')).data, files.f1468);
  });
});
