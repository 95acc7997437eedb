import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
import isoStoreNode from '../../nodes/pxe-iso-store';
import type { IsoStoreNode } from '../../nodes/lib/store-node';
import type { RedNode } from '../../nodes/lib/red';

helper.init(require.resolve('node-red'));

describe('pxe-iso-store node in a Node-RED runtime', () => {
  let dir: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-store-node-'));
    fs.mkdirSync(path.join(dir, 'boot'));
    fs.writeFileSync(path.join(dir, 'boot', 'hello.txt'), 'hello');
    await helper.startServer();
  });
  afterEach(() => helper.unload());
  after(async () => {
    await helper.stopServer();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('shares one store between users and closes it after the last one leaves', async () => {
    await helper.load(isoStoreNode, [{ id: 's1', type: 'pxe-iso-store', path: dir }]);
    const node = helper.getNode('s1') as IsoStoreNode;
    assert.equal(node.source, dir);
    const a = { id: 'a' } as RedNode;
    const b = { id: 'b' } as RedNode;
    const s1 = await node.acquire(a);
    const s2 = await node.acquire(b);
    assert.equal(s1, s2, 'both users get the same store');
    assert.equal((await s1.stat('/boot/hello.txt')).size, 5);
    await node.release(a);
    assert.equal((await s2.stat('boot//hello.txt')).size, 5, 'still usable by the remaining user');
    await node.release(b);
    const s3 = await node.acquire(a);
    assert.notEqual(s3, s1, 'reopened after the last user left');
    await node.release(a);
  });

  it('reports a missing path when a user acquires it', async () => {
    await helper.load(isoStoreNode, [{ id: 's2', type: 'pxe-iso-store', path: path.join(dir, 'missing') }]);
    const node = helper.getNode('s2') as IsoStoreNode;
    await assert.rejects(node.acquire({ id: 'x' } as RedNode), /does not exist/);
  });

  it('answers the editor inspection endpoint', async () => {
    await helper.load(isoStoreNode, [{ id: 's3', type: 'pxe-iso-store', path: dir }]);
    const ok = await helper.request().get('/pxe-iso-store/inspect').query({ path: dir }).expect(200);
    assert.equal(ok.body.ok, true);
    assert.equal(ok.body.kind, 'folder');
    assert.deepEqual(ok.body.rootEntries, ['boot/']);
    const bad = await helper.request().get('/pxe-iso-store/inspect').query({ path: '/nonexistent/x.iso' }).expect(200);
    assert.equal(bad.body.ok, false);
    assert.match(bad.body.error, /does not exist/);
  });
});
