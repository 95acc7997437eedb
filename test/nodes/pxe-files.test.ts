import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { NodeMessage, RedNode } from '../../nodes/lib/red';
import filesNode from '../../nodes/pxe-files';
import httpNode from '../../nodes/pxe-http';
import storeNode from '../../nodes/pxe-iso-store';
import tftpNode from '../../nodes/pxe-tftp';
import { get as tftpGet, TestClient } from '../unit/tftp-helpers';
import { waitFor } from './node-helpers';

interface TestHelper {
  init(runtimePath: string): void;
  settings(s: object): void;
  load(nodes: unknown[], flow: object[]): Promise<void>;
  unload(): Promise<void>;
  getNode(id: string): unknown;
  startServer(): Promise<void>;
  stopServer(): Promise<void>;
  request(): { get(p: string): { expect(code: number): Promise<{ body: { ok: boolean; files: { path: string; size: number }[] } }> } };
}
// eslint-disable-next-line @typescript-eslint/no-require-imports -- untyped CommonJS module
const helper = require('node-red-node-test-helper') as TestHelper;
helper.init(require.resolve('node-red'));

function httpGet(port: number, p: string): Promise<{ status: number; body: string }> {
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

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('pxe-files node: files from the flow, served by HTTP and TFTP', () => {
  let dir: string;
  let userDir: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-files-node-'));
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-files-userdir-'));
    fs.mkdirSync(path.join(dir, 'boot'));
    fs.writeFileSync(path.join(dir, 'boot', 'menu.cfg'), 'from the image');
    helper.settings({ userDir });
    await helper.startServer();
  });
  afterEach(() => helper.unload());
  after(async () => {
    await helper.stopServer();
    helper.settings({});
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  async function load(tftpPort: number): Promise<{ files: RedNode; results: NodeMessage[]; httpPort: number }> {
    await helper.load(
      [storeNode, filesNode, httpNode, tftpNode],
      [
        { id: 's1', type: 'pxe-iso-store', path: dir },
        { id: 'f1', type: 'pxe-files', store: 's1', wires: [['out']] },
        { id: 'out', type: 'helper' },
        { id: 'h1', type: 'pxe-http', store: 's1', mode: 'listen', address: '127.0.0.1', port: 0 },
        { id: 't1', type: 'pxe-tftp', store: 's1', address: '127.0.0.1', port: tftpPort },
      ],
    );
    const h1 = helper.getNode('h1') as { ready: Promise<void>; boundPort: number };
    await h1.ready;
    const t1 = helper.getNode('t1') as RedNode;
    const statuses = (t1.status as unknown as { args: unknown[][] }).args;
    const listening = ([st]: unknown[]): boolean => (st as { text?: string }).text === 'pxe-tftp.status.listening';
    if (!statuses.some(listening)) await waitFor(t1, 'status', listening);
    const results: NodeMessage[] = [];
    (helper.getNode('out') as RedNode).on('input', (m: NodeMessage) => results.push(m));
    return { files: helper.getNode('f1') as RedNode, results, httpPort: h1.boundPort };
  }

  const send = async (node: RedNode, msg: NodeMessage, results: NodeMessage[]): Promise<NodeMessage> => {
    const n = results.length;
    (node as RedNode & { receive(m: NodeMessage): void }).receive(msg);
    for (let i = 0; i < 200 && results.length === n; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(results.length > n, `no answer to ${msg.topic}`);
    return results[results.length - 1]!;
  };

  it('publishes a script and shadows an image file, over HTTP and TFTP, and keeps them across a redeploy', async () => {
    const tftpPort = await freeUdpPort();
    let { files, results, httpPort } = await load(tftpPort);
    const set = await send(files, { topic: 'file/set', path: '/install.sh', payload: '#!/bin/sh\necho installed\n' }, results);
    assert.deepEqual([(set.payload as { path: string }).path, (set.payload as { size: number }).size], ['/install.sh', 25]);
    await send(files, { topic: 'file/set', path: 'boot/menu.cfg', payload: Buffer.from('from the flow') }, results);

    assert.deepEqual(await httpGet(httpPort, '/install.sh'), { status: 200, body: '#!/bin/sh\necho installed\n' });
    assert.equal((await httpGet(httpPort, '/boot/menu.cfg')).body, 'from the flow');
    const c = await TestClient.open();
    try {
      assert.equal((await tftpGet(c, tftpPort, '/boot/menu.cfg')).data?.toString(), 'from the flow');
    } finally {
      await c.close();
    }

    const list = await send(files, { topic: 'file/list' }, results);
    assert.deepEqual((list.payload as { path: string }[]).map((f) => f.path), ['/boot/menu.cfg', '/install.sh']);
    const listed = await helper.request().get('/pxe-files/s1').expect(200);
    assert.deepEqual(listed.body.files.map((f) => f.path), ['/boot/menu.cfg', '/install.sh']);

    // A redeploy (the runtime stops and starts every node): the files are still served.
    await helper.unload();
    ({ files, results, httpPort } = await load(tftpPort));
    assert.equal((await httpGet(httpPort, '/install.sh')).status, 200);
    const del = await send(files, { topic: 'file/delete', path: '/boot/menu.cfg' }, results);
    assert.deepEqual(del.payload, { path: '/boot/menu.cfg', deleted: true });
    assert.equal((await httpGet(httpPort, '/boot/menu.cfg')).body, 'from the image');
    await send(files, { topic: 'file/delete', path: '/install.sh' }, results);
    assert.equal((await httpGet(httpPort, '/install.sh')).status, 404);
  });

  it('refuses bad messages with a catchable error and sends nothing', async () => {
    const { files, results } = await load(await freeUdpPort());
    const refusals: [NodeMessage, RegExp][] = [
      [{ topic: 'file/set', path: '../../etc/passwd', payload: 'x' }, /pxe-files.errors.refused/],
      [{ topic: 'file/set', path: 'a\0b', payload: 'x' }, /pxe-files.errors.refused/],
      [{ topic: 'file/set', path: 'big.bin', payload: Buffer.alloc(10 * 1024 * 1024) }, /pxe-files.errors.refused/],
      [{ topic: 'file/set', path: 'obj', payload: { not: 'a file' } }, /pxe-files.errors.payload/],
      [{ topic: 'file/rename', path: 'x' }, /pxe-files.errors.topic/],
    ];
    for (const [msg, re] of refusals) {
      const err = waitFor(files, 'error', () => true);
      (files as RedNode & { receive(m: NodeMessage): void }).receive(msg);
      const [e] = await err;
      assert.match(String(e), re);
    }
    assert.equal(results.length, 0);
    assert.equal(fs.existsSync(path.join(userDir, 'pxe-files', 's1', 'big.bin')), false);
  });
});
