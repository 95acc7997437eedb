// Registration with a portmapper that already owns the port ('auto' falls back to it, 'rpcbind'
// uses it): a stand-in portmapper on a random loopback port, built from the library's
// PortmapProgram, plays the system's rpcbind.
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dispatch, type RpcContext } from '../../nodes/lib/nfs/dispatch';
import { IPPROTO_TCP, IPPROTO_UDP } from '../../nodes/lib/nfs/nfs3-const';
import { isLoopback, pmapGetport, pmapSet, pmapUnset, PortmapProgram } from '../../nodes/lib/nfs/portmap';
import { encodeCall, messageOf, parseCall, parseReply } from '../../nodes/lib/nfs/rpc';
import { NfsServer } from '../../nodes/lib/nfs/server';
import { FolderStore } from '../../nodes/lib/store/folder-store';
import { tempDir, writeTree } from '../helpers/iso-images';
import * as C from './nfs-client';

/** A UDP portmapper on 127.0.0.1 (with a TCP listener on the same port, so the port is busy for both). */
async function standInPortmapper(): Promise<{ port: number; program: PortmapProgram; close(): Promise<void> }> {
  const program = new PortmapProgram();
  const tcp = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
  const port = (tcp.address() as net.AddressInfo).port;
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(port, '127.0.0.1', () => r()));
  const programs = new Map([[program.prog, program]]);
  udp.on('message', async (msg, rinfo) => {
    const p = parseCall(msg);
    if (p.kind !== 'call') return;
    const ctx: RpcContext = { transport: 'udp', address: rinfo.address, port: rinfo.port, maxReply: 65507 };
    const reply = await dispatch(programs, p.call, ctx, () => undefined);
    if (reply) udp.send(messageOf(reply), rinfo.port, rinfo.address);
  });
  return {
    port,
    program,
    close: async () => {
      await new Promise<void>((r) => udp.close(() => r()));
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}

describe('nfs portmapper registration', () => {
  let dir: string;
  let store: FolderStore;

  before(async () => {
    dir = tempDir('nfs-pmap');
    writeTree(path.join(dir, 'root'), { 'a.txt': 'a' });
    store = await new FolderStore(path.join(dir, 'root')).init();
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the client speaks PMAPPROC_SET / GETPORT / UNSET', async () => {
    const pm = await standInPortmapper();
    try {
      const opts = { port: pm.port };
      assert.equal(await pmapSet({ prog: 300001, vers: 1, prot: IPPROTO_UDP, port: 999 }, opts), true);
      assert.equal(await pmapSet({ prog: 300001, vers: 1, prot: IPPROTO_UDP, port: 998 }, opts), false);
      assert.equal(await pmapGetport(300001, 1, IPPROTO_UDP, opts), 999);
      assert.equal(await pmapUnset(300001, 1, opts), true);
      assert.equal(await pmapGetport(300001, 1, IPPROTO_UDP, opts), 0);
      assert.equal(await pmapUnset(300001, 1, opts), false);
    } finally {
      await pm.close();
    }
    // Nobody there: a PortmapError after the retries, not a hang.
    await assert.rejects(pmapGetport(1, 1, IPPROTO_UDP, { port: pm.port, timeoutMs: 50, tries: 2 }), /no answer/);
  });

  it("'auto' with the port taken registers NFS and MOUNT (v1-v3) over TCP and UDP there, and unregisters on close", async () => {
    const pm = await standInPortmapper();
    const server = new NfsServer({ store });
    try {
      const l = await server.listen({ address: '127.0.0.1', nfsPort: 0, mountPort: 0, portmapPort: pm.port });
      assert.deepEqual(l.portmap, { mode: 'rpcbind', port: pm.port });
      const maps = pm.program.mappings.map((m) => `${m.prog}/${m.vers}/${m.prot}/${m.port}`).sort();
      const want: string[] = [];
      for (const prot of [IPPROTO_TCP, IPPROTO_UDP]) {
        want.push(`100003/3/${prot}/${l.nfsPort}`);
        for (const v of [1, 2, 3]) want.push(`100005/${v}/${prot}/${l.mountPort}`);
      }
      assert.deepEqual(maps, want.sort());
      // A client finds MOUNT through the portmapper and mounts.
      const mport = await pmapGetport(100005, 3, IPPROTO_TCP, { port: pm.port });
      const mc = await C.TcpRpc.connect(mport);
      assert.equal((await C.mnt(mc, '/run/archiso/bootmnt')).status, 0);
      mc.destroy();
    } finally {
      await server.close();
    }
    assert.deepEqual(pm.program.mappings, []);
    await pm.close();
  });

  it('a stale registration (nothing listening there) is replaced; a live one is an EADDRINUSE error', async () => {
    const pm = await standInPortmapper();
    // Stale: a port where nothing listens.
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', () => r()));
    const deadPort = (dead.address() as net.AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    pm.program.set({ prog: 100003, vers: 3, prot: IPPROTO_TCP, port: deadPort });
    const s1 = new NfsServer({ store });
    const l1 = await s1.listen({ address: '127.0.0.1', nfsPort: 0, mountPort: 0, portmapPort: pm.port, portmap: 'rpcbind' });
    assert.equal(pm.program.getport(100003, 3, IPPROTO_TCP), l1.nfsPort);
    // Live: a second server finds the first one's registration and refuses to take it over.
    const s2 = new NfsServer({ store });
    const err = (await s2.listen({ address: '127.0.0.1', nfsPort: 0, mountPort: 0, portmapPort: pm.port, portmap: 'rpcbind' }).catch((e: unknown) => e)) as NodeJS.ErrnoException;
    assert.equal(err.code, 'EADDRINUSE');
    assert.match(err.message, /another server/);
    assert.equal(pm.program.getport(100003, 3, IPPROTO_TCP), l1.nfsPort); // untouched
    await s2.close();
    await s1.close();
    assert.deepEqual(pm.program.mappings, []);
    await pm.close();
  });

  it("'rpcbind' with no portmapper answering rejects listen() and leaves nothing bound", async () => {
    const pm = await standInPortmapper();
    const port = pm.port;
    await pm.close();
    const s = new NfsServer({ store });
    const t0 = Date.now();
    await assert.rejects(s.listen({ address: '127.0.0.1', nfsPort: 0, mountPort: 0, portmapPort: port, portmap: 'rpcbind' }), /no answer/);
    assert.ok(Date.now() - t0 < 5000);
    assert.equal(s.connectionCount, 0);
    await s.close();
  });

  it('SET and UNSET are refused from other addresses than loopback', async () => {
    const program = new PortmapProgram();
    const call = (proc: number, address: string): boolean => {
      const args = C.w().uint32(400000).uint32(1).uint32(IPPROTO_TCP).uint32(5).finish();
      const parsed = parseCall(encodeCall({ xid: 1, prog: 100000, vers: 2, proc, args }));
      assert.equal(parsed.kind, 'call');
      if (parsed.kind !== 'call') return false;
      const reply = messageOf(program.handle(parsed.call, { transport: 'udp', address, port: 1, maxReply: 65507 }));
      return C.body({ xid: 1, raw: reply, reply: parseReply(reply) }).bool();
    };
    assert.equal(call(1, '192.168.1.5'), false);
    assert.equal(program.mappings.length, 0);
    assert.equal(call(1, '127.0.0.1'), true);
    assert.equal(call(2, '10.0.0.1'), false);
    assert.equal(program.mappings.length, 1);
    assert.equal(call(2, '::1'), true);
    assert.ok(isLoopback('127.1.2.3') && isLoopback('::ffff:127.0.0.1') && !isLoopback('10.0.0.1'));
  });
});
