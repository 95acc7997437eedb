import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BufferPool } from '../../nodes/lib/http/buffer-pool';
import { HttpFileService, type DoneEvent, type FailEvent, type ProgressEvent, type RequestEvent } from '../../nodes/lib/http/serve-file';
import { HttpListener } from '../../nodes/lib/http/server';
import { TransferSlots } from '../../nodes/lib/http/slots';
import { FolderStore } from '../../nodes/lib/store/folder-store';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  reused: boolean;
}

function request(port: number, p: string, opts: { method?: string; headers?: http.OutgoingHttpHeaders; agent?: http.Agent } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A GET whose response is never read past the headers (or past `readFirst` bytes). */
async function stalledGet(port: number, p: string, readFirst = 0): Promise<{ res: http.IncomingMessage; req: http.ClientRequest }> {
  const req = http.get({ host: '127.0.0.1', port, path: p, agent: false });
  req.on('error', () => undefined);
  // Bounded: a server whose buffers are all held by stalled clients does not even send headers.
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const t = setTimeout(() => {
      req.destroy();
      reject(new Error(`no response to GET ${p} within 5 s`));
    }, 5000);
    req.on('response', (r) => {
      clearTimeout(t);
      resolve(r);
    });
  });
  res.on('error', () => undefined);
  if (readFirst > 0) {
    let got = 0;
    await new Promise<void>((resolve) => {
      res.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= readFirst) {
          res.pause();
          resolve();
        }
      });
    });
  } else {
    res.pause();
  }
  return { res, req };
}

const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

describe('http file service', () => {
  let tmp: string;
  let root: string;
  let big: Buffer;
  let service: HttpFileService;
  let listener: HttpListener;
  let port: number;
  const events: { request: RequestEvent[]; progress: ProgressEvent[]; done: DoneEvent[]; fail: FailEvent[]; log: string[] } = {
    request: [],
    progress: [],
    done: [],
    fail: [],
    log: [],
  };

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-http-'));
    root = path.join(tmp, 'root');
    fs.mkdirSync(path.join(root, 'arch/boot/x86_64'), { recursive: true });
    fs.mkdirSync(path.join(root, 'arch/x86_64'), { recursive: true });
    big = Buffer.alloc(5 * 1024 * 1024 + 123);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
    fs.writeFileSync(path.join(root, 'arch/x86_64/airootfs.sfs'), big);
    fs.writeFileSync(path.join(root, 'arch/boot/x86_64/vmlinuz-linux'), 'kernel');
    fs.writeFileSync(path.join(root, 'arch/boot/x86_64/initramfs-linux.img'), 'initramfs');
    fs.writeFileSync(path.join(root, 'hello.txt'), '0123456789');
    fs.writeFileSync(path.join(root, 'empty'), '');
    fs.writeFileSync(path.join(root, 'sparse.bin'), '');
    fs.truncateSync(path.join(root, 'sparse.bin'), 64 * 1024 * 1024); // more than socket buffers hold
    fs.writeFileSync(path.join(root, '<b>&.txt'), 'x');
    fs.writeFileSync(path.join(tmp, 'secret'), 'TOP-SECRET-CONTENT');
    fs.symlinkSync(path.join(tmp, 'secret'), path.join(root, 'escape'));
    const store = await new FolderStore(root).init();
    service = new HttpFileService({
      store,
      listing: true,
      progressIntervalMs: 0,
      pool: new BufferPool(1 << 20, 8),
      hooks: {
        onRequest: (e) => events.request.push(e),
        onProgress: (e) => events.progress.push(e),
        onDone: (e) => events.done.push(e),
        onFail: (e) => events.fail.push(e),
        onLog: (l) => events.log.push(l),
      },
    });
    listener = new HttpListener(service.handle);
    port = (await listener.listen({ address: '127.0.0.1', port: 0 })).port;
  });
  after(async () => {
    await service.close();
    await listener.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('serves a whole file with its headers, progress in steps ending at 100, then done', async () => {
    const r = await request(port, '/arch/x86_64/airootfs.sfs');
    assert.equal(r.status, 200);
    assert.equal(sha(r.body), sha(big));
    assert.equal(r.headers['content-length'], String(big.length));
    assert.equal(r.headers['content-type'], 'application/octet-stream');
    assert.equal(r.headers['accept-ranges'], 'bytes');
    assert.match(r.headers.etag!, /^"[0-9a-f]+-[0-9a-f]+"$/);
    assert.ok(Date.parse(r.headers['last-modified']!) > 0);
    // The last report comes once the file is closed, which may be just after the client has it all.
    for (let i = 0; i < 100 && !events.done.some((e) => e.path === '/arch/x86_64/airootfs.sfs'); i++) await new Promise((res) => setTimeout(res, 20));
    const mine = events.progress.filter((e) => e.path === '/arch/x86_64/airootfs.sfs');
    const pcts = mine.map((e) => e.percent);
    assert.deepEqual(pcts, [...pcts].sort((a, b) => a - b));
    assert.equal(new Set(pcts).size, pcts.length);
    assert.equal(pcts.at(-1), 100);
    assert.ok(pcts.length >= 5, `${pcts}`); // 1 MiB chunks of a 5 MiB file cross several 10% steps
    assert.equal(mine.at(-1)!.bytes, big.length);
    const done = events.done.find((e) => e.path === '/arch/x86_64/airootfs.sfs')!;
    assert.equal(done.bytes, big.length);
    assert.equal(done.status, 200);
    assert.ok(done.durationMs > 0 && done.throughput > 0);
    const req = events.request.find((e) => e.path === '/arch/x86_64/airootfs.sfs')!;
    assert.equal(req.client, '127.0.0.1');
    assert.equal(req.range, null);
    assert.equal(req.size, big.length);
    assert.ok(events.log.some((l) => l.startsWith(`127.0.0.1 "GET /arch/x86_64/airootfs.sfs HTTP/1.1" 200 ${big.length} `)), events.log.join('\n'));
  });

  it('answers HEAD with the headers of GET and no body', async () => {
    const r = await request(port, '/hello.txt', { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 0);
    assert.equal(r.headers['content-length'], '10');
    assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
  });

  it('serves single ranges (start, middle, suffix, open) as 206 and misses as 416', async () => {
    const cases: Array<[string, string, string]> = [
      ['bytes=0-3', '0123', 'bytes 0-3/10'],
      ['bytes=4-6', '456', 'bytes 4-6/10'],
      ['bytes=-2', '89', 'bytes 8-9/10'],
      ['bytes=7-', '789', 'bytes 7-9/10'],
      ['bytes=8-100', '89', 'bytes 8-9/10'],
    ];
    for (const [range, body, cr] of cases) {
      const r = await request(port, '/hello.txt', { headers: { Range: range } });
      assert.equal(r.status, 206, range);
      assert.equal(r.body.toString(), body, range);
      assert.equal(r.headers['content-range'], cr);
      assert.equal(r.headers['content-length'], String(body.length));
    }
    const past = await request(port, '/hello.txt', { headers: { Range: 'bytes=10-20' } });
    assert.equal(past.status, 416);
    assert.equal(past.headers['content-range'], 'bytes */10');
    const multi = await request(port, '/hello.txt', { headers: { Range: 'bytes=0-1,4-5' } });
    assert.equal(multi.status, 200);
    assert.equal(multi.body.toString(), '0123456789');
    const mid = await request(port, '/arch/x86_64/airootfs.sfs', { headers: { Range: 'bytes=1048570-3145740' } });
    assert.equal(mid.status, 206);
    assert.ok(mid.body.equals(big.subarray(1048570, 3145741)));
    await new Promise((res) => setImmediate(res));
    const ev = events.request.filter((e) => e.path === '/arch/x86_64/airootfs.sfs').at(-1)!;
    assert.deepEqual(ev.range, { start: 1048570, end: 3145740 });
  });

  it('honours If-Range, If-None-Match, If-Modified-Since and If-Match', async () => {
    const first = await request(port, '/hello.txt');
    const etag = first.headers.etag!;
    const lm = first.headers['last-modified']!;
    const ok = await request(port, '/hello.txt', { headers: { Range: 'bytes=0-0', 'If-Range': etag } });
    assert.equal(ok.status, 206);
    const stale = await request(port, '/hello.txt', { headers: { Range: 'bytes=0-0', 'If-Range': '"stale"' } });
    assert.equal(stale.status, 200);
    assert.equal(stale.body.toString(), '0123456789');
    const staleDate = await request(port, '/hello.txt', { headers: { Range: 'bytes=0-0', 'If-Range': 'Mon, 01 Jan 2001 00:00:00 GMT' } });
    assert.equal(staleDate.status, 200);
    const nm = await request(port, '/hello.txt', { headers: { 'If-None-Match': etag } });
    assert.equal(nm.status, 304);
    assert.equal(nm.body.length, 0);
    assert.equal(nm.headers.etag, etag);
    assert.equal((await request(port, '/hello.txt', { headers: { 'If-Modified-Since': lm } })).status, 304);
    assert.equal((await request(port, '/hello.txt', { headers: { 'If-None-Match': '"other"' } })).status, 200);
    assert.equal((await request(port, '/hello.txt', { headers: { 'If-Match': '"other"' } })).status, 412);
  });

  it('refuses traversal, NUL bytes and bad encodings through the store rules, and other methods', async () => {
    const cases: Array<[string, number]> = [
      ['/../secret', 400],
      ['/arch/../../secret', 400],
      ['/%2e%2e/secret', 400],
      ['/%2E%2E%2Fsecret', 400],
      ['/..%5csecret', 400],
      ['/hello.txt%00.png', 400],
      ['/%E0%A4%A', 400],
      ['/escape', 403],
      ['/nope', 404],
      ['/hello.txt/x', 404],
      ['*', 400],
    ];
    for (const [p, status] of cases) {
      const r = await request(port, p);
      assert.equal(r.status, status, p);
      assert.doesNotMatch(r.body.toString(), /TOP-SECRET/, p);
    }
    const post = await request(port, '/hello.txt', { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    await new Promise((res) => setImmediate(res));
    assert.ok(events.fail.some((e) => e.path === '/nope' && e.status === 404 && !e.aborted));
  });

  it('lists directories (escaped, after a redirect to the slash form) when enabled', async () => {
    const redirect = await request(port, '/arch');
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.location, '/arch/');
    const root = await request(port, '/');
    assert.equal(root.status, 200);
    const html = root.body.toString();
    assert.match(html, /<a href="\/%3Cb%3E%26\.txt">&#60;b&#62;&#38;\.txt<\/a> 1/);
    assert.match(html, /<a href="\/arch\/">arch\/<\/a>/);
    assert.doesNotMatch(html, /<b>/);
    const sub = (await request(port, '/arch/boot/')).body.toString();
    assert.match(sub, /<a href="\/arch\/">\.\.\/<\/a>/);
    assert.match(sub, /<a href="\/arch\/boot\/x86_64\/">/);
  });

  it('refuses directories when listing is off', async () => {
    const s = new HttpFileService({ store: await new FolderStore(root).init() });
    const l = new HttpListener(s.handle);
    const p = (await l.listen({ address: '127.0.0.1', port: 0 })).port;
    try {
      assert.equal((await request(p, '/arch/')).status, 403);
      assert.equal((await request(p, '/')).status, 403);
    } finally {
      await l.close();
    }
  });

  it('serves an empty file and keeps connections alive', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const a = await request(port, '/empty', { agent });
      assert.equal(a.status, 200);
      assert.equal(a.headers['content-length'], '0');
      const b = await request(port, '/hello.txt', { agent });
      assert.equal(b.body.toString(), '0123456789');
      assert.equal(b.reused, true);
    } finally {
      agent.destroy();
    }
  });

  it('generates the iPXE script for the Host the client used, or the local address', async () => {
    const r = await request(port, '/boot.ipxe', { headers: { Host: 'pxe.lan:8080' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
    const text = r.body.toString();
    assert.match(text, /^#!ipxe\n/);
    assert.match(text, /^kernel http:\/\/pxe\.lan:8080\/arch\/boot\/x86_64\/vmlinuz-linux archisobasedir=arch archiso_http_srv=http:\/\/pxe\.lan:8080\/ ip=dhcp initrd=initramfs-linux\.img$/m);
    const bad = (await request(port, '/boot.ipxe', { headers: { Host: 'x y' } })).body.toString();
    assert.match(bad, new RegExp(`kernel http://127\\.0\\.0\\.1:${port}/arch/`));
    for (const m of text.matchAll(/http:\/\/pxe\.lan:8080(\/\S+[^/])(?=\s|$)/g)) {
      assert.equal((await request(port, m[1]!)).status, 200, m[1]);
    }
  });

  it('answers 404 with a clear message when the store is not an Arch ISO, the details to the hooks', async () => {
    const fails: FailEvent[] = [];
    const s = new HttpFileService({ store: await new FolderStore(path.join(root, 'arch/boot')).init(), ipxePath: '/menu/arch.ipxe', hooks: { onFail: (e) => fails.push(e) } });
    const l = new HttpListener(s.handle);
    const p = (await l.listen({ address: '127.0.0.1', port: 0 })).port;
    try {
      const r = await request(p, '/menu/arch.ipxe');
      assert.equal(r.status, 404);
      assert.match(r.body.toString(), /cannot generate \/menu\/arch\.ipxe: the store is not an Arch ISO/);
      assert.match(fails[0]!.error, /cannot generate \/menu\/arch\.ipxe: not an Arch ISO: the store has no \/arch\/boot\/x86_64\/vmlinuz-linux/);
      assert.equal((await request(p, '/boot.ipxe')).status, 404);
    } finally {
      await l.close();
    }
  });

  it('close() cuts a stalled transfer, releases its buffers, and reports nothing more', async () => {
    const pool = new BufferPool(64 * 1024, 4);
    const fails: FailEvent[] = [];
    const s = new HttpFileService({ store: await new FolderStore(root).init(), pool, hooks: { onFail: (e) => fails.push(e) } });
    const l = new HttpListener(s.handle);
    const p = (await l.listen({ address: '127.0.0.1', port: 0 })).port;
    const req = http.get({ host: '127.0.0.1', port: p, path: '/arch/x86_64/airootfs.sfs', agent: false });
    const res = await new Promise<http.IncomingMessage>((r) => req.on('response', r));
    res.pause(); // never read: the server must stop at backpressure
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(s.activeDownloads, 1);
    assert.ok(pool.inUse <= 2);
    await s.close();
    await l.close();
    assert.equal(s.activeDownloads, 0);
    assert.equal(pool.inUse, 0);
    assert.equal(fails.length, 0);
    assert.equal((await request(port, '/hello.txt')).status, 200); // the other service is unaffected
  });

  it('cuts off a client that stops reading, and reports it', async () => {
    const fails: FailEvent[] = [];
    const pool = new BufferPool(1 << 20, 4);
    const s = new HttpFileService({ store: await new FolderStore(root).init(), pool, stallTimeoutMs: 300, hooks: { onFail: (e) => fails.push(e) } });
    const l = new HttpListener(s.handle);
    const p = (await l.listen({ address: '127.0.0.1', port: 0 })).port;
    try {
      const req = http.get({ host: '127.0.0.1', port: p, path: '/sparse.bin', agent: false });
      req.on('error', () => undefined);
      const res = await new Promise<http.IncomingMessage>((r) => req.on('response', r));
      res.on('error', () => undefined);
      res.pause();
      // The paused client would not even see the close; wait for the server's report instead.
      for (let i = 0; i < 100 && fails.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      req.destroy();
      assert.equal(fails.length, 1);
      assert.equal(fails[0]!.aborted, true);
      assert.match(fails[0]!.error, /client stopped reading after \d+ of 67108864 bytes and was cut off/);
      assert.ok(fails[0]!.bytes < 64 * 1024 * 1024);
      assert.equal(pool.inUse, 0);
      assert.equal(s.activeDownloads, 0);
    } finally {
      await l.close();
    }
  });

  it('error bodies name no server path; FIFOs are refused, not served empty; the hooks get the details', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-http-errors-'));
    fs.symlinkSync('loop-b', path.join(dir, 'loop-a'));
    fs.symlinkSync('loop-a', path.join(dir, 'loop-b'));
    execFileSync('mkfifo', [path.join(dir, 'fifo')]);
    const fails: FailEvent[] = [];
    const s = new HttpFileService({ store: await new FolderStore(dir).init(), listing: true, hooks: { onFail: (e) => fails.push(e) } });
    const l = new HttpListener(s.handle);
    const p = (await l.listen({ address: '127.0.0.1', port: 0 })).port;
    try {
      for (const [url, status] of [['/loop-a', 404], ['/loop-b/', 404], ['/fifo', 403], ['/nope', 404]] as const) {
        const r = await request(p, url);
        assert.equal(r.status, status, url);
        assert.doesNotMatch(r.body.toString(), new RegExp(dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), url);
        assert.doesNotMatch(r.body.toString(), /\/tmp\//, url);
      }
      assert.ok(fails.some((e) => e.path === '/loop-a' && /symlink loop/.test(e.error)), 'the hooks name the loop');
      assert.ok(fails.some((e) => e.path === '/fifo' && /not a regular file/.test(e.error)));
      assert.doesNotMatch((await request(p, '/')).body.toString(), /fifo/, 'not listed');
    } finally {
      try {
        fs.closeSync(fs.openSync(path.join(dir, 'fifo'), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      } catch {
        // nobody blocked on it
      }
      await s.close();
      await l.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('clients that stop reading hold no shared buffer: another client downloads meanwhile', async () => {
    // A pool two stalled transfers used to fill (each held two buffers) before.
    const pool = new BufferPool(1 << 20, 4);
    const s = new HttpFileService({ store: await new FolderStore(root).init(), pool });
    const l = new HttpListener(s.handle);
    const p = (await l.listen({ address: '127.0.0.1', port: 0 })).port;
    const stalled: Array<{ req: http.ClientRequest }> = [];
    try {
      for (let i = 0; i < 6; i++) stalled.push(await stalledGet(p, '/sparse.bin'));
      // A shared buffer staged for a client on probation goes back once the client makes us wait.
      await until(() => pool.inUse === 0, 3000, `stalled transfers to hold no shared buffer (${pool.inUse} held)`);
      const started = Date.now();
      const r = await Promise.race([request(p, '/arch/x86_64/airootfs.sfs'), sleep(10_000).then(() => null)]);
      assert.ok(r, `a normal download got nothing in 10 s while ${stalled.length} clients stalled`);
      assert.equal(sha(r.body), sha(big));
      assert.ok(Date.now() - started < 10_000);
      // The client can have the whole body a moment before the server counts its transfer done.
      await until(() => s.activeDownloads === 6, 2000, `the 6 stalled transfers only to be active (${s.activeDownloads})`);
    } finally {
      for (const x of stalled) x.req.destroy();
      await s.close();
      await l.close();
    }
    assert.equal(pool.inUse, 0);
  });

  it('a slow reader holds no shared buffer (it trickles through its own)', async () => {
    const pool = new BufferPool(1 << 20, 4);
    const s = new HttpFileService({ store: await new FolderStore(root).init(), pool });
    const l = new HttpListener(s.handle);
    const p = (await l.listen({ address: '127.0.0.1', port: 0 })).port;
    const x = await stalledGet(p, '/sparse.bin');
    // ~400 KB/s: well under the pace a client must keep to be sent from shared buffers.
    const trickle = setInterval(() => x.res.read(8192), 20);
    try {
      await sleep(3000);
      const held: number[] = [];
      for (let i = 0; i < 20; i++) {
        held.push(pool.inUse);
        await sleep(50);
      }
      assert.deepEqual(held, held.map(() => 0), `shared buffers held by a slow reader: ${held}`);
      assert.equal(s.activeDownloads, 1, 'still being served');
    } finally {
      clearInterval(trickle);
      x.req.destroy();
      await s.close();
      await l.close();
    }
  });

  it('writes off the shared buffer of a client that read fast and then stopped, and forgets it when the client goes', async () => {
    const pool = new BufferPool(1 << 20, 4, 10_000, { maxWrittenOff: 4 });
    const s = new HttpFileService({ store: await new FolderStore(root).init(), pool, send: { writeOffMs: 200 } });
    const l = new HttpListener(s.handle);
    const p = (await l.listen({ address: '127.0.0.1', port: 0 })).port;
    try {
      // 24 MiB read fast (it is sent from shared buffers by then), then nothing.
      const x = await stalledGet(p, '/sparse.bin', 24 << 20);
      await until(() => pool.writtenOff === 1 && pool.inUse === 0, 10_000, `the stalled write written off (inUse ${pool.inUse}, writtenOff ${pool.writtenOff})`);
      assert.equal(pool.heldBy('127.0.0.1'), 1, 'still counted against its address');
      assert.equal(pool.tryAcquire('10.0.0.9') !== null, true, 'the pool is whole for others');
      x.req.destroy();
      await until(() => pool.writtenOff === 0 && s.activeDownloads === 0, 5000, 'the written-off buffer forgotten');
      assert.equal(pool.heldBy('127.0.0.1'), 0);
    } finally {
      await s.close();
      await l.close();
    }
  });

  it('sends the right bytes when transfers mix shared and own buffers (an address over its share)', async () => {
    const pool = new BufferPool(1 << 20, 4, 10_000, { maxPerOwner: 1 });
    const s = new HttpFileService({ store: await new FolderStore(root).init(), pool, send: { ownChunk: 4096 + 13, proveBytes: 256 * 1024 } });
    const l = new HttpListener(s.handle);
    const p = (await l.listen({ address: '127.0.0.1', port: 0 })).port;
    try {
      const rs = await Promise.all([1, 2, 3].map(() => request(p, '/arch/x86_64/airootfs.sfs')));
      for (const r of rs) assert.equal(sha(r.body), sha(big));
      const part = await request(p, '/arch/x86_64/airootfs.sfs', { headers: { Range: 'bytes=1000-3000999' } });
      assert.equal(part.status, 206);
      assert.equal(sha(part.body), sha(big.subarray(1000, 3001000)));
    } finally {
      await s.close();
      await l.close();
    }
    assert.equal(pool.inUse, 0);
  });

  it('answers 503 with Retry-After to an address over its transfer limit, and frees the slot after', async () => {
    const slots = new TransferSlots(10, 2);
    const s = new HttpFileService({ store: await new FolderStore(root).init(), slots });
    const l = new HttpListener(s.handle);
    const p = (await l.listen({ address: '127.0.0.1', port: 0 })).port;
    try {
      const a = await stalledGet(p, '/sparse.bin');
      const b = await stalledGet(p, '/sparse.bin');
      const r = await request(p, '/hello.txt');
      assert.equal(r.status, 503);
      assert.equal(r.headers['retry-after'], '5');
      assert.equal((await request(p, '/hello.txt', { method: 'HEAD' })).status, 200, 'no body, no slot');
      a.req.destroy();
      await until(() => slots.heldBy('127.0.0.1') === 1, 5000, 'the slot back');
      assert.equal((await request(p, '/hello.txt')).status, 200);
      b.req.destroy();
      await until(() => slots.active === 0, 5000, 'every slot back');
    } finally {
      await s.close();
      await l.close();
    }
  });

  it('does no work for pipelined requests before their turn (no open file per request sent ahead)', async () => {
    const s = new HttpFileService({ store: await new FolderStore(root).init() });
    const l = new HttpListener(s.handle);
    const p = (await l.listen({ address: '127.0.0.1', port: 0 })).port;
    const sock = net.connect(p, '127.0.0.1');
    try {
      await new Promise((r) => sock.once('connect', r));
      const before = openFds();
      // 200 requests in one go, and the responses never read.
      sock.write('GET /sparse.bin HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(200));
      sock.pause();
      await until(() => s.activeDownloads >= 1, 5000, 'the first transfer');
      await sleep(300);
      const grown = openFds() - before;
      assert.ok(grown <= 10, `${grown} descriptors more for 200 pipelined requests`);
    } finally {
      sock.destroy();
      await s.close();
      await l.close();
    }
  });

  it('closes connections over the per-address limit at once', async () => {
    const l = new HttpListener((_req, res) => res.end('ok'), { maxConnectionsPerClient: 3 });
    const p = (await l.listen({ address: '127.0.0.1', port: 0 })).port;
    const socks: net.Socket[] = [];
    try {
      const closed: boolean[] = [];
      for (let i = 0; i < 5; i++) {
        const c = net.connect(p, '127.0.0.1');
        c.on('error', () => undefined);
        const k = i;
        closed[k] = false;
        c.on('close', () => (closed[k] = true));
        socks.push(c);
        await new Promise((r) => c.once('connect', r));
      }
      await until(() => closed.filter(Boolean).length === 2, 3000, 'two connections closed');
      assert.deepEqual(closed, [false, false, false, true, true]);
      assert.equal(l.connectionsFrom('127.0.0.1'), 3);
      assert.equal(l.refused, 2);
    } finally {
      for (const c of socks) c.destroy();
      await l.close();
    }
  });

  it('rejects a failed listen with the bind error and its code (the node words the fix)', async () => {
    const taken = new HttpListener(() => undefined);
    const p = (await taken.listen({ address: '127.0.0.1', port: 0 })).port;
    try {
      await assert.rejects(new HttpListener(() => undefined).listen({ address: '127.0.0.1', port: p }), { code: 'EADDRINUSE' });
    } finally {
      await taken.close();
    }
  });
});
