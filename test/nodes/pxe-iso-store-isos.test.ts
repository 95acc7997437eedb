/**
 * The pxe-iso-store node's "More ISOs": further images served under path prefixes by whoever
 * acquires the store, described for TFTP workers (spec), named for boot events (isoName), offered
 * to the editor (menu-entries), and refused clearly when misconfigured.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
import isoStoreNode from '../../nodes/pxe-iso-store';
import type { IsoStoreNode } from '../../nodes/lib/store-node';
import type { RedNode } from '../../nodes/lib/red';
import { isoMounts } from '../../nodes/lib/store/mounted-store';
import { openStoreSpec } from '../../nodes/lib/store/open-store';
import { ensureFixtures, fixturePath } from '../fixtures/fixtures';

helper.init(require.resolve('node-red'));

describe('pxe-iso-store node with further ISOs', () => {
  const manifest = ensureFixtures();
  const current = fixturePath(manifest.isos.current!.file);
  const wiki = fixturePath(manifest.isos.wiki!.file);
  const old = fixturePath(manifest.isos['2021']!.file);
  before(() => helper.startServer());
  afterEach(() => helper.unload());
  after(() => helper.stopServer());

  it('serves each further ISO under its prefix (typed, or from the file name) and names the ISO of a path', async () => {
    await helper.load(isoStoreNode, [{ id: 'm1', type: 'pxe-iso-store', path: current, isos: [{ path: wiki, prefix: '/old-wiki/' }, { path: old, prefix: '' }, { path: '  ', prefix: 'ignored' }] }]);
    const node = helper.getNode('m1') as IsoStoreNode;
    assert.deepEqual(node.isos, [
      { prefix: 'old-wiki', source: wiki },
      { prefix: 'archiso-2021', source: old },
    ]);
    assert.deepEqual(node.spec().isos, node.isos);
    assert.equal(node.isoName('/old-wiki/arch/boot/x86_64/vmlinuz'), manifest.isos.wiki!.file);
    assert.equal(node.isoName('archiso-2021/arch/x86_64/airootfs.sfs'), manifest.isos['2021']!.file);
    assert.equal(node.isoName('/boot/syslinux/lpxelinux.0'), manifest.isos.current!.file);
    const user = { id: 'u' } as RedNode;
    const store = await node.acquire(user);
    try {
      assert.deepEqual(isoMounts(store).map((m) => m.prefix), ['old-wiki', 'archiso-2021']);
      assert.equal((await store.stat('old-wiki/arch/boot/syslinux/lpxelinux.0')).isDirectory, false);
      // A TFTP worker's copy from the spec serves the same.
      const copy = await openStoreSpec(node.spec());
      assert.equal((await copy.stat('archiso-2021/syslinux/lpxelinux.0')).size, (await store.stat('archiso-2021/syslinux/lpxelinux.0')).size);
      await copy.close();
    } finally {
      await node.release(user);
    }
    const res = await helper.request().get('/pxe-iso-store/menu-entries').query({ store: 'm1' }).expect(200);
    const labels = (res.body.entries as { label: string }[]).map((e) => e.label);
    for (const want of ['arch_nfs', 'old-wiki/arch64_nfs', 'archiso-2021/arch64_http']) assert.ok(labels.includes(want), `${want} in ${labels.join(' ')}`);
  });

  it('refuses a prefix used twice or one that hides the main ISO, at deploy and when a server acquires the store', async () => {
    for (const isos of [
      [{ path: wiki, prefix: 'x' }, { path: old, prefix: 'x' }],
      [{ path: wiki, prefix: 'arch' }],
    ]) {
      await helper.load(isoStoreNode, [{ id: 'm2', type: 'pxe-iso-store', path: current, isos }]);
      const node = helper.getNode('m2') as IsoStoreNode & { error: { args?: unknown } };
      await assert.rejects(node.acquire({ id: 'u' } as RedNode), /same prefix|hide the main ISO/);
      await helper.unload();
    }
  });
});
