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
    assert.equal(ok.body.rootEntries, undefined, "a folder's contents are not listed");
    assert.equal(ok.body.archiso.detected, false);
    const bad = await helper.request().get('/pxe-iso-store/inspect').query({ path: '/nonexistent/x.iso' }).expect(200);
    assert.equal(bad.body.ok, false);
    // The helper's runtime does not translate: the locale key stands for the message.
    assert.match(bad.body.error, /^pxe-iso-store\.errors\.inspect$|does not exist/);
  });
});

describe('pxe-iso-store inspect endpoint permissions', () => {
  // Node-RED's own permission check, as its needsPermission applies it with adminAuth on.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { hasPermission } = require('@node-red/editor-api/lib/auth/permissions') as { hasPermission(scope: string | string[], p: string): boolean };
  type Handler = (req: unknown, res: unknown, next: () => void) => void;

  /** Registers the node type against a stand-in runtime and returns the inspect route's handlers. */
  function inspectRoute(): { permission: string; call(scope: string, query: Record<string, string>): Promise<{ status: number; body: unknown }> } {
    let permission = '';
    let handlers: Handler[] = [];
    const red = {
      nodes: { createNode: () => undefined, registerType: () => undefined, getNode: () => null },
      httpAdmin: {
        get: (p: string, ...h: Handler[]) => {
          if (p === '/pxe-iso-store/inspect') handlers = h;
        },
        post: () => undefined,
      },
      auth: {
        needsPermission: (perm: string): Handler => {
          permission = perm;
          return (req, res, next) => {
            const scope = (req as { user: { permissions: string } }).user.permissions;
            if (hasPermission(scope, perm)) next();
            else (res as { status(n: number): { end(): void } }).status(401).end();
          };
        },
      },
      settings: {},
      log: { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined },
      _: (key: string, subs?: Record<string, unknown>) => `${key} ${JSON.stringify(subs ?? {})}`,
    };
    (isoStoreNode as unknown as (r: unknown) => void)(red);
    return {
      get permission() {
        return permission;
      },
      call: (scope, query) =>
        new Promise((resolve) => {
          let status = 200;
          const res = {
            status(n: number) {
              status = n;
              return res;
            },
            end: () => resolve({ status, body: undefined }),
            json: (body: unknown) => resolve({ status, body }),
            send: (body: unknown) => resolve({ status, body }),
          };
          const req = { user: { permissions: scope }, query, params: {} };
          let i = 0;
          const next = (): void => handlers[i++]!(req, res, next);
          next();
        }),
    };
  }

  it('needs the write permission of the node type: a read-only editor user is refused', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-store-perm-'));
    try {
      const route = inspectRoute();
      assert.equal(route.permission, 'pxe-iso-store.write');
      assert.equal((await route.call('read', { path: dir })).status, 401);
      const full = await route.call('*', { path: dir });
      assert.equal(full.status, 200);
      assert.equal((full.body as { ok: boolean }).ok, true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
