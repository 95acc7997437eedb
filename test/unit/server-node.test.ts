/**
 * The server nodes' shared lifecycle (nodes/lib/server-node.ts) with a stand-in node and store:
 * what a failed start gives back, what close waits for, and a close during the start.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { NodeStatus, RedApi, RedNode } from '../../nodes/lib/red';
import { parsePort, runServerNode, type Closeable } from '../../nodes/lib/server-node';
import type { IsoStoreNode } from '../../nodes/lib/store-node';
import type { FileStore } from '../../nodes/lib/store/types';

const RED = { _: (key: string, subs?: Record<string, unknown>) => (subs && 'port' in subs ? `${key}:${String(subs.port)}` : key) } as unknown as RedApi;

function fakeNode(): RedNode & { statuses: NodeStatus[]; errors: unknown[]; close(): Promise<void> } {
  const n = new EventEmitter() as unknown as RedNode & { statuses: NodeStatus[]; errors: unknown[]; close(): Promise<void> };
  n.id = 'n1';
  n.statuses = [];
  n.errors = [];
  n.status = (s) => void n.statuses.push(s);
  n.error = (e) => void n.errors.push(e);
  n.close = () => new Promise<void>((resolve) => n.emit('close', false, resolve));
  return n;
}

function fakeStore(opts: { acquire?: () => Promise<FileStore> } = {}): IsoStoreNode & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    acquire: async () => {
      log.push('acquire');
      return opts.acquire ? opts.acquire() : ({ source: '/x.iso', kind: 'iso' } as FileStore);
    },
    release: async () => void log.push('release'),
  } as unknown as IsoStoreNode & { log: string[] };
}

const closeable = (log: string[], name: string): Closeable => ({ close: async () => void log.push(`close ${name}`) });

describe('server node lifecycle', () => {
  it('parses ports one way: the default when empty, whole numbers in range', () => {
    assert.equal(parsePort('', 69), 69);
    assert.equal(parsePort(undefined, 69), 69);
    assert.equal(parsePort('6969', 69), 6969);
    for (const bad of ['x', '0', '65536', '1.5', -1]) assert.equal(parsePort(bad, 69), undefined, String(bad));
    assert.equal(parsePort('0', 80, 0), 0);
  });

  it('a bad setting fails before the store is taken', async () => {
    const node = fakeNode();
    const store = fakeStore();
    const { ready } = runServerNode(RED, node, { type: 't', store, check: (fail) => fail('badConfig', 'port', { port: 'x' }), start: async () => undefined });
    await ready;
    assert.deepEqual(store.log, []);
    assert.deepEqual(node.statuses.at(-1), { fill: 'red', shape: 'ring', text: 't.status.badConfig:x' });
    assert.deepEqual(node.errors, ['t.errors.port:x']);
  });

  it('no store chosen is a noStore failure; a store that cannot open is storeError', async () => {
    const a = fakeNode();
    await runServerNode(RED, a, { type: 't', store: null, start: async () => undefined }).ready;
    assert.equal(a.statuses.at(-1)?.text, 't.status.noStore');
    const b = fakeNode();
    const broken = fakeStore({ acquire: () => Promise.reject(new Error('gone')) });
    await runServerNode(RED, b, { type: 't', store: broken, start: async () => undefined }).ready;
    assert.equal(b.statuses.at(-1)?.text, 't.status.storeError');
    await b.close();
    // The user that failed to open is released (SharedResource forgets it), once.
    assert.deepEqual(broken.log, ['acquire', 'release']);
  });

  it('a failed listen closes what the start opened, last first, and gives the store back before the red dot', async () => {
    const node = fakeNode();
    const store = fakeStore();
    let started = false;
    const { ready } = runServerNode(RED, node, {
      type: 't',
      store,
      start: async ({ own, listen }) => {
        own(closeable(store.log, 'export'));
        own(closeable(store.log, 'server'));
        await listen(Promise.reject(Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' })), { port: 69, address: '' });
      },
      started: () => (started = true),
    });
    await ready;
    assert.equal(started, false);
    assert.deepEqual(store.log, ['acquire', 'close server', 'close export', 'release']);
    assert.deepEqual(node.statuses.at(-1), { fill: 'red', shape: 'ring', text: 't.status.inUse:69' });
    assert.deepEqual(node.errors, ['t.errors.inUse:69']);
    await node.close();
    assert.deepEqual(store.log, ['acquire', 'close server', 'close export', 'release'], 'nothing is released twice');
  });

  it('close waits for the start, closes the server, releases the store and clears the status', async () => {
    const node = fakeNode();
    const store = fakeStore();
    const closing: string[] = [];
    let served: unknown;
    const { ready } = runServerNode(RED, node, {
      type: 't',
      store,
      start: async ({ own, store: s }) => {
        own(closeable(store.log, 'server'));
        return s.source;
      },
      started: (s) => (served = s),
      closing: () => closing.push('closing'),
    });
    await ready;
    assert.deepEqual(store.log, ['acquire']);
    await node.close();
    assert.equal(served, '/x.iso');
    assert.deepEqual(closing, ['closing']);
    assert.deepEqual(store.log, ['acquire', 'close server', 'release']);
    assert.deepEqual(node.statuses.at(-1), {});
  });

  it('a close during the start stops it at the next step and still releases everything', async () => {
    const node = fakeNode();
    let open!: () => void;
    const store = fakeStore({ acquire: () => new Promise((resolve) => (open = () => resolve({ source: '/x.iso' } as FileStore))) });
    let startCalled = false;
    runServerNode(RED, node, { type: 't', store, start: async () => void (startCalled = true) });
    await new Promise((r) => setImmediate(r));
    const closed = node.close();
    open();
    await closed;
    assert.equal(startCalled, false);
    assert.deepEqual(store.log, ['acquire', 'release']);
  });

  it('an unexpected error shows the node\'s errorStatus and logs its message', async () => {
    const node = fakeNode();
    await runServerNode(RED, node, { type: 't', start: () => Promise.reject(new Error('boom')), errorStatus: 'error' }).ready;
    assert.deepEqual(node.statuses.at(-1), { fill: 'red', shape: 'ring', text: 't.status.error' });
    assert.deepEqual(node.errors, ['boom']);
  });
});
