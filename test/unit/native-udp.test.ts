/**
 * The native UDP addon on loopback, through its wrapper (nodes/lib/native-udp.ts) and through the
 * TFTP transfer sockets: datagrams both ways, batches across sockets, an unreachable peer as
 * ECONNREFUSED, bad arguments refused, descriptors returned, one instance per worker thread.
 * On CI the addon must be built (npm test builds it there); elsewhere the suite is skipped if not.
 */
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { nativeUdp, nativeUdpMissing } from '../../nodes/lib/native-udp';
import { openTransferSocket } from '../../nodes/lib/tftp/transfer-socket';

const io = nativeUdp();
const skip = io ? false : process.env.CI ? false : `native addon not available: ${nativeUdpMissing()}`;
const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;

async function peer(): Promise<{ socket: dgram.Socket; port: number; got: { data: Buffer; port: number }[] }> {
  const socket = dgram.createSocket('udp4');
  const got: { data: Buffer; port: number }[] = [];
  socket.on('message', (data, rinfo) => got.push({ data, port: rinfo.port }));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return { socket, port: socket.address().port, got };
}
async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('native UDP addon (127.0.0.1)', { skip }, () => {
  it('is built and loads on CI', () => {
    assert.ok(io, `native addon: ${nativeUdpMissing()}`);
  });

  it('sends and receives on connected sockets, many in one batch', async () => {
    const p = await peer();
    const received = new Map<number, string[]>();
    const fds: number[] = [];
    for (let i = 0; i < 20; i++) {
      const fd = io!.connect('127.0.0.1', '127.0.0.1', p.port, {
        message: (data) => received.set(fd, [...(received.get(fd) ?? []), data.toString()]),
        error: (code) => assert.fail(`unexpected ${code}`),
      });
      fds.push(fd);
      assert.equal(io!.send(fd, Buffer.from(`hello ${i}`)), 0);
    }
    await until(() => p.got.length === 20, 'peer got 20 datagrams');
    assert.deepEqual(p.got.map((g) => g.data.toString()).sort(), Array.from({ length: 20 }, (_, i) => `hello ${i}`).sort());
    // Answer every socket at once: they arrive together and are delivered by fd.
    for (const g of p.got) p.socket.send(`re ${g.data.toString()}`, g.port, '127.0.0.1');
    await until(() => [...received.values()].flat().length === 20, 'all answers');
    fds.forEach((fd, i) => assert.deepEqual(received.get(fd), [`re hello ${i}`]));
    for (const fd of fds) io!.close(fd);
    p.socket.close();
  });

  it('drops datagrams from anyone but the connected peer', async () => {
    const p = await peer();
    const stranger = await peer();
    const got: string[] = [];
    const fd = io!.connect('127.0.0.1', '127.0.0.1', p.port, { message: (d) => got.push(d.toString()), error: () => undefined });
    io!.send(fd, Buffer.from('x'));
    await until(() => p.got.length === 1, 'peer got one');
    stranger.socket.send('intruder', p.got[0]!.port, '127.0.0.1');
    p.socket.send('legit', p.got[0]!.port, '127.0.0.1');
    await until(() => got.length === 1, 'legit answer');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(got, ['legit']);
    io!.close(fd);
    p.socket.close();
    stranger.socket.close();
  });

  it('keeps delivering to a socket while a neighbour opens and closes beside it (a lone socket is a special case in the addon)', async () => {
    const p = await peer();
    const got: string[] = [];
    const open = (tag: string): number =>
      io!.connect('127.0.0.1', '127.0.0.1', p.port, { message: (data) => got.push(`${tag}:${data.toString()}`), error: (code) => assert.fail(`unexpected ${code}`) });
    const a = open('a');
    io!.send(a, Buffer.from('1'));
    await until(() => p.got.length === 1, 'first datagram');
    const aPort = p.got[0]!.port;
    const answer = async (port: number, text: string, n: number): Promise<void> => {
      p.socket.send(text, port, '127.0.0.1');
      await until(() => got.length === n, `answer ${text}`);
    };
    await answer(aPort, 'lone', 1);
    // Sent as a neighbour opens.
    p.socket.send('queued', aPort, '127.0.0.1');
    const b = open('b');
    await until(() => got.length === 2, 'queued answer');
    io!.send(b, Buffer.from('2'));
    await until(() => p.got.length === 2, 'second datagram');
    await answer(p.got[1]!.port, 'set', 3);
    // Sent as the neighbour closes and it is alone again.
    p.socket.send('queued again', aPort, '127.0.0.1');
    io!.close(b);
    await until(() => got.length === 4, 'queued answer after the neighbour left');
    await answer(aPort, 'lone again', 5);
    assert.deepEqual(got, ['a:lone', 'a:queued', 'b:set', 'a:queued again', 'a:lone again']);
    io!.close(a);
    assert.equal(io!.open, 0);
    p.socket.close();
  });

  it('reports a peer that went away as ECONNREFUSED, through the transfer socket too', async () => {
    const p = await peer();
    const port = p.port;
    await new Promise<void>((r) => p.socket.close(() => r()));
    const s = await openTransferSocket('127.0.0.1', { address: '127.0.0.1', port });
    assert.equal(s.kind, 'native');
    const errors: string[] = [];
    s.listen(
      () => assert.fail('no datagram expected'),
      (err) => errors.push(err.code!),
    );
    s.send(Buffer.from('anyone?'));
    await until(() => errors.length > 0, 'an error');
    assert.equal(errors[0], 'ECONNREFUSED');
    await s.close();
    s.send(Buffer.from('after close')); // ignored, no throw
  });

  it('refuses bad arguments with a TypeError and leaves no descriptor behind', async () => {
    const before = fdCount();
    assert.throws(() => io!.connect('not an address', '127.0.0.1', 9, { message: () => undefined, error: () => undefined }), TypeError);
    assert.throws(() => io!.connect('127.0.0.1', '::1', 9, { message: () => undefined, error: () => undefined }), TypeError);
    assert.throws(() => io!.connect('127.0.0.1', '127.0.0.1', 70000, { message: () => undefined, error: () => undefined }), TypeError);
    // An address this host does not have: bind fails with its errno as `code`.
    assert.throws(
      () => io!.connect('192.0.2.1', '127.0.0.1', 9, { message: () => undefined, error: () => undefined }),
      (err: NodeJS.ErrnoException) => err.code === 'EADDRNOTAVAIL',
    );
    assert.equal(io!.send(123456, Buffer.from('x')) < 0, true, 'send on an unknown fd is refused');
    for (let i = 0; i < 200; i++) {
      const s = await openTransferSocket('127.0.0.1', { address: '127.0.0.1', port: 9 });
      await s.close();
    }
    assert.equal(fdCount(), before);
    assert.equal(io!.open, 0);
  });

  it('hands an exception thrown by a socket\'s handler to Node as uncaught (in a worker: its error event)', async () => {
    const p = await peer();
    const src = `
      const { parentPort, workerData } = require('node:worker_threads');
      require(${JSON.stringify(require.resolve('tsx/cjs'))});
      const { nativeUdp } = require(${JSON.stringify(require.resolve('../../nodes/lib/native-udp'))});
      const io = nativeUdp();
      const fd = io.connect('127.0.0.1', '127.0.0.1', workerData.port, {
        message: () => { throw new Error('handler bug'); },
        error: () => undefined,
      });
      io.send(fd, Buffer.from('ping'));
    `;
    const w = new Worker(src, { eval: true, workerData: { port: p.port } });
    const failed = new Promise<Error>((r) => w.once('error', r));
    await until(() => p.got.length === 1, 'worker datagram', 10_000);
    p.socket.send('pong', p.got[0]!.port, '127.0.0.1');
    const err = await Promise.race([failed, new Promise<null>((r) => setTimeout(() => r(null), 3000))]);
    assert.equal(err?.message, 'handler bug');
    await w.terminate();
    p.socket.close();
  });

  it('gives each worker thread its own instance, and a worker that exits with sockets open closes them', async () => {
    const p = await peer();
    const before = fdCount();
    const src = `
      const { parentPort, workerData } = require('node:worker_threads');
      require(${JSON.stringify(require.resolve('tsx/cjs'))});
      const { nativeUdp } = require(${JSON.stringify(require.resolve('../../nodes/lib/native-udp'))});
      const io = nativeUdp();
      const fd = io.connect('127.0.0.1', '127.0.0.1', workerData.port, {
        message: (d) => parentPort.postMessage(d.toString()),
        error: (code) => parentPort.postMessage(code),
      });
      io.send(fd, Buffer.from('from worker'));
      parentPort.on('message', () => process.exit(0)); // exits with the socket still open
    `;
    const w = new Worker(src, { eval: true, workerData: { port: p.port } });
    const fromWorker: string[] = [];
    w.on('message', (m: string) => fromWorker.push(m));
    await until(() => p.got.length === 1, 'worker datagram', 10_000);
    p.socket.send('to worker', p.got[0]!.port, '127.0.0.1');
    await until(() => fromWorker.length === 1, 'worker got the answer');
    assert.deepEqual(fromWorker, ['to worker']);
    const exited = new Promise<number>((r) => w.on('exit', r));
    w.postMessage('exit');
    assert.equal(await exited, 0);
    // The worker's own descriptors (its socket, its epoll set, its event loop) are all gone.
    await until(() => fdCount() <= before, `descriptors back to ${before} (now ${fdCount()})`);
    p.socket.close();
  });
});
