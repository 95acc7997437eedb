/**
 * Raw RPC client scenarios for the NFS lab test, run inside the client namespace:
 *   nfs-probe.ts '<json>'   with {"op": ..., "host": ..., ...}
 * Prints JSON lines: {"holding":...} (slowread/flood, while connections are held) and finally
 * {"result":...}, or {"error":...} with exit code 1.
 *
 * ops: handles, dotdot, writes, rpcerrors, fuzz, flood, slowread, udpread, fsinfo (see each below).
 */
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import {
  ACCEPT,
  AUTH_NONE,
  authSys,
  create,
  encodeCall,
  getattr,
  lookup,
  lookupPath,
  mnt,
  newXid,
  PROG,
  read,
  readArgs,
  readdirAll,
  recordMark,
  RpcFailure,
  RpcTcp,
  RpcUdp,
  write,
  XdrWriter,
  type Reply,
  type RpcClient,
} from './nfs-rpc';

interface Opts {
  op: string;
  host: string;
  nfsPort?: number;
  mountPort?: number;
  port?: number;
  proto?: 'tcp' | 'udp';
  export?: string;
  file?: string;
  dir?: string;
  seed?: number;
  count?: number;
  conns?: number;
  reads?: number;
  readSize?: number;
  holdMs?: number;
  timeMs?: number;
  chunk?: number;
}

const o = JSON.parse(process.argv[2] ?? '{}') as Opts;
const out = (x: unknown): void => void process.stdout.write(JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)) + '\n');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What a call came back with, in one comparable word. */
function describe(rep: Reply): string {
  if (rep.kind === 'denied') return rep.rejectStat === 0 ? `RPC_MISMATCH(${rep.mismatch?.low},${rep.mismatch?.high})` : `AUTH_ERROR(${rep.authStat})`;
  const names = ['SUCCESS', 'PROG_UNAVAIL', 'PROG_MISMATCH', 'PROC_UNAVAIL', 'GARBAGE_ARGS', 'SYSTEM_ERR'];
  const n = names[rep.acceptStat!] ?? `ACCEPT_${rep.acceptStat}`;
  return rep.mismatch ? `${n}(${rep.mismatch.low},${rep.mismatch.high})` : n;
}

/** NFS status of a call, or the RPC-level outcome when the call was not accepted. */
async function status<T extends { status: number }>(p: Promise<T>): Promise<number | string> {
  try {
    return (await p).status;
  } catch (err) {
    if (err instanceof RpcFailure) return describe(err.reply);
    return `error: ${(err as Error).message}`;
  }
}

async function tcp(port: number): Promise<RpcTcp> {
  return RpcTcp.connect(o.host, port);
}

async function rootHandle(): Promise<{ m: RpcTcp; n: RpcTcp; root: Buffer }> {
  const m = await tcp(o.mountPort!);
  const r = await mnt(m, o.export!);
  if (r.status !== 0) throw new Error(`MNT ${o.export} → ${r.status}`);
  const n = await tcp(o.nfsPort!);
  return { m, n, root: r.fh! };
}

/** Forged and damaged file handles: every call must come back BADHANDLE/STALE, never a fault. */
async function handles(): Promise<unknown> {
  const { m, n, root } = await rootHandle();
  const file = await lookupPath(n, root, o.file!);
  if (file.status !== 0) throw new Error(`LOOKUP ${o.file} → ${file.status}`);
  const fh = file.fh!;
  const forged: { kind: string; fh: Buffer }[] = [
    { kind: 'empty', fh: Buffer.alloc(0) },
    { kind: 'zeros-same-length', fh: Buffer.alloc(fh.length) },
    { kind: 'random-same-length', fh: Buffer.from(Array.from({ length: fh.length }, () => (Math.random() * 256) | 0)) },
    { kind: 'random-64', fh: Buffer.from(Array.from({ length: 64 }, () => (Math.random() * 256) | 0)) },
    { kind: 'truncated', fh: fh.subarray(0, fh.length - 1) },
    { kind: 'one-byte', fh: fh.subarray(0, 1) },
  ];
  if (fh.length <= 60) forged.push({ kind: 'extended', fh: Buffer.concat([fh, Buffer.from([1, 2, 3, 4])]) });
  for (let i = 0; i < fh.length; i++) {
    const f = Buffer.from(fh);
    f[i] = f[i]! ^ 0x01;
    forged.push({ kind: `bitflip@${i}`, fh: f });
  }
  const results: { kind: string; getattr: number | string; read: number | string; lookup: number | string }[] = [];
  for (const f of forged) {
    results.push({
      kind: f.kind,
      getattr: await status(getattr(n, f.fh)),
      read: await status(read(n, f.fh, 0, 4096)),
      lookup: await status(lookup(n, f.fh, 'x')),
    });
  }
  // An opaque<64> that says 65 bytes: bad XDR, must not be taken as a handle.
  const xid = newXid();
  const over = await n
    .callRaw(xid, recordMark(encodeCall({ xid, prog: PROG.NFS, vers: 3, proc: 1, args: new XdrWriter().opaque(Buffer.alloc(65, 7)).done() })))
    .then((r) => (r.kind === 'accepted' && r.acceptStat === 0 ? `NFS ${r.body.u32()}` : describe(r)))
    .catch((e: Error) => `error: ${e.message}`);
  // A READ with a 4 GiB count and reads past the end, on the real handle.
  const huge = await read(n, fh, 0, 0xffffffff).then((r) => ({ status: r.status, count: r.count, eof: r.eof, bytes: r.data?.length }));
  const past = await read(n, fh, 2 ** 40, 4096).then((r) => ({ status: r.status, count: r.count, eof: r.eof }));
  const alive = await getattr(n, root).then((r) => r.status);
  m.close();
  n.close();
  return { fhLength: fh.length, results, over64: over, hugeRead: huge, pastEnd: past, aliveAfter: alive };
}

/** `..`, `.` and odd names from the export root and below; odd MNT paths. */
async function dotdot(): Promise<unknown> {
  const { m, n, root } = await rootHandle();
  const rootAttr = (await getattr(n, root)).attr!;
  const probe = async (dirFh: Buffer, name: string): Promise<{ name: string; status: number | string; fileid?: number; isRoot?: boolean }> => {
    try {
      const r = await lookup(n, dirFh, name);
      if (r.status !== 0) return { name, status: r.status };
      const a = r.attr ?? (await getattr(n, r.fh!)).attr!;
      return { name, status: 0, fileid: Number(a.fileid), isRoot: a.fileid === rootAttr.fileid && a.fsid === rootAttr.fsid };
    } catch (err) {
      return { name, status: err instanceof RpcFailure ? describe(err.reply) : (err as Error).message };
    }
  };
  const fromRoot = [];
  for (const name of ['..', '.', '../..', '../../etc', '/', '/etc', 'a/../..', '', '\u0000', 'x'.repeat(300)]) fromRoot.push(await probe(root, name));
  const sub = await lookupPath(n, root, o.dir!);
  const fromSub = sub.status === 0 ? [await probe(sub.fh!, '..'), await probe(sub.fh!, '../..')] : [{ name: 'sub', status: sub.status }];
  // The parent of the sub directory looked up twice: `..` from it must be the root.
  const mnts: { path: string; status: number | string; isRoot?: boolean }[] = [];
  for (const p of [`${o.export}/..`, `${o.export}/../..`, `${o.export}/../../../etc`, '/etc', '/nope', '', 'relative', `/${'x'.repeat(1100)}`]) {
    try {
      const r = await mnt(m, p);
      let isRoot: boolean | undefined;
      if (r.status === 0) {
        const a = (await getattr(n, r.fh!)).attr;
        isRoot = a !== undefined && a.fileid === rootAttr.fileid;
      }
      mnts.push({ path: p.length > 60 ? `${p.slice(0, 20)}…(${p.length})` : p, status: r.status, isRoot });
    } catch (err) {
      mnts.push({ path: p.length > 60 ? `${p.slice(0, 20)}…(${p.length})` : p, status: err instanceof RpcFailure ? describe(err.reply) : (err as Error).message });
    }
  }
  m.close();
  n.close();
  return { rootFileid: Number(rootAttr.fileid), fromRoot, fromSub, mnts };
}

/** Every modifying NFSv3 procedure on a read-only export. */
async function writes(): Promise<unknown> {
  const { m, n, root } = await rootHandle();
  const file = await lookupPath(n, root, o.file!);
  const fh = file.fh!;
  const nameArgs = (name: string): Buffer => new XdrWriter().opaque(root).string(name).done();
  const raw = async (proc: number, args: Buffer): Promise<number | string> => {
    const rep = await n.call({ prog: PROG.NFS, vers: 3, proc, args });
    return rep.kind === 'accepted' && rep.acceptStat === 0 ? rep.body.u32() : describe(rep);
  };
  const sattrNone = new XdrWriter().u32(0).u32(0).u32(0).u32(0).u32(0).u32(0).done();
  const res = {
    write: await status(write(n, fh, 0, Buffer.from('overwrite'))),
    create: await status(create(n, root, 'new-file')),
    setattr: await raw(2, new XdrWriter().opaque(fh).raw(sattrNone).u32(0).done()),
    mkdir: await raw(9, new XdrWriter().raw(nameArgs('newdir')).raw(sattrNone).done()),
    symlink: await raw(10, new XdrWriter().raw(nameArgs('newlink')).raw(sattrNone).string('target').done()),
    remove: await raw(12, nameArgs(o.file!.split('/').pop()!)),
    rmdir: await raw(13, nameArgs(o.dir!.split('/')[0]!)),
    rename: await raw(14, new XdrWriter().raw(nameArgs(o.file!.split('/').pop()!)).raw(nameArgs('renamed')).done()),
    link: await raw(15, new XdrWriter().opaque(fh).raw(nameArgs('hardlink')).done()),
    commit: await raw(21, new XdrWriter().opaque(fh).u64(0).u32(0).done()),
  };
  const after = await read(n, fh, 0, 9);
  m.close();
  n.close();
  return { ...res, unchanged: after.status === 0 && after.data!.toString() !== 'overwrite' };
}

/** Calls the server must answer with the right RPC-level error (and the caller's XID). */
async function rpcerrors(): Promise<unknown> {
  // Over TCP each case gets its own connection: a server may close one after a bad message.
  type Raw = RpcClient & { callRaw(xid: number, b: Buffer, t?: number): Promise<Reply> };
  const udp = o.proto === 'udp' ? await RpcUdp.open(o.host, o.port!) : null;
  const conn = async (): Promise<Raw> => udp ?? (await tcp(o.port!));
  const done = (c: Raw): void => {
    if (c !== udp) c.close();
  };
  const prog = o.port === o.mountPort ? PROG.MOUNT : PROG.NFS;
  const vers = 3;
  const cases: { name: string; spec: Parameters<RpcClient['call']>[0] }[] = [
    { name: 'null', spec: { prog, vers, proc: 0 } },
    { name: 'null-auth-none', spec: { prog, vers, proc: 0, cred: AUTH_NONE } },
    { name: 'unknown-program', spec: { prog: 123456, vers: 1, proc: 0 } },
    { name: 'version-too-low', spec: { prog, vers: prog === PROG.NFS ? 2 : 0, proc: 0 } },
    { name: 'version-too-high', spec: { prog, vers: 4, proc: 0 } },
    { name: 'version-huge', spec: { prog, vers: 0xffffffff, proc: 0 } },
    { name: 'unknown-procedure', spec: { prog, vers, proc: 99 } },
    { name: 'procedure-huge', spec: { prog, vers, proc: 0xffffffff } },
    { name: 'rpc-version-3', spec: { prog, vers, proc: 0, rpcvers: 3 } },
    { name: 'unknown-auth-flavor', spec: { prog, vers, proc: 1, cred: { flavor: 0xdead, body: Buffer.from('garbage!') } } },
    { name: 'rpcsec-gss-flavor', spec: { prog, vers, proc: 1, cred: { flavor: 6, body: Buffer.alloc(20, 1) } } },
    { name: 'auth-sys-garbage-body', spec: { prog, vers, proc: 1, cred: { flavor: 1, body: Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1]) } } },
    { name: 'auth-sys-too-many-gids', spec: { prog, vers, proc: 1, cred: authSys(0, 0, 'pxelab', Array.from({ length: 17 }, (_, i) => i)) } },
    { name: 'auth-sys-long-machinename', spec: { prog, vers, proc: 1, cred: authSys(0, 0, 'm'.repeat(300)) } },
    { name: 'args-missing', spec: { prog, vers, proc: 1 } },
    { name: 'args-garbage', spec: { prog, vers, proc: prog === PROG.NFS ? 6 : 1, args: Buffer.from([0xff, 0xff, 0xff, 0xf0, 1, 2]) } },
  ];
  const results: Record<string, string> = {};
  for (const k of cases) {
    const xid = newXid();
    const c = await conn();
    try {
      const rep = await c.callRaw(xid, o.proto === 'udp' ? encodeCall({ ...k.spec, xid }) : recordMark(encodeCall({ ...k.spec, xid })), 3000);
      results[k.name] = rep.xid === xid ? describe(rep) : `WRONG XID ${rep.xid}`;
    } catch (err) {
      results[k.name] = `no reply: ${(err as Error).message}`;
    }
    done(c);
  }
  // A message with msg_type REPLY, and an oversized credential (over 400 bytes), sent raw.
  const xid1 = newXid();
  const replyMsg = encodeCall({ xid: xid1, prog, vers, proc: 0, msgType: 1 });
  const xid2 = newXid();
  const bigCred = encodeCall({ xid: xid2, prog, vers, proc: 0, cred: { flavor: 1, body: Buffer.alloc(1000, 1) } });
  const tryRaw = async (xid: number, b: Buffer): Promise<string> => {
    const c = await conn();
    const r = await c
      .callRaw(xid, o.proto === 'udp' ? b : recordMark(b), 1500)
      .then((rep) => describe(rep))
      .catch(() => 'no reply');
    done(c);
    return r;
  };
  results['msg-type-reply'] = await tryRaw(xid1, replyMsg);
  results['credential-over-400'] = await tryRaw(xid2, bigCred);
  const c = await conn();
  results['alive-after'] = await c
    .call({ prog, vers, proc: 0 })
    .then(describe)
    .catch((e: Error) => `no reply: ${e.message}`);
  c.close();
  return results;
}

/** A tiny deterministic PRNG (mulberry32), so a failing fuzz run can be replayed by seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Bounded fuzz: `count` cases over TCP (a fresh connection each) or UDP: random bytes, valid calls
 * truncated or bit-flipped, bad XIDs, record marks up to 2^31, fragment storms. After every case
 * (TCP) or every 50 (UDP), a NULL call on a new connection must be answered.
 */
async function fuzz(): Promise<unknown> {
  const rnd = prng(o.seed ?? 1);
  const int = (n: number): number => Math.floor(rnd() * n);
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)));
  const prog = o.port === o.mountPort ? PROG.MOUNT : PROG.NFS;
  const validCall = (): Buffer => {
    const kinds = [
      () => encodeCall({ xid: int(2 ** 32), prog, vers: 3, proc: 0 }),
      () => encodeCall({ xid: int(2 ** 32), prog: PROG.NFS, vers: 3, proc: 1 + int(21), args: new XdrWriter().opaque(bytes(int(70))).raw(bytes(int(40))).done() }),
      () => encodeCall({ xid: int(2 ** 32), prog: PROG.MOUNT, vers: 3, proc: int(6), args: new XdrWriter().string('/run/archiso/bootmnt').done() }),
      () => encodeCall({ xid: [0, 0xffffffff, 0x80000000][int(3)]!, prog, vers: 3, proc: 0 }),
      () => encodeCall({ xid: int(2 ** 32), prog: int(2 ** 32), vers: int(2 ** 32), proc: int(2 ** 32) }),
      () => encodeCall({ xid: int(2 ** 32), prog: PROG.NFS, vers: 3, proc: 6, args: readArgs(bytes(int(64)), BigInt(int(2 ** 32)) << 20n, int(2 ** 32)) }),
    ];
    return kinds[int(kinds.length)]!();
  };
  const mutate = (b: Buffer): Buffer => {
    const c = Buffer.from(b);
    for (let i = 0, n = 1 + int(6); i < n && c.length; i++) c[int(c.length)] = int(256);
    return c;
  };
  const stats = { cases: 0, replies: 0, serverClosed: 0, leftOpen: 0, hugeMarkClosedAfter: [] as number[], alive: 0, dead: 0, udpReplies: 0, failures: [] as string[] };
  const end = Date.now() + (o.timeMs ?? 30000);
  const alive = async (): Promise<boolean> => {
    try {
      if (o.proto === 'udp') {
        const u = await RpcUdp.open(o.host, o.port!);
        const r = await u.call({ prog, vers: 3, proc: 0 }, 3000);
        u.close();
        return r.acceptStat === ACCEPT.SUCCESS;
      }
      const c = await tcp(o.port!);
      const r = await c.call({ prog, vers: 3, proc: 0 }, 3000);
      c.close();
      return r.acceptStat === ACCEPT.SUCCESS;
    } catch {
      return false;
    }
  };
  if (o.proto === 'udp') {
    const u = await RpcUdp.open(o.host, o.port!);
    let replies = 0;
    u.sock.on('message', () => replies++);
    for (let i = 0; i < (o.count ?? 500) && Date.now() < end; i++) {
      const k = int(5);
      const call = validCall();
      const dgramBytes = k === 0 ? bytes(int(200)) : k === 1 ? call.subarray(0, int(call.length)) : k === 2 ? mutate(call) : k === 3 ? Buffer.concat([call, bytes(int(9000))]) : call;
      u.send(dgramBytes);
      stats.cases++;
      if (i % 50 === 49) {
        await sleep(50);
        if (await alive()) stats.alive++;
        else {
          stats.dead++;
          stats.failures.push(`udp case ${i}: no NULL reply afterwards`);
        }
      }
    }
    await sleep(200);
    stats.udpReplies = replies;
    u.close();
  } else {
    for (let i = 0; i < (o.count ?? 200) && Date.now() < end; i++) {
      let c: RpcTcp;
      try {
        c = await tcp(o.port!);
      } catch (err) {
        stats.failures.push(`case ${i}: connect failed: ${(err as Error).message}`);
        stats.dead++;
        await sleep(100);
        continue;
      }
      let replies = 0;
      c.sock.on('data', () => replies++);
      const k = int(8);
      const call = validCall();
      let sentHuge = 0;
      if (k === 0) c.send(bytes(1 + int(300)));
      else if (k === 1) c.send(recordMark(call).subarray(0, int(call.length + 4)));
      else if (k === 2) c.send(recordMark(mutate(call)));
      else if (k === 3) {
        // Record mark claiming up to 2^31-1 bytes (last fragment or not), then a stream of bytes:
        // the server must close or keep waiting with bounded memory, not buffer gigabytes.
        const h = Buffer.alloc(4);
        h.writeUInt32BE([0xffffffff, 0x7fffffff, 0x80000000 | (2 ** 30), 0x80000000 | (1 + int(2 ** 31 - 1))][int(4)]! >>> 0);
        c.send(h);
        const chunk = Buffer.alloc(64 * 1024, 0x41);
        for (let j = 0; j < 128 && !c.sock.destroyed; j++) {
          if (!c.send(chunk)) await Promise.race([new Promise((r) => c.sock.once('drain', r)), sleep(200)]);
          sentHuge += chunk.length;
          if (c.closedBy) break;
        }
        if (c.closedBy) stats.hugeMarkClosedAfter.push(sentHuge);
      } else if (k === 4) {
        // Many tiny non-last fragments, then a last one: a valid call split up.
        const parts: Buffer[] = [];
        for (let p = 0; p < call.length; p += 4) parts.push(recordMark(call.subarray(p, Math.min(p + 4, call.length)), p + 4 >= call.length));
        c.send(Buffer.concat(parts));
      } else if (k === 5) {
        // Zero-length fragments forever (a record that never ends).
        c.send(Buffer.concat(Array.from({ length: 2000 }, () => recordMark(Buffer.alloc(0), false))));
      } else if (k === 6) c.send(Buffer.concat([recordMark(call), recordMark(mutate(call)), recordMark(call)]));
      else c.send(recordMark(call, true, call.length + int(16)));
      stats.cases++;
      const closed = await c.closedWithin(150);
      if (closed) stats.serverClosed++;
      else stats.leftOpen++;
      stats.replies += replies;
      c.close();
      if (i % 10 === 9 || k === 3) {
        if (await alive()) stats.alive++;
        else {
          stats.dead++;
          stats.failures.push(`case ${i} (kind ${k}): no NULL reply on a new connection afterwards`);
        }
      }
    }
  }
  return stats;
}

/**
 * `count` TCP connections at once to `port`, each sending a NULL call. Reports how many were
 * answered, closed by the server, or left hanging; then whether the answered ones are still served,
 * and whether a new connection is served once all are closed.
 */
async function flood(): Promise<unknown> {
  const n = o.count ?? 200;
  const socks = await Promise.allSettled(Array.from({ length: n }, () => tcp(o.port!)));
  const conns = socks.filter((s): s is PromiseFulfilledResult<RpcTcp> => s.status === 'fulfilled').map((s) => s.value);
  const connectErrors = socks.filter((s) => s.status === 'rejected').map((s) => ((s as PromiseRejectedResult).reason as Error).message);
  const t0 = Date.now();
  const first = await Promise.all(
    conns.map((c) =>
      c
        .call({ prog: PROG.NFS, vers: 3, proc: 0 }, 4000)
        .then(() => 'answered' as const)
        .catch(() => (c.closedBy === 'server' ? ('closed' as const) : ('hanging' as const))),
    ),
  );
  const firstMs = Date.now() - t0;
  const answered = conns.filter((_c, i) => first[i] === 'answered');
  out({ holding: { answered: answered.length } });
  await sleep(o.holdMs ?? 500);
  const again = await Promise.all(answered.map((c) => c.call({ prog: PROG.NFS, vers: 3, proc: 0 }, 4000).then(() => true, () => false)));
  for (const c of conns) c.close();
  await sleep(500);
  const fresh = await tcp(o.port!)
    .then(async (c) => {
      const r = await c.call({ prog: PROG.NFS, vers: 3, proc: 0 }, 3000);
      c.close();
      return describe(r);
    })
    .catch((e: Error) => `failed: ${e.message}`);
  return {
    opened: conns.length,
    connectErrors: connectErrors.length,
    answered: answered.length,
    closedByServer: first.filter((x) => x === 'closed').length,
    hanging: first.filter((x) => x === 'hanging').length,
    firstMs,
    stillServed: again.filter(Boolean).length,
    freshAfterClose: fresh,
  };
}

/**
 * `conns` connections each pipeline `reads` READs of `readSize` bytes of `file` and never read the
 * replies (sockets paused). Prints {"holding":...} then holds for `holdMs` before closing.
 */
async function slowread(): Promise<unknown> {
  const { m, n, root } = await rootHandle();
  const f = await lookupPath(n, root, o.file!);
  if (f.status !== 0) throw new Error(`LOOKUP ${o.file} → ${f.status}`);
  const size = Number(f.attr?.size ?? (await getattr(n, f.fh!)).attr!.size);
  m.close();
  n.close();
  const readSize = o.readSize ?? 1024 * 1024;
  const conns: net.Socket[] = [];
  let queued = 0;
  for (let i = 0; i < (o.conns ?? 10); i++) {
    const c = await tcp(o.nfsPort!);
    c.sock.pause();
    conns.push(c.sock);
    const calls: Buffer[] = [];
    for (let j = 0; j < (o.reads ?? 100); j++) {
      const off = ((i * 7919 + j) * readSize) % Math.max(1, size - readSize);
      calls.push(recordMark(encodeCall({ xid: newXid(), prog: PROG.NFS, vers: 3, proc: 6, args: readArgs(f.fh!, off, readSize) })));
    }
    c.sock.write(Buffer.concat(calls));
    queued += calls.length * readSize;
  }
  await sleep(300);
  out({ holding: { conns: conns.length, requestedBytes: queued } });
  await sleep(o.holdMs ?? 3000);
  const closedByServer = conns.filter((s) => s.destroyed || s.readableEnded).length;
  for (const s of conns) s.destroy();
  return { conns: conns.length, requestedBytes: queued, closedByServer };
}

/** A whole file and a directory listing over UDP: MNT, LOOKUP, READ in `chunk` pieces, READDIR. */
async function udpread(): Promise<unknown> {
  const mu = await RpcUdp.open(o.host, o.mountPort!);
  const r = await mnt(mu, o.export!);
  mu.close();
  if (r.status !== 0) throw new Error(`MNT over UDP → ${r.status}`);
  const u = await RpcUdp.open(o.host, o.nfsPort!);
  const f = await lookupPath(u, r.fh!, o.file!);
  if (f.status !== 0) throw new Error(`LOOKUP over UDP → ${f.status}`);
  const size = Number(f.attr?.size ?? (await getattr(u, f.fh!)).attr!.size);
  const hash = createHash('sha256');
  const chunk = o.chunk ?? 32768;
  let got = 0;
  let calls = 0;
  for (;;) {
    const res = await read(u, f.fh!, got, chunk);
    calls++;
    if (res.status !== 0) throw new Error(`READ over UDP at ${got} → ${res.status}`);
    hash.update(res.data!);
    got += res.data!.length;
    if (res.eof || res.data!.length === 0) break;
  }
  const dir = await readdirAll(u, r.fh!, 4096);
  u.close();
  return { size, got, sha256: hash.digest('hex'), calls, readdir: dir };
}

/** FSINFO of the export root (what a client will use as read size). */
async function fsinfo(): Promise<unknown> {
  const { m, n, root } = await rootHandle();
  const rep = await n.call({ prog: PROG.NFS, vers: 3, proc: 19, args: new XdrWriter().opaque(root).done() });
  const st = rep.body.u32();
  if (rep.body.bool()) rep.body.fixed(84);
  const res = st === 0 ? { status: st, rtmax: rep.body.u32(), rtpref: rep.body.u32(), rtmult: rep.body.u32(), wtmax: rep.body.u32(), wtpref: rep.body.u32(), wtmult: rep.body.u32(), dtpref: rep.body.u32() } : { status: st };
  m.close();
  n.close();
  return res;
}

const ops: Record<string, () => Promise<unknown>> = { handles, dotdot, writes, rpcerrors, fuzz, flood, slowread, udpread, fsinfo };

async function main(): Promise<void> {
  const f = ops[o.op];
  if (!f) throw new Error(`unknown op ${o.op}`);
  out({ result: await f() });
  process.exit(0);
}

main().catch((err: Error) => {
  out({ error: err.stack ?? err.message });
  process.exit(1);
});
