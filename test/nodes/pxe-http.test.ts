import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
import httpNode from '../../nodes/pxe-http';
import storeNode from '../../nodes/pxe-iso-store';
import { writeTree, xorrisoImage } from '../helpers/iso-images';
import { ensureFixtures, fixturePath } from '../fixtures/fixtures';
import { waitFor, withLocale } from './node-helpers';

helper.init(require.resolve('node-red'));

interface Msg {
  topic: string;
  payload: Record<string, unknown>;
}

function get(port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });
}

describe('pxe-http node', () => {
  let dir: string;
  const big = Buffer.alloc(3 * 1024 * 1024 + 1, 7);

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-http-node-'));
    fs.writeFileSync(path.join(dir, 'hello.txt'), 'hello');
    fs.writeFileSync(path.join(dir, 'big.bin'), big);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    await helper.unload();
  });

  const flow = (extra: Record<string, unknown>) => [
    { id: 's1', type: 'pxe-iso-store', path: dir },
    { id: 'h1', type: 'pxe-http', name: 'http', store: 's1', mode: 'listen', address: '127.0.0.1', port: 0, progressStep: 25, wires: [['out']], ...extra },
    { id: 'out', type: 'helper' },
  ];

  it('serves the store on its own listener and reports request, progress, done; closing frees the port', async () => {
    await helper.load([storeNode, httpNode], flow({}));
    const n = helper.getNode('h1');
    await n.ready;
    const port = n.boundPort as number;
    assert.ok(port > 0);
    const msgs: Msg[] = [];
    const out = helper.getNode('out');
    const finished = new Promise<void>((resolve) =>
      out.on('input', (m: Msg) => {
        msgs.push(m);
        if (m.topic === 'http/done' && m.payload.path === '/big.bin') resolve();
      }),
    );
    const r = await get(port, '/big.bin');
    assert.equal(r.status, 200);
    assert.equal(r.body.length, big.length);
    await finished;
    const topics = msgs.filter((m) => m.payload.path === '/big.bin').map((m) => m.topic);
    assert.equal(topics[0], 'http/request');
    assert.equal(topics.at(-1), 'http/done');
    const pcts = msgs.filter((m) => m.topic === 'http/progress').map((m) => m.payload.percent);
    assert.equal(pcts.at(-1), 100);
    assert.deepEqual(pcts, [...pcts].sort((a, b) => Number(a) - Number(b)));
    const done = msgs.at(-1)!.payload;
    assert.equal(done.bytes, big.length);
    assert.equal(done.client, '127.0.0.1');
    assert.ok(Number(done.throughput) > 0);
    // Access log at debug level.
    assert.ok(n.debug.getCalls().some((c: { args: unknown[] }) => String(c.args[0]).includes('"GET /big.bin HTTP/1.1" 200')));
    const missing = await get(port, '/nope');
    assert.equal(missing.status, 404);
    await helper.unload();
    assert.equal(await refused(port), true, 'the listener is closed after the node closes');
  });

  it('reports a missing file as http/error and keeps a green status when idle', async () => {
    await helper.load([withLocale, storeNode, httpNode], flow({}));
    const n = helper.getNode('h1');
    await n.ready;
    const errMsg = new Promise<Msg>((resolve) => helper.getNode('out').on('input', (m: Msg) => m.topic === 'http/error' && resolve(m)));
    await get(n.boundPort, '/missing.img');
    const m = await errMsg;
    assert.equal(m.payload.status, 404);
    assert.equal(m.payload.path, '/missing.img');
    const last = n.status.lastCall.args[0];
    assert.equal(last.fill, 'green');
    assert.ok(last.text.length < 20);
  });

  it('shows the downloads in flight and their rate on its status dot, then idle again', async () => {
    const huge = path.join(dir, 'huge.bin');
    fs.writeFileSync(huge, Buffer.alloc(48 * 1024 * 1024, 3));
    try {
      await helper.load([withLocale, storeNode, httpNode], flow({ progressStep: 1 }));
      const n = helper.getNode('h1');
      await n.ready;
      const port = n.boundPort as number;
      const idleText = `listening :${port}`;
      assert.equal(n.status.lastCall.args[0].text, idleText);
      // Two downloads whose clients read slowly: both stay in flight for seconds.
      const reads: Promise<number>[] = [];
      const busy = waitFor(n, 'status', (a) => /^2 active, [\d.]+ [kMG]?B\/s$/.test(String((a[0] as { text?: string }).text)), 8000);
      for (let i = 0; i < 2; i++) {
        reads.push(
          new Promise<number>((resolve, reject) => {
            http
              .get({ host: '127.0.0.1', port, path: '/huge.bin', agent: false }, (res) => {
                let got = 0;
                res.on('data', (d: Buffer) => {
                  got += d.length;
                  // About 8 MB/s per download: the 48 MB take ~6 s.
                  res.pause();
                  setTimeout(() => res.resume(), Math.ceil(d.length / 8000));
                });
                res.on('end', () => resolve(got));
              })
              .on('error', reject);
          }),
        );
      }
      const [busyArgs] = await busy;
      assert.equal((busyArgs as { fill: string }).fill, 'blue');
      // The rate comes from the service's progress reports: not zero while bytes flow.
      const rates = n.status.getCalls().map((c: { args: [{ text?: string }] }) => String(c.args[0].text)).filter((t: string) => /active/.test(t));
      await waitFor(n, 'status', (a) => /active, [1-9][\d.]* [kMG]?B\/s$/.test(String((a[0] as { text?: string }).text)), 8000).catch(() => assert.fail(`no rate shown: ${rates.join(' | ')}`));
      assert.deepEqual(await Promise.all(reads), [48 * 1024 * 1024, 48 * 1024 * 1024]);
      // Nothing in flight: back to the idle text.
      if (n.status.lastCall.args[0].text !== idleText) await waitFor(n, 'status', (a) => (a[0] as { text?: string }).text === idleText, 3000);
      assert.equal(n.status.lastCall.args[0].fill, 'green');
    } finally {
      fs.rmSync(huge, { force: true });
    }
  });

  it('mounts on Node-RED own web server and removes its route on close', async () => {
    let app: http.RequestListener | undefined;
    const capture = (RED: { httpNode: http.RequestListener }): void => {
      app = RED.httpNode;
    };
    await helper.load([storeNode, httpNode, capture], flow({ mode: 'httpNode', path: '/pxe/' }));
    await helper.getNode('h1').ready;
    const server = http.createServer((req, res) => app!(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const r = await get(port, '/pxe/hello.txt');
      assert.equal(r.status, 200);
      assert.equal(r.body, 'hello');
      assert.equal((await get(port, '/pxe/../../hello.txt')).status, 400); // refused by the store rules
      assert.equal((await get(port, '/pxe/%2e%2e/x')).status, 400);
      assert.equal(helper.getNode('h1').status.lastCall.args[0].fill, 'green');
      await helper.unload();
      assert.equal((await get(port, '/pxe/hello.txt')).status, 404, 'the route is gone');
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('shows a red status and names the fix when the port is taken', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await helper.load([withLocale, storeNode, httpNode], flow({ port }));
      const n = helper.getNode('h1');
      await n.ready;
      assert.deepEqual(n.status.lastCall.args[0], { fill: 'red', shape: 'ring', text: `port ${port} in use` });
      assert.match(String(n.error.lastCall.args[0]), /already in use.*another port/);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it('answers store errors with a generic text and warns once with the details (which name server paths)', async () => {
    const iso = path.join(dir, 'image.iso');
    const src = path.join(dir, 'image-src');
    writeTree(src, { 'boot/hello.txt': 'hello' });
    xorrisoImage(src, iso);
    await helper.load([storeNode, httpNode], [{ id: 's1', type: 'pxe-iso-store', path: iso }, { id: 'h1', type: 'pxe-http', store: 's1', mode: 'listen', address: '127.0.0.1', port: 0, wires: [] }]);
    const n = helper.getNode('h1');
    await n.ready;
    assert.equal((await get(n.boundPort, '/boot/hello.txt')).body, 'hello');
    // The image is replaced by something that is not one: the store's error names the image's path.
    fs.writeFileSync(iso, Buffer.alloc(64 * 1024, 0x41));
    await new Promise((r) => setTimeout(r, 1100)); // the store re-checks its image every second
    for (let i = 0; i < 3; i++) {
      const r = await get(n.boundPort, '/boot/hello.txt');
      assert.equal(r.status, 500);
      assert.doesNotMatch(r.body, new RegExp(dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
      assert.doesNotMatch(r.body, /image\.iso|CD001/);
    }
    const warnings = n.warn.getCalls().map((c: { args: unknown[] }) => String(c.args[0]));
    assert.equal(warnings.length, 1, warnings.join('\n'));
  });

  it('asks for a store when none is selected', async () => {
    await helper.load([withLocale, storeNode, httpNode], [{ id: 'h1', type: 'pxe-http', store: '', mode: 'listen', port: 0, wires: [] }]);
    const n = helper.getNode('h1');
    await n.ready;
    assert.deepEqual(n.status.lastCall.args[0], { fill: 'red', shape: 'ring', text: 'no store' });
    assert.match(String(n.error.lastCall.args[0]), /No pxe-iso-store selected/);
  });

  it("iPXE menu: the script offers the ISO's entries and boots the chosen one after the timeout; a choice without an entry is refused", async () => {
    const iso = fixturePath(ensureFixtures().isos.current!.file);
    await helper.load(
      [withLocale, storeNode, httpNode],
      [
        { id: 's9', type: 'pxe-iso-store', path: iso },
        { id: 'h1', type: 'pxe-http', store: 's9', mode: 'listen', address: '127.0.0.1', port: 0, ipxeMenu: 'timeout', ipxeEntry: 'arch_nbd', ipxeSeconds: 3, wires: [] },
        { id: 'h2', type: 'pxe-http', store: 's9', mode: 'listen', address: '127.0.0.1', port: 0, ipxeMenu: 'now', ipxeEntry: '', wires: [] },
      ],
    );
    const n = helper.getNode('h1');
    await n.ready;
    const r = await get(n.boundPort as number, '/boot.ipxe');
    assert.equal(r.status, 200);
    assert.match(r.body, /^item e_arch_nfs /m);
    assert.match(r.body, /^choose --default e_arch_nbd --timeout 3000 /m);
    assert.match(r.body, /archiso_nbd_srv=127\.0\.0\.1 /);
    const bad = helper.getNode('h2');
    await bad.ready;
    // (The test helper's spies are shared by the nodes of a flow: look through all calls.)
    assert.ok(bad.error.args.some((a: unknown[]) => /Choose the menu entry/.test(String(a[0]))), JSON.stringify(bad.error.args));
    assert.ok(bad.status.args.some((a: { fill?: string }[]) => a[0]?.fill === 'red'));
  });
});
