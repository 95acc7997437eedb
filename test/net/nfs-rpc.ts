/**
 * A small ONC RPC client (RFC 5531) with the NFSv3 (RFC 1813), MOUNT v3 and portmapper v2 calls the
 * NFS lab tests need, written independently of the server under test so it can be an oracle: XDR,
 * TCP record marking, UDP, and raw/garbled calls for the fuzz tests. Used by nfs-probe.ts, which
 * runs inside a client namespace.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';

export const PROG = { PORTMAP: 100000, NFS: 100003, MOUNT: 100005 } as const;
export const NFS3 = { OK: 0, NOENT: 2, IO: 5, ACCES: 13, EXIST: 17, NOTDIR: 20, ISDIR: 21, INVAL: 22, ROFS: 30, NAMETOOLONG: 63, STALE: 70, BADHANDLE: 10001, NOTSUPP: 10004, SERVERFAULT: 10006 } as const;
export const ACCEPT = { SUCCESS: 0, PROG_UNAVAIL: 1, PROG_MISMATCH: 2, PROC_UNAVAIL: 3, GARBAGE_ARGS: 4, SYSTEM_ERR: 5 } as const;
export const REJECT = { RPC_MISMATCH: 0, AUTH_ERROR: 1 } as const;

export class XdrWriter {
  private readonly parts: Buffer[] = [];
  u32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    this.parts.push(b);
    return this;
  }
  u64(n: number | bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(n));
    this.parts.push(b);
    return this;
  }
  bool(v: boolean): this {
    return this.u32(v ? 1 : 0);
  }
  /** Fixed-length opaque (padded to 4). */
  fixed(buf: Buffer): this {
    this.parts.push(buf);
    const pad = (4 - (buf.length % 4)) % 4;
    if (pad) this.parts.push(Buffer.alloc(pad));
    return this;
  }
  /** Variable-length opaque: length, bytes, padding. `declaredLength` lies about the length. */
  opaque(buf: Buffer, declaredLength = buf.length): this {
    return this.u32(declaredLength).fixed(buf);
  }
  string(s: string): this {
    return this.opaque(Buffer.from(s, 'utf8'));
  }
  raw(buf: Buffer): this {
    this.parts.push(buf);
    return this;
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export class XdrError extends Error {}

export class XdrReader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new XdrError(`XDR underrun: need ${n} at ${this.pos} of ${this.buf.length}`);
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  bool(): boolean {
    const v = this.u32();
    if (v > 1) throw new XdrError(`bad XDR bool ${v}`);
    return v === 1;
  }
  fixed(n: number): Buffer {
    const padded = n + ((4 - (n % 4)) % 4);
    this.need(padded);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += padded;
    return b;
  }
  opaque(max = Infinity): Buffer {
    const n = this.u32();
    if (n > max) throw new XdrError(`opaque of ${n} bytes over its limit ${max}`);
    return this.fixed(n);
  }
  string(max = Infinity): string {
    return this.opaque(max).toString('utf8');
  }
  get remaining(): number {
    return this.buf.length - this.pos;
  }
}

export interface Auth {
  flavor: number;
  body: Buffer;
}
export const AUTH_NONE: Auth = { flavor: 0, body: Buffer.alloc(0) };
export function authSys(uid = 0, gid = 0, machine = 'pxelab', gids: number[] = []): Auth {
  const w = new XdrWriter().u32(Math.floor(Date.now() / 1000)).string(machine).u32(uid).u32(gid).u32(gids.length);
  for (const g of gids) w.u32(g);
  return { flavor: 1, body: w.done() };
}

export interface CallSpec {
  xid: number;
  prog: number;
  vers: number;
  proc: number;
  args?: Buffer;
  cred?: Auth;
  verf?: Auth;
  /** RPC version (2 is the only valid one). */
  rpcvers?: number;
  /** 0 = CALL; anything else makes a message the server must not answer as a call. */
  msgType?: number;
}

export function encodeCall(c: CallSpec): Buffer {
  const cred = c.cred ?? authSys();
  const verf = c.verf ?? AUTH_NONE;
  return new XdrWriter()
    .u32(c.xid)
    .u32(c.msgType ?? 0)
    .u32(c.rpcvers ?? 2)
    .u32(c.prog)
    .u32(c.vers)
    .u32(c.proc)
    .u32(cred.flavor)
    .opaque(cred.body)
    .u32(verf.flavor)
    .opaque(verf.body)
    .raw(c.args ?? Buffer.alloc(0))
    .done();
}

/** One TCP record: a single last fragment. */
export function recordMark(payload: Buffer, last = true, declaredLength = payload.length): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(((last ? 0x80000000 : 0) | (declaredLength & 0x7fffffff)) >>> 0);
  return Buffer.concat([h, payload]);
}

export interface Reply {
  xid: number;
  /** 'accepted' (reply_stat 0) or 'denied' (1). */
  kind: 'accepted' | 'denied';
  acceptStat?: number;
  rejectStat?: number;
  authStat?: number;
  mismatch?: { low: number; high: number };
  /** The procedure's results (accepted + SUCCESS), positioned after the header. */
  body: XdrReader;
  size: number;
}

export function decodeReply(buf: Buffer): Reply {
  const r = new XdrReader(buf);
  const xid = r.u32();
  const mtype = r.u32();
  if (mtype !== 1) throw new XdrError(`message type ${mtype} is not a REPLY`);
  const stat = r.u32();
  if (stat === 0) {
    r.u32(); // verifier flavor
    r.opaque(400);
    const acceptStat = r.u32();
    const rep: Reply = { xid, kind: 'accepted', acceptStat, body: r, size: buf.length };
    if (acceptStat === ACCEPT.PROG_MISMATCH) rep.mismatch = { low: r.u32(), high: r.u32() };
    return rep;
  }
  if (stat === 1) {
    const rejectStat = r.u32();
    const rep: Reply = { xid, kind: 'denied', rejectStat, body: r, size: buf.length };
    if (rejectStat === REJECT.RPC_MISMATCH) rep.mismatch = { low: r.u32(), high: r.u32() };
    else if (rejectStat === REJECT.AUTH_ERROR) rep.authStat = r.u32();
    return rep;
  }
  throw new XdrError(`reply_stat ${stat}`);
}

let nextXid = (Math.random() * 0x7fffffff) >>> 0;
export const newXid = (): number => (nextXid = (nextXid + 1) >>> 0);

export interface RpcClient {
  call(c: Omit<CallSpec, 'xid'> & { xid?: number }, timeoutMs?: number): Promise<Reply>;
  close(): void;
}

/** An RPC connection over TCP with record marking; replies are matched by XID. */
export class RpcTcp implements RpcClient {
  private buf: Buffer = Buffer.alloc(0);
  private frags: Buffer[] = [];
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  /** Replies that matched no pending call (unsolicited or duplicate XIDs). */
  readonly stray: Reply[] = [];
  /** Set when the server closed or reset the connection. */
  closedBy: 'server' | 'client' | null = null;
  closeError: string | null = null;
  readonly closed: Promise<void>;

  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => this.onData(d));
    this.closed = new Promise((resolve) => {
      sock.on('close', () => {
        if (!this.closedBy) this.closedBy = 'server';
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.reject(new Error(`connection closed${this.closeError ? ` (${this.closeError})` : ''}`));
        }
        this.pending.clear();
        resolve();
      });
    });
    sock.on('error', (e) => (this.closeError = (e as NodeJS.ErrnoException).code ?? e.message));
  }

  static connect(host: string, port: number, timeoutMs = 5000): Promise<RpcTcp> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host, port });
      const t = setTimeout(() => {
        sock.destroy();
        reject(new Error(`connect ${host}:${port} timed out`));
      }, timeoutMs);
      sock.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
      sock.once('connect', () => {
        clearTimeout(t);
        sock.removeAllListeners('error');
        sock.setNoDelay(true);
        resolve(new RpcTcp(sock));
      });
    });
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    while (this.buf.length >= 4) {
      const h = this.buf.readUInt32BE(0);
      const len = h & 0x7fffffff;
      if (this.buf.length < 4 + len) break;
      this.frags.push(this.buf.subarray(4, 4 + len));
      this.buf = this.buf.subarray(4 + len);
      if (h & 0x80000000) {
        const rec = Buffer.concat(this.frags);
        this.frags = [];
        let rep: Reply;
        try {
          rep = decodeReply(rec);
        } catch (e) {
          this.stray.push({ xid: -1, kind: 'denied', body: new XdrReader(rec), size: rec.length, rejectStat: -1 });
          void e;
          continue;
        }
        const p = this.pending.get(rep.xid);
        if (p) {
          this.pending.delete(rep.xid);
          clearTimeout(p.timer);
          p.resolve(rep);
        } else this.stray.push(rep);
      }
    }
  }

  call(c: Omit<CallSpec, 'xid'> & { xid?: number }, timeoutMs = 5000): Promise<Reply> {
    const xid = c.xid ?? newXid();
    return this.callRaw(xid, recordMark(encodeCall({ ...c, xid })), timeoutMs);
  }

  /** Sends `bytes` as they are and waits for a reply carrying `xid`. */
  callRaw(xid: number, bytes: Buffer, timeoutMs = 5000): Promise<Reply> {
    return new Promise((resolve, reject) => {
      if (this.sock.destroyed) return reject(new Error('connection closed'));
      const timer = setTimeout(() => {
        this.pending.delete(xid);
        reject(new Error(`no reply to xid ${xid} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(xid, { resolve, reject, timer });
      this.sock.write(bytes);
    });
  }

  send(bytes: Buffer): boolean {
    return this.sock.write(bytes);
  }

  /** Resolves true when the server closes within `ms`, false otherwise (connection left open). */
  async closedWithin(ms: number): Promise<boolean> {
    let t: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.closed.then(() => true), new Promise<boolean>((res) => (t = setTimeout(() => res(false), ms)))]);
    clearTimeout(t);
    return r;
  }

  close(): void {
    if (!this.closedBy) this.closedBy = 'client';
    this.sock.destroy();
  }
}

/** RPC over UDP: one datagram per call, replies matched by XID, retransmitted on timeout. */
export class RpcUdp implements RpcClient {
  private readonly pending = new Map<number, (r: Reply) => void>();
  readonly stray: Buffer[] = [];
  private constructor(
    readonly sock: dgram.Socket,
    readonly host: string,
    readonly port: number,
  ) {
    sock.on('message', (m) => {
      let rep: Reply;
      try {
        rep = decodeReply(m);
      } catch {
        this.stray.push(m);
        return;
      }
      const p = this.pending.get(rep.xid);
      if (p) {
        this.pending.delete(rep.xid);
        p(rep);
      } else this.stray.push(m);
    });
  }

  static open(host: string, port: number): Promise<RpcUdp> {
    return new Promise((resolve, reject) => {
      const sock = dgram.createSocket('udp4');
      sock.once('error', reject);
      sock.bind(0, () => {
        sock.removeListener('error', reject);
        sock.setRecvBufferSize(4 * 1024 * 1024);
        resolve(new RpcUdp(sock, host, port));
      });
    });
  }

  call(c: Omit<CallSpec, 'xid'> & { xid?: number }, timeoutMs = 3000, tries = 3): Promise<Reply> {
    const xid = c.xid ?? newXid();
    return this.callRaw(xid, encodeCall({ ...c, xid }), timeoutMs, tries);
  }

  callRaw(xid: number, bytes: Buffer, timeoutMs = 3000, tries = 3): Promise<Reply> {
    return new Promise((resolve, reject) => {
      let n = 0;
      let timer: NodeJS.Timeout;
      const attempt = (): void => {
        if (n++ >= tries) {
          this.pending.delete(xid);
          return reject(new Error(`no UDP reply to xid ${xid} after ${tries} tries`));
        }
        this.sock.send(bytes, this.port, this.host);
        timer = setTimeout(attempt, timeoutMs / tries);
      };
      this.pending.set(xid, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      attempt();
    });
  }

  send(bytes: Buffer): void {
    this.sock.send(bytes, this.port, this.host);
  }

  close(): void {
    this.sock.close();
  }
}

// ---- MOUNT v3 -------------------------------------------------------------------------------

export async function mnt(c: RpcClient, dirpath: string): Promise<{ status: number; fh?: Buffer; flavors?: number[] }> {
  const rep = await c.call({ prog: PROG.MOUNT, vers: 3, proc: 1, args: new XdrWriter().string(dirpath).done() });
  expectSuccess(rep, 'MNT');
  const status = rep.body.u32();
  if (status !== 0) return { status };
  const fh = Buffer.from(rep.body.opaque(64));
  const n = rep.body.u32();
  const flavors: number[] = [];
  for (let i = 0; i < n; i++) flavors.push(rep.body.u32());
  return { status, fh, flavors };
}

export async function umnt(c: RpcClient, dirpath: string): Promise<void> {
  const rep = await c.call({ prog: PROG.MOUNT, vers: 3, proc: 3, args: new XdrWriter().string(dirpath).done() });
  expectSuccess(rep, 'UMNT');
}

export async function mountExports(c: RpcClient): Promise<string[]> {
  const rep = await c.call({ prog: PROG.MOUNT, vers: 3, proc: 5 });
  expectSuccess(rep, 'EXPORT');
  const out: string[] = [];
  while (rep.body.bool()) {
    out.push(rep.body.string(1024));
    while (rep.body.bool()) rep.body.string(255); // groups
  }
  return out;
}

// ---- NFSv3 ----------------------------------------------------------------------------------

export interface Fattr3 {
  type: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: bigint;
  used: bigint;
  fsid: bigint;
  fileid: bigint;
  mtime: number;
}

function fattr3(r: XdrReader): Fattr3 {
  const type = r.u32();
  const mode = r.u32();
  const nlink = r.u32();
  const uid = r.u32();
  const gid = r.u32();
  const size = r.u64();
  const used = r.u64();
  r.u32();
  r.u32(); // rdev
  const fsid = r.u64();
  const fileid = r.u64();
  r.u32();
  r.u32(); // atime
  const mtime = r.u32();
  r.u32();
  r.u32();
  r.u32(); // ctime
  return { type, mode, nlink, uid, gid, size, used, fsid, fileid, mtime };
}

function postOpAttr(r: XdrReader): Fattr3 | undefined {
  return r.bool() ? fattr3(r) : undefined;
}

export class RpcFailure extends Error {
  constructor(
    readonly reply: Reply,
    what: string,
  ) {
    super(`${what}: RPC ${reply.kind} accept_stat=${reply.acceptStat} reject_stat=${reply.rejectStat} auth_stat=${reply.authStat}`);
  }
}

function expectSuccess(rep: Reply, what: string): void {
  if (rep.kind !== 'accepted' || rep.acceptStat !== ACCEPT.SUCCESS) throw new RpcFailure(rep, what);
}

const fhArg = (fh: Buffer): XdrWriter => new XdrWriter().opaque(fh);

export async function getattr(c: RpcClient, fh: Buffer): Promise<{ status: number; attr?: Fattr3 }> {
  const rep = await c.call({ prog: PROG.NFS, vers: 3, proc: 1, args: fhArg(fh).done() });
  expectSuccess(rep, 'GETATTR');
  const status = rep.body.u32();
  return status === 0 ? { status, attr: fattr3(rep.body) } : { status };
}

export async function lookup(c: RpcClient, dir: Buffer, name: string): Promise<{ status: number; fh?: Buffer; attr?: Fattr3 }> {
  const rep = await c.call({ prog: PROG.NFS, vers: 3, proc: 3, args: fhArg(dir).string(name).done() });
  expectSuccess(rep, 'LOOKUP');
  const status = rep.body.u32();
  if (status !== 0) return { status };
  const fh = Buffer.from(rep.body.opaque(64));
  const attr = postOpAttr(rep.body);
  return { status, fh, attr };
}

export async function lookupPath(c: RpcClient, root: Buffer, rel: string): Promise<{ status: number; fh?: Buffer; attr?: Fattr3 }> {
  let fh = root;
  let last: { status: number; fh?: Buffer; attr?: Fattr3 } = { status: 0, fh: root };
  for (const name of rel.split('/').filter(Boolean)) {
    last = await lookup(c, fh, name);
    if (last.status !== 0) return last;
    fh = last.fh!;
  }
  return last;
}

export function readArgs(fh: Buffer, offset: number | bigint, count: number): Buffer {
  return fhArg(fh).u64(offset).u32(count).done();
}

export async function read(c: RpcClient, fh: Buffer, offset: number, count: number): Promise<{ status: number; count?: number; eof?: boolean; data?: Buffer }> {
  const rep = await c.call({ prog: PROG.NFS, vers: 3, proc: 6, args: readArgs(fh, offset, count) });
  expectSuccess(rep, 'READ');
  const status = rep.body.u32();
  postOpAttr(rep.body);
  if (status !== 0) return { status };
  const n = rep.body.u32();
  const eof = rep.body.bool();
  const data = Buffer.from(rep.body.opaque());
  return { status, count: n, eof, data };
}

export async function write(c: RpcClient, fh: Buffer, offset: number, data: Buffer): Promise<{ status: number }> {
  const rep = await c.call({ prog: PROG.NFS, vers: 3, proc: 7, args: fhArg(fh).u64(offset).u32(data.length).u32(2).opaque(data).done() });
  expectSuccess(rep, 'WRITE');
  return { status: rep.body.u32() };
}

/** CREATE (UNCHECKED) of `name` in `dir`. */
export async function create(c: RpcClient, dir: Buffer, name: string): Promise<{ status: number }> {
  // createhow3 UNCHECKED + sattr3 with nothing set (6 discriminants of "don't set").
  const args = fhArg(dir).string(name).u32(0).u32(0).u32(0).u32(0).u32(0).u32(0).u32(0).done();
  const rep = await c.call({ prog: PROG.NFS, vers: 3, proc: 8, args });
  expectSuccess(rep, 'CREATE');
  return { status: rep.body.u32() };
}

/** The whole directory through READDIR (names only), following cookies. */
export async function readdirAll(c: RpcClient, dir: Buffer, count = 8192): Promise<{ status: number; names: string[]; calls: number }> {
  const names: string[] = [];
  let cookie = 0n;
  let verf: Buffer = Buffer.alloc(8);
  for (let calls = 1; calls < 100000; calls++) {
    const rep = await c.call({ prog: PROG.NFS, vers: 3, proc: 16, args: fhArg(dir).u64(cookie).fixed(verf).u32(count).done() });
    expectSuccess(rep, 'READDIR');
    const status = rep.body.u32();
    postOpAttr(rep.body);
    if (status !== 0) return { status, names, calls };
    verf = Buffer.from(rep.body.fixed(8));
    while (rep.body.bool()) {
      rep.body.u64();
      names.push(rep.body.string(1024));
      cookie = rep.body.u64();
    }
    if (rep.body.bool()) return { status, names, calls };
  }
  throw new Error('READDIR did not end');
}

// ---- portmapper v2 --------------------------------------------------------------------------

export async function pmapGetport(c: RpcClient, prog: number, vers: number, proto: 'tcp' | 'udp'): Promise<number> {
  const rep = await c.call({ prog: PROG.PORTMAP, vers: 2, proc: 3, args: new XdrWriter().u32(prog).u32(vers).u32(proto === 'tcp' ? 6 : 17).u32(0).done() });
  expectSuccess(rep, 'GETPORT');
  return rep.body.u32();
}

export async function pmapDump(c: RpcClient): Promise<{ prog: number; vers: number; proto: number; port: number }[]> {
  const rep = await c.call({ prog: PROG.PORTMAP, vers: 2, proc: 4 });
  expectSuccess(rep, 'DUMP');
  const out: { prog: number; vers: number; proto: number; port: number }[] = [];
  while (rep.body.bool()) out.push({ prog: rep.body.u32(), vers: rep.body.u32(), proto: rep.body.u32(), port: rep.body.u32() });
  return out;
}
