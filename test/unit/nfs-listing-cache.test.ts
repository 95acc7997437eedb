// The READDIR listing cache of Nfs3Program on its own (no sockets): a listing past its TTL that
// the store still lists the same way keeps its verifier, entries and encodings; a changed
// directory gets a new verifier and the old one with a cookie is refused (NFS3ERR_BAD_COOKIE);
// the cache holds at most MAX_LISTINGS directories.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FileCache } from '../../nodes/lib/nfs/file-cache';
import { HandleIndex } from '../../nodes/lib/nfs/handles';
import { LISTING_TTL_MS, MAX_LISTINGS, Nfs3Program } from '../../nodes/lib/nfs/nfs3';
import { NFS3ERR_BAD_COOKIE } from '../../nodes/lib/nfs/nfs3-const';
import * as R from '../../nodes/lib/nfs/rpc';
import type { RpcContext } from '../../nodes/lib/nfs/dispatch';
import * as C from './nfs-client';
import { memStore } from './nfs-memstore';

const ctx: RpcContext = { transport: 'tcp', address: '127.0.0.1', port: 1, maxReply: 2 * 1024 * 1024 };

/** An Rpc that hands calls straight to the program. */
function direct(prog: Nfs3Program): C.Rpc {
  let xid = 1;
  return {
    async call(p: number, v: number, proc: number, args: Buffer = Buffer.alloc(0)) {
      const msg = R.encodeCall({ xid: xid++, prog: p, vers: v, proc, args });
      const parsed = R.parseCall(msg);
      assert.equal(parsed.kind, 'call');
      const reply = await prog.handle((parsed as { call: R.RpcCall }).call, ctx);
      const raw = R.messageOf(reply!);
      return { xid: raw.readUInt32BE(0), raw, reply: R.parseReply(raw) };
    },
  };
}

function setup(files: Record<string, number>) {
  const store = memStore(files);
  const handles = new HandleIndex(store);
  const prog = new Nfs3Program({ store, handles, files: new FileCache(store) });
  return { store, handles, prog, rpc: direct(prog), root: handles.handleOf('') };
}

/** Lets the cached listings expire without waiting: Date.now runs `by` ms ahead. */
function advance(by: number): () => void {
  const real = Date.now;
  const base = real();
  const start = real.call(Date);
  Date.now = () => real.call(Date) - start + base + by;
  return () => {
    Date.now = real;
  };
}

describe('nfs READDIR listing cache', () => {
  it('an unchanged directory keeps its verifier past the TTL without rebuilding; a changed one gets a new verifier and stale cookies are refused', async () => {
    const files: Record<string, number> = {};
    for (let i = 0; i < 40; i++) files[`d/f${i}`] = i;
    const { store, rpc, root, prog } = setup(files);
    const d = (await C.lookup(rpc, root, 'd')).fh!;
    const first = await C.readdir(rpc, d, 0n, Buffer.alloc(8), 1024, true);
    assert.equal(first.status, 0);
    const cookie = first.entries[first.entries.length - 1]!.cookie;
    assert.equal(store.lists, 1);

    let restore = advance(LISTING_TTL_MS + 10);
    try {
      const again = await C.readdir(rpc, d, cookie, first.verf!, 1024, true);
      assert.equal(again.status, 0);
      assert.equal(store.lists, 2); // listed again (the TTL), found unchanged: not rebuilt
      assert.equal(prog.listingsBuilt, 1);
      assert.deepEqual(again.verf, first.verf);
      const all = await C.readdirAll(rpc, d, 4096, true);
      assert.deepEqual(all.entries.slice(2).map((e) => e.name), Object.keys(files).map((f) => f.slice(2)).sort());
    } finally {
      restore();
    }

    // The directory changes: past the TTL, the old verifier with a cookie is refused.
    files['d/new'] = 1;
    restore = advance(2 * LISTING_TTL_MS + 20);
    try {
      const stale = await C.readdir(rpc, d, cookie, first.verf!, 1024, true);
      assert.equal(stale.status, NFS3ERR_BAD_COOKIE);
      const fresh = await C.readdir(rpc, d, 0n, Buffer.alloc(8), 64 * 1024, false);
      assert.notDeepEqual(fresh.verf, first.verf);
      assert.ok(fresh.entries.some((e) => e.name === 'new'));
      assert.equal(prog.listingsBuilt, 2);
      // A changed size alone changes the verifier too.
      files['d/f1'] = 1000;
    } finally {
      restore();
    }
    restore = advance(3 * LISTING_TTL_MS + 30);
    try {
      const page = await C.readdir(rpc, d, 0n, Buffer.alloc(8), 64 * 1024, true);
      assert.equal(page.entries.find((e) => e.name === 'f1')!.attrs!.size, 1000n);
      assert.equal((await C.readdir(rpc, d, cookie, first.verf!, 1024, true)).status, NFS3ERR_BAD_COOKIE);
    } finally {
      restore();
    }
  });

  it(`holds at most MAX_LISTINGS (${MAX_LISTINGS}) directories`, async () => {
    const files: Record<string, number> = {};
    const dirs = MAX_LISTINGS + 20;
    for (let i = 0; i < dirs; i++) files[`d${i}/f`] = 1;
    const { store, rpc, root, prog } = setup(files);
    const fhs: Buffer[] = [];
    for (let i = 0; i < dirs; i++) fhs.push((await C.lookup(rpc, root, `d${i}`)).fh!);
    for (const fh of fhs) assert.equal((await C.readdir(rpc, fh, 0n, Buffer.alloc(8), 4096, false)).status, 0);
    assert.equal(store.lists, dirs);
    assert.equal(prog.cachedListings, MAX_LISTINGS);
    // The newest are still cached (no new listing), the oldest were dropped (listed again).
    await C.readdir(rpc, fhs[dirs - 1]!, 0n, Buffer.alloc(8), 4096, false);
    assert.equal(store.lists, dirs);
    await C.readdir(rpc, fhs[0]!, 0n, Buffer.alloc(8), 4096, false);
    assert.equal(store.lists, dirs + 1);
    assert.equal(prog.cachedListings, MAX_LISTINGS);
  });
});
