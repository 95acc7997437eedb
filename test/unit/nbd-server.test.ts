// The NBD server against a scripted client on 127.0.0.1 (random port): negotiation edge cases,
// hostile input, backpressure and events. Real clients (nbdinfo, nbdcopy, qemu-img) are in
// test/net/nbd.test.ts, inside the lab.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { FileExport, type NbdExport } from '../../nodes/lib/nbd/export';
import * as P from '../../nodes/lib/nbd/protocol';
import { CHUNK, EXPORT_FLAGS, NbdServer, type NbdClientError, type NbdDisconnect, type NbdProgress, type NbdServerOptions, type NbdSessionInfo } from '../../nodes/lib/nbd/server';
import { WireClient } from './nbd-wire';

const SIZE = 3 * 1024 * 1024 + 123; // not a multiple of any block size, on purpose
const data = randomBytes(SIZE);

/** An in-memory export that records how many reads run at once. */
function memExport(name: string, bytes: Buffer, delayMs = 0): NbdExport & { concurrent: number; maxConcurrent: number; started: number; bytes: number; longest: number } {
  const exp = {
    name,
    size: bytes.length,
    concurrent: 0,
    maxConcurrent: 0,
    started: 0,
    bytes: 0,
    longest: 0,
    async read(buf: Buffer, off: number, len: number, pos: number): Promise<number> {
      exp.started++;
      exp.bytes += len;
      exp.longest = Math.max(exp.longest, len);
      exp.concurrent++;
      exp.maxConcurrent = Math.max(exp.maxConcurrent, exp.concurrent);
      try {
        if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
        return bytes.copy(buf, off, pos, pos + len);
      } finally {
        exp.concurrent--;
      }
    },
  };
  return exp;
}

const FULL = P.NBD_FLAG_C_FIXED_NEWSTYLE | P.NBD_FLAG_C_NO_ZEROES;

describe('nbd server (scripted client on loopback)', () => {
  let server: NbdServer;
  let port: number;
  let errors: NbdClientError[];
  const clients: WireClient[] = [];

  async function start(opts: Partial<NbdServerOptions> = {}, exports: NbdExport[] = [memExport('archiso', data)]): Promise<void> {
    server = new NbdServer({ exports, ...opts });
    errors = [];
    server.on('clientError', (e) => errors.push(e));
    port = (await server.listen(0, '127.0.0.1')).port;
  }

  async function client(): Promise<WireClient> {
    const c = await WireClient.connect(port);
    clients.push(c);
    return c;
  }

  /** A client in the transmission phase of `name`. */
  async function attached(name = 'archiso'): Promise<WireClient> {
    const c = await client();
    await c.handshake(FULL);
    const r = await c.go(name);
    assert.equal(r.final.type, P.NBD_REP_ACK);
    return c;
  }

  /** Proves the server still serves: a fresh client reads the first and last bytes. */
  async function stillServes(): Promise<void> {
    const c = await attached();
    c.request(P.NBD_CMD_READ, SIZE - 100, 100);
    assert.equal((await c.simpleReply()).error, 0);
    assert.deepEqual(await c.read(100), data.subarray(SIZE - 100));
    c.destroy();
  }

  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    await server?.close();
  });

  it('greets with FIXED_NEWSTYLE|NO_ZEROES and answers GO with size, flags and block sizes', async () => {
    await start();
    const c = await client();
    assert.equal(await c.handshake(FULL), P.NBD_FLAG_FIXED_NEWSTYLE | P.NBD_FLAG_NO_ZEROES);
    const { infos, final } = await c.go('archiso', [P.NBD_INFO_BLOCK_SIZE, P.NBD_INFO_NAME]);
    assert.equal(final.type, P.NBD_REP_ACK);
    assert.deepEqual(infos[0], { type: P.NBD_INFO_EXPORT, size: SIZE, flags: EXPORT_FLAGS });
    assert.ok(EXPORT_FLAGS & P.NBD_FLAG_HAS_FLAGS && EXPORT_FLAGS & P.NBD_FLAG_READ_ONLY && EXPORT_FLAGS & P.NBD_FLAG_SEND_FLUSH);
    assert.deepEqual(infos[1], { type: P.NBD_INFO_BLOCK_SIZE, minimum: 1, preferred: 4096, maximum: 32 * 1024 * 1024 });
    assert.deepEqual(infos[2], { type: P.NBD_INFO_NAME, name: 'archiso' });
    c.request(P.NBD_CMD_READ, 1000, 5000);
    const r = await c.simpleReply();
    assert.equal(r.error, 0);
    assert.deepEqual(await c.read(5000), data.subarray(1000, 6000));
  });

  it('sends NBD_INFO_BLOCK_SIZE only when asked', async () => {
    await start();
    const c = await client();
    await c.handshake();
    const { infos } = await c.go('archiso', [], P.NBD_OPT_INFO);
    assert.deepEqual(infos.map((i) => i.type), [P.NBD_INFO_EXPORT]);
  });

  it('INFO leaves the client in option haggling; GO then enters transmission', async () => {
    await start();
    const c = await client();
    await c.handshake();
    assert.equal((await c.go('archiso', [], P.NBD_OPT_INFO)).final.type, P.NBD_REP_ACK);
    assert.equal((await c.go('archiso')).final.type, P.NBD_REP_ACK);
    c.request(P.NBD_CMD_READ, 0, 10);
    assert.equal((await c.simpleReply()).error, 0);
  });

  it('LIST names the exports; LIST with data is ERR_INVALID', async () => {
    await start({}, [memExport('archiso', data), memExport('other', data.subarray(0, 512))]);
    const c = await client();
    await c.handshake();
    c.write(P.encodeOption(P.NBD_OPT_LIST));
    const names: string[] = [];
    for (;;) {
      const r = await c.optionReply();
      if (r.type !== P.NBD_REP_SERVER) {
        assert.equal(r.type, P.NBD_REP_ACK);
        break;
      }
      names.push(P.decodeServerReplyData(r.data).name);
    }
    assert.deepEqual(names, ['archiso', 'other']);
    c.write(P.encodeOption(P.NBD_OPT_LIST, Buffer.from('x')));
    assert.equal((await c.optionReply()).type, P.NBD_REP_ERR_INVALID);
  });

  it('unknown options and STRUCTURED_REPLY get ERR_UNSUP and haggling goes on', async () => {
    await start();
    const c = await client();
    await c.handshake();
    for (const opt of [0xdead, P.NBD_OPT_STRUCTURED_REPLY, P.NBD_OPT_STARTTLS, P.NBD_OPT_SET_META_CONTEXT]) {
      c.write(P.encodeOption(opt, Buffer.from('ignored payload')));
      const r = await c.optionReply();
      assert.equal(r.option, opt);
      assert.equal(r.type, P.NBD_REP_ERR_UNSUP);
    }
    assert.equal((await c.go('archiso')).final.type, P.NBD_REP_ACK);
  });

  it('an unknown export name is ERR_UNKNOWN on GO/INFO; a malformed GO is ERR_INVALID', async () => {
    await start();
    const c = await client();
    await c.handshake();
    const r = await c.go('nope');
    assert.equal(r.final.type, P.NBD_REP_ERR_UNKNOWN);
    assert.match(r.final.data.toString(), /nope/);
    assert.equal((await c.go('nope', [], P.NBD_OPT_INFO)).final.type, P.NBD_REP_ERR_UNKNOWN);
    c.write(P.encodeOption(P.NBD_OPT_GO, Buffer.from('000000ff0000', 'hex')));
    assert.equal((await c.optionReply()).type, P.NBD_REP_ERR_INVALID);
    // The empty name is the default export.
    assert.equal((await c.go('')).final.type, P.NBD_REP_ACK);
  });

  it('ABORT is acknowledged and the connection closed', async () => {
    await start();
    const c = await client();
    await c.handshake();
    c.write(P.encodeOption(P.NBD_OPT_ABORT));
    const r = await c.optionReply();
    assert.equal(r.type, P.NBD_REP_ACK);
    await c.waitEnd();
    assert.equal(errors.length, 0);
  });

  it('EXPORT_NAME answers size+flags (with 124 zeroes unless NO_ZEROES); an unknown name closes', async () => {
    await start();
    const a = await client();
    await a.handshake(P.NBD_FLAG_C_FIXED_NEWSTYLE);
    a.write(P.encodeOption(P.NBD_OPT_EXPORT_NAME, Buffer.from('archiso')));
    const ans = await a.read(134);
    assert.equal(Number(ans.readBigUInt64BE(0)), SIZE);
    assert.equal(ans.readUInt16BE(8), EXPORT_FLAGS);
    a.request(P.NBD_CMD_READ, 0, 4);
    assert.equal((await a.simpleReply()).error, 0);
    assert.deepEqual(await a.read(4), data.subarray(0, 4));

    const b = await client();
    await b.handshake(FULL);
    b.write(P.encodeOption(P.NBD_OPT_EXPORT_NAME, Buffer.from('archiso')));
    assert.equal((await b.read(10)).readUInt16BE(8), EXPORT_FLAGS);
    b.request(P.NBD_CMD_READ, 0, 4);
    assert.equal((await b.simpleReply()).error, 0);

    const u = await client();
    await u.handshake(FULL);
    u.write(P.encodeOption(P.NBD_OPT_EXPORT_NAME, Buffer.from('missing')));
    await u.waitEnd();
    assert.match(errors.map((e) => e.message).join(), /unknown export "missing"/);
  });

  it('unknown client flags close the connection', async () => {
    await start();
    const c = await client();
    await c.handshake(0x80);
    await c.waitEnd();
    await stillServes();
  });

  it('an oversized option length closes the connection cleanly; the server still serves', async () => {
    await start();
    const c = await client();
    await c.handshake();
    const h = P.encodeOption(P.NBD_OPT_GO);
    h.writeUInt32BE(0xfffffff0, 12);
    c.write(h);
    await c.waitEnd();
    assert.match(errors[0]!.message, /exceeds the 65536-byte limit/);
    await stillServes();
  });

  it('a client without the fixed handshake is dropped on an unknown option (it could not parse an error)', async () => {
    await start();
    const c = await client();
    await c.handshake(0);
    c.write(P.encodeOption(0x77));
    await c.waitEnd();
  });

  it('reads past the end, over the maximum, or at a 2^64 offset are EINVAL; the link stays usable', async () => {
    await start({ maxRequestLength: 1024 * 1024 });
    const c = await attached();
    const cases: [number, number][] = [
      [SIZE - 10, 11],
      [SIZE, 1],
      [0, 1024 * 1024 + 1],
      [0, 0xffffffff],
    ];
    for (const [off, len] of cases) {
      const h = c.request(P.NBD_CMD_READ, off, len);
      const r = await c.simpleReply();
      assert.deepEqual(r, { error: P.NBD_EINVAL, handle: h }, `${off}+${len}`);
    }
    const raw = P.encodeRequest({ type: P.NBD_CMD_READ, flags: 0, handle: Buffer.alloc(8, 9), offset: 0, length: 1 });
    raw.writeBigUInt64BE(0xfffffffffffffff0n, 16);
    c.write(raw);
    assert.equal((await c.simpleReply()).error, P.NBD_EINVAL);
    // The exact last byte and a zero-length read are fine.
    c.request(P.NBD_CMD_READ, SIZE - 1, 1);
    assert.equal((await c.simpleReply()).error, 0);
    assert.deepEqual(await c.read(1), data.subarray(SIZE - 1));
    c.request(P.NBD_CMD_READ, 0, 0);
    assert.equal((await c.simpleReply()).error, 0);
  });

  it('writes (payload swallowed), trim and write-zeroes are EPERM; flush is acknowledged; unknown commands EINVAL', async () => {
    await start();
    const c = await attached();
    const hw = c.request(P.NBD_CMD_WRITE, 0, 70000);
    c.write(randomBytes(70000));
    assert.deepEqual(await c.simpleReply(), { error: P.NBD_EPERM, handle: hw });
    for (const [cmd, err] of [
      [P.NBD_CMD_TRIM, P.NBD_EPERM],
      [P.NBD_CMD_WRITE_ZEROES, P.NBD_EPERM],
      [P.NBD_CMD_FLUSH, 0],
      [P.NBD_CMD_CACHE, P.NBD_EINVAL],
      [P.NBD_CMD_BLOCK_STATUS, P.NBD_EINVAL],
      [99, P.NBD_EINVAL],
    ] as const) {
      const h = c.request(cmd, 0, 4096);
      assert.deepEqual(await c.simpleReply(), { error: err, handle: h }, `command ${cmd}`);
    }
    // In sync after all that: a read still returns the right bytes.
    c.request(P.NBD_CMD_READ, 4096, 16);
    assert.equal((await c.simpleReply()).error, 0);
    assert.deepEqual(await c.read(16), data.subarray(4096, 4112));
  });

  it('a bad request magic closes the connection', async () => {
    await start();
    const c = await attached();
    c.write(Buffer.alloc(28, 0x41));
    await c.waitEnd();
    assert.match(errors[0]!.message, /bad request magic/);
    await stillServes();
  });

  it('DISC answers outstanding reads first, then closes', async () => {
    const exp = memExport('archiso', data, 50);
    await start({}, [exp]);
    const c = await attached();
    const h1 = c.request(P.NBD_CMD_READ, 0, 100);
    const h2 = c.request(P.NBD_CMD_READ, 100, 100);
    c.request(P.NBD_CMD_DISC, 0, 0);
    const got = new Map<string, Buffer>();
    for (let i = 0; i < 2; i++) {
      const r = await c.simpleReply();
      assert.equal(r.error, 0);
      got.set(r.handle.toString('hex'), await c.read(100));
    }
    assert.deepEqual(got.get(h1.toString('hex')), data.subarray(0, 100));
    assert.deepEqual(got.get(h2.toString('hex')), data.subarray(100, 200));
    await c.waitEnd();
  });

  it('a client half-closing after its requests still gets its replies', async () => {
    await start();
    const c = await attached();
    c.request(P.NBD_CMD_READ, 0, 64);
    c.socket.end();
    assert.equal((await c.simpleReply()).error, 0);
    assert.deepEqual(await c.read(64), data.subarray(0, 64));
    await c.waitEnd();
  });

  it('caps reply memory in flight and stops reading requests while replies are unsent (bounded memory)', async () => {
    const big = randomBytes(8 * 1024 * 1024);
    const exp = memExport('archiso', big, 5);
    await start({ maxInflight: 4 }, [exp]);
    const c = await attached();
    c.socket.pause(); // the client does not read its replies
    const N = 400;
    for (let i = 0; i < N; i++) c.request(P.NBD_CMD_READ, (i % 8) * 1024 * 1024, 1024 * 1024);
    let most = 0;
    for (let t = 0; t < 40; t++) {
      most = Math.max(most, server.replyBytes);
      await new Promise((r) => setTimeout(r, 20));
    }
    // Pieces of at most CHUNK, at most connectionReplyBytes of them held at once.
    assert.ok(exp.longest <= CHUNK, `longest file read ${exp.longest}`);
    assert.ok(exp.maxConcurrent <= server.opts.connectionReplyBytes / CHUNK, `max concurrent reads ${exp.maxConcurrent}`);
    assert.ok(most <= server.opts.connectionReplyBytes, `reply bytes held ${most}`);
    // Only what fits in the socket buffers has been read from the file, not 400 MiB.
    assert.ok(exp.bytes < 64 * 1024 * 1024, `bytes read while the client was not reading: ${exp.bytes}`);
    c.socket.resume();
    for (let i = 0; i < N; i++) {
      const r = await c.simpleReply();
      assert.equal(r.error, 0);
      const idx = Number(r.handle.readBigUInt64BE()) - 1;
      assert.equal(idx, i, 'replies come in request order');
      const off = (idx % 8) * 1024 * 1024;
      const body = await c.read(1024 * 1024);
      assert.ok(body.equals(big.subarray(off, off + 1024 * 1024)), `reply ${idx}`);
    }
    assert.equal(exp.bytes, N * 1024 * 1024);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.replyBytes, 0);
  });

  it('streams a 32 MiB read in pieces as the client takes them, never holding more than its share', async () => {
    const big = randomBytes(33 * 1024 * 1024);
    const exp = memExport('archiso', big);
    await start({}, [exp]);
    const c = await attached();
    c.socket.pause();
    const h = c.request(P.NBD_CMD_READ, 12345, 32 * 1024 * 1024);
    let most = 0;
    for (let t = 0; t < 25; t++) {
      most = Math.max(most, server.replyBytes);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(exp.longest <= CHUNK, `longest file read ${exp.longest}`);
    assert.ok(most <= server.opts.connectionReplyBytes, `reply bytes held ${most}`);
    assert.ok(exp.bytes < 32 * 1024 * 1024, `read ${exp.bytes} bytes ahead of a client that reads nothing`);
    c.socket.resume();
    assert.deepEqual(await c.simpleReply(), { error: 0, handle: h });
    assert.ok((await c.read(32 * 1024 * 1024, 20000)).equals(big.subarray(12345, 12345 + 32 * 1024 * 1024)));
    // Still in sync: a small read after it.
    c.request(P.NBD_CMD_READ, 7, 9);
    assert.equal((await c.simpleReply()).error, 0);
    assert.deepEqual(await c.read(9), big.subarray(7, 16));
  });

  it('bounds the reply memory of all connections together; a reading client is still served meanwhile', async () => {
    const big = randomBytes(33 * 1024 * 1024);
    // 8 reserves of 512 KiB + a 2 MiB shared pool: at most 6 MiB, whatever 7 non-readers ask.
    await start({ maxConnections: 8, maxConnectionsPerAddress: 8, maxReplyBytes: 6 * 1024 * 1024 }, [memExport('archiso', big)]);
    const hogs: WireClient[] = [];
    for (let i = 0; i < 7; i++) {
      const c = await attached();
      c.socket.pause();
      for (let k = 0; k < 4; k++) c.request(P.NBD_CMD_READ, 0, 32 * 1024 * 1024);
      hogs.push(c);
    }
    let most = 0;
    const sample = setInterval(() => (most = Math.max(most, server.replyBytes)), 5);
    try {
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(server.budget.sharedAvailable < CHUNK, true, 'the non-readers use the shared pool');
      // The eighth client reads 8 MiB in 256 KiB requests on its reserve alone.
      const c = await attached();
      for (let off = 0; off < 8 * 1024 * 1024; off += CHUNK) {
        c.request(P.NBD_CMD_READ, off, CHUNK);
        assert.equal((await c.simpleReply()).error, 0);
        assert.ok((await c.read(CHUNK)).equals(big.subarray(off, off + CHUNK)));
      }
    } finally {
      clearInterval(sample);
    }
    assert.ok(most <= 6 * 1024 * 1024, `reply bytes held ${most}`);
    for (const h of hogs) h.destroy();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(server.replyBytes, 0);
    assert.equal(server.budget.sharedAvailable, 2 * 1024 * 1024, 'every byte went back to the pool');
  });

  it('drops a connection whose replies are not read for stallTimeoutMs', async () => {
    const big = randomBytes(33 * 1024 * 1024);
    await start({ stallTimeoutMs: 300 }, [memExport('archiso', big)]);
    const c = await attached();
    c.socket.pause();
    c.request(P.NBD_CMD_READ, 0, 32 * 1024 * 1024);
    const t0 = Date.now();
    while (server.connectionCount > 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.connectionCount, 0);
    assert.ok(Date.now() - t0 >= 250, 'not before stallTimeoutMs');
    assert.match(errors.map((e) => e.message).join(), /replies not read for/);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.replyBytes, 0);
  });

  it('a read error after part of a large reply was sent closes the connection (a simple reply cannot take it back)', async () => {
    const bytes = randomBytes(2 * 1024 * 1024);
    const exp: NbdExport = {
      name: 'archiso',
      size: bytes.length,
      read: async (buf, off, len, pos) => (pos >= 1024 * 1024 ? (await new Promise((r) => setTimeout(r, 50)), 0) : bytes.copy(buf, off, pos, pos + len)),
    };
    await start({}, [exp]);
    const c = await attached();
    c.request(P.NBD_CMD_READ, 0, 2 * 1024 * 1024);
    assert.equal((await c.simpleReply()).error, 0);
    await c.waitEnd();
    assert.match(errors.map((e) => e.message).join(), /short read/);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.replyBytes, 0);
  });

  it('a failed first piece of a large read is EIO, and the connection goes on', async () => {
    const bytes = randomBytes(2 * 1024 * 1024);
    const exp: NbdExport = {
      name: 'archiso',
      size: bytes.length,
      read: async (buf, off, len, pos) => (pos === 0 ? (await new Promise((r) => setTimeout(r, 30)), 0) : bytes.copy(buf, off, pos, pos + len)),
    };
    await start({}, [exp]);
    const c = await attached();
    const h = c.request(P.NBD_CMD_READ, 0, 2 * 1024 * 1024);
    assert.deepEqual(await c.simpleReply(), { error: P.NBD_EIO, handle: h });
    c.request(P.NBD_CMD_READ, 100, 10);
    assert.equal((await c.simpleReply()).error, 0);
    assert.deepEqual(await c.read(10), bytes.subarray(100, 110));
  });

  it('a client that vanishes mid-read leaves the server serving', async () => {
    const big = randomBytes(16 * 1024 * 1024);
    await start({}, [memExport('archiso', big, 20)]);
    for (let i = 0; i < 3; i++) {
      const c = await attached();
      for (let k = 0; k < 8; k++) c.request(P.NBD_CMD_READ, 0, 16 * 1024 * 1024);
      await new Promise((r) => setTimeout(r, 30));
      c.destroy();
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(server.connectionCount, 0);
    const c = await attached();
    c.request(P.NBD_CMD_READ, 5, 5);
    assert.equal((await c.simpleReply()).error, 0);
    assert.deepEqual(await c.read(5), big.subarray(5, 10));
  });

  it('a file that shrank under the server is EIO, not a crash', async () => {
    const short: NbdExport = { name: 'archiso', size: 1000, read: async () => 0 };
    await start({}, [short]);
    const c = await attached();
    c.request(P.NBD_CMD_READ, 0, 10);
    assert.equal((await c.simpleReply()).error, P.NBD_EIO);
    assert.match(errors[0]!.message, /short read/);
  });

  it('drops a client that never chooses an export', async () => {
    await start({ handshakeTimeoutMs: 150 });
    const c = await client();
    await c.handshake();
    await c.waitEnd(2000);
    assert.match(errors[0]!.message, /no export chosen/);
  });

  it('fuzz: random bytes in either phase never crash the server', async () => {
    await start({ handshakeTimeoutMs: 500 });
    for (let i = 0; i < 60; i++) {
      const c = i % 2 ? await attached() : await client();
      if (i % 2 === 0) await c.handshake();
      const junk = randomBytes(8 + ((i * 37) % 300));
      if (i % 4 === 0) junk.writeBigUInt64BE(P.IHAVEOPT, 0);
      c.write(junk);
      await new Promise((r) => setTimeout(r, 5));
      c.destroy();
    }
    await stillServes();
  });

  it('emits connect, rate-limited progress and disconnect with bytes and share', async () => {
    await start({ progressIntervalMs: 100 });
    const connects: NbdSessionInfo[] = [];
    const progress: NbdProgress[] = [];
    const disc: NbdDisconnect[] = [];
    server.on('connect', (e) => connects.push(e));
    server.on('progress', (e) => progress.push(e));
    server.on('disconnect', (e) => disc.push(e));
    const c = await attached();
    assert.equal(server.clientCount, 1);
    const chunk = 64 * 1024;
    let done = 0;
    const t0 = Date.now();
    while (done + chunk <= SIZE) {
      c.request(P.NBD_CMD_READ, done, chunk);
      assert.equal((await c.simpleReply()).error, 0);
      await c.read(chunk);
      done += chunk;
      await new Promise((r) => setTimeout(r, 5));
    }
    const elapsed = Date.now() - t0;
    c.request(P.NBD_CMD_DISC, 0, 0);
    await c.waitEnd();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(connects.length, 1);
    assert.equal(connects[0]!.export, 'archiso');
    assert.equal(connects[0]!.address, '127.0.0.1');
    // About one event per 100 ms (plus the first), far fewer than the 48 reads.
    assert.ok(progress.length >= 2 && progress.length <= Math.ceil(elapsed / 100) + 2, `${progress.length} events in ${elapsed} ms`);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i]!.bytesRead > progress[i - 1]!.bytesRead);
    assert.equal(disc.length, 1);
    assert.equal(disc[0]!.bytesRead, done);
    assert.equal(disc[0]!.share, done / SIZE);
    assert.equal(server.clientCount, 0);
  });

  it('reports IPv4 clients of a dual-stack listener by their plain address', async (t) => {
    server = new NbdServer({ exports: [memExport('archiso', data)] });
    try {
      port = (await server.listen(0, '::')).port;
    } catch {
      t.skip('no IPv6 on this machine');
      return;
    }
    const seen = new Promise<NbdSessionInfo>((resolve) => server.once('connect', resolve));
    await attached();
    assert.equal((await seen).address, '127.0.0.1');
  });

  it('serves many clients at once', async () => {
    await start({ maxConnectionsPerAddress: 32 });
    const n = 24;
    const results = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const c = await attached();
        const off = i * 100000;
        c.request(P.NBD_CMD_READ, off, 100000);
        assert.equal((await c.simpleReply()).error, 0);
        return (await c.read(100000)).equals(data.subarray(off, off + 100000));
      }),
    );
    assert.ok(results.every(Boolean));
    assert.equal(server.clientCount, n);
  });

  it('closes connections over maxConnections at once, reports them, and serves again when one leaves', async () => {
    await start({ maxConnections: 2 });
    const refused: { address: string; port: number; max: number }[] = [];
    server.on('refused', (r) => refused.push(r));
    const a = await attached();
    await attached();
    const third = await client();
    await third.closed; // closed by the server without a greeting
    assert.deepEqual(refused, [{ address: '127.0.0.1', port: refused[0]!.port, max: 2, reason: 'server' }]);
    a.destroy();
    await a.closed;
    await new Promise((r) => setTimeout(r, 50));
    await stillServes();
  });

  it('one address holds at most maxConnectionsPerAddress connections', async () => {
    await start({ maxConnectionsPerAddress: 2 });
    const refused: { reason: string; max: number }[] = [];
    server.on('refused', (r) => refused.push(r));
    await attached();
    await attached();
    const third = await client();
    await third.closed;
    assert.deepEqual(refused.map((r) => [r.reason, r.max]), [['address', 2]]);
  });

  it('a full server gives the slot of a stalled connection to a newcomer, then of one still haggling', async () => {
    const big = randomBytes(33 * 1024 * 1024);
    await start({ maxConnections: 2, evictableAfterMs: 200 }, [memExport('archiso', big)]);
    const evicted: { reason: string; id: number }[] = [];
    server.on('evicted', (e) => evicted.push(e));
    const staller = await attached();
    staller.socket.pause();
    staller.request(P.NBD_CMD_READ, 0, 32 * 1024 * 1024);
    const haggler = await client();
    await haggler.handshake();
    // Nothing is evictable yet: a newcomer is refused.
    const early = await client();
    await early.closed;
    await new Promise((r) => setTimeout(r, 300));
    const n = await attached();
    n.request(P.NBD_CMD_READ, 100, 100);
    assert.equal((await n.simpleReply()).error, 0);
    assert.deepEqual(await n.read(100), big.subarray(100, 200));
    n.destroy();
    staller.socket.resume(); // a paused socket would not see its end
    await staller.closed;
    assert.deepEqual(evicted.map((e) => e.reason), ['stalled']);
    // That client left; the haggler (older than evictableAfterMs) is next.
    await new Promise((r) => setTimeout(r, 50));
    const a = await attached();
    const b = await attached();
    await haggler.closed;
    assert.deepEqual(evicted.map((e) => e.reason), ['stalled', 'handshake']);
    // Two reading clients are never evicted: a third is refused.
    const c = await client();
    await c.closed;
    a.request(P.NBD_CMD_READ, 0, 4);
    b.request(P.NBD_CMD_READ, 4, 4);
    assert.equal((await a.simpleReply()).error, 0);
    assert.equal((await b.simpleReply()).error, 0);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.replyBytes <= 8 + 2 * P.SIMPLE_REPLY_LENGTH, true);
  });

  it('close() drops clients and resolves once every socket is closed', async () => {
    await start();
    const a = await attached();
    const b = await client();
    await b.handshake();
    await server.close();
    assert.equal(server.connectionCount, 0);
    await Promise.all([a.closed, b.closed]);
    await assert.rejects(WireClient.connect(port));
  });
});

describe('FileExport', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nbd-export-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads a file positionally and refuses a directory', async () => {
    const f = path.join(dir, 'x.iso');
    const bytes = randomBytes(10000);
    fs.writeFileSync(f, bytes);
    const exp = await FileExport.open('archiso', f);
    assert.equal(exp.size, 10000);
    const buf = Buffer.alloc(100);
    assert.equal(await exp.read(buf, 0, 100, 9950), 50);
    assert.deepEqual(buf.subarray(0, 50), bytes.subarray(9950));
    await exp.close();
    await assert.rejects(FileExport.open('archiso', dir), /not a regular file/);
    await assert.rejects(FileExport.open('archiso', path.join(dir, 'missing.iso')), /ENOENT/);
  });
});
