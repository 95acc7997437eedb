// A small ONC RPC client for the NFS unit tests: TCP (record marking done here, independently of
// the server's decoder) and UDP, several calls in flight, raw bytes for hostile input; and NFS v3 /
// MOUNT / portmapper calls on top. Results are decoded with the library's XdrReader.
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as R from '../../nodes/lib/nfs/rpc';
import { XdrReader, XdrWriter } from '../../nodes/lib/nfs/xdr';

export const NFS = 100003;
export const MOUNT = 100005;
export const PMAP = 100000;

export interface Reply {
  xid: number;
  raw: Buffer;
  reply: R.RpcReply;
}

let nextXid = 0x1000;

export class TcpRpc {
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting = new Map<number, (r: Reply | Error) => void>();
  readonly records: Buffer[] = [];
  readonly closed: Promise<void>;
  /** Each chunk as `data` delivered it (to check a reply arrives whole). */
  readonly chunks: Buffer[] = [];

  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('error', () => undefined);
    this.closed = new Promise((r) =>
      sock.once('close', () => {
        for (const w of [...this.waiting.values()]) w(new Error('connection closed'));
        this.waiting.clear();
        r();
      }),
    );
  }

  static connect(port: number, host = '127.0.0.1'): Promise<TcpRpc> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host }, () => {
        s.off('error', reject);
        resolve(new TcpRpc(s));
      });
      s.once('error', reject);
    });
  }

  private onData(d: Buffer): void {
    this.chunks.push(d);
    if (this.chunks.length > 64) this.chunks.shift();
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      if (this.buf.length < 4) return;
      const mark = this.buf.readUInt32BE(0);
      const len = mark & 0x7fffffff;
      if (this.buf.length < 4 + len) return;
      if (!(mark & 0x80000000)) throw new Error('test client: multi-fragment replies not expected');
      const msg = this.buf.subarray(4, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      this.records.push(msg);
      const reply = R.parseReply(msg);
      const w = this.waiting.get(reply.xid);
      if (w) {
        this.waiting.delete(reply.xid);
        w({ xid: reply.xid, raw: msg, reply });
      }
    }
  }

  /** Sends a call (one fragment) and resolves to its reply. */
  call(prog: number, vers: number, proc: number, args: Buffer = Buffer.alloc(0), cred?: R.RpcCred): Promise<Reply> {
    const xid = nextXid++;
    const msg = R.encodeCall({ xid, prog, vers, proc, args, cred });
    const p = this.expect(xid);
    this.sock.write(R.withRecordMark(msg));
    return p;
  }

  /** Resolves when the reply with `xid` arrives. */
  expect(xid: number, timeoutMs = 10_000): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting.delete(xid);
        reject(new Error(`no reply to xid ${xid}`));
      }, timeoutMs);
      this.waiting.set(xid, (r) => {
        clearTimeout(t);
        if (r instanceof Error) reject(r);
        else resolve(r);
      });
    });
  }

  write(raw: Buffer): void {
    this.sock.write(raw);
  }

  destroy(): void {
    this.sock.destroy();
  }
}

export class UdpRpc {
  private readonly waiting = new Map<number, (r: Reply) => void>();
  private constructor(
    readonly sock: dgram.Socket,
    readonly port: number,
    readonly host: string,
  ) {
    sock.on('message', (msg) => {
      let reply: R.RpcReply;
      try {
        reply = R.parseReply(msg);
      } catch {
        return;
      }
      const w = this.waiting.get(reply.xid);
      if (w) {
        this.waiting.delete(reply.xid);
        w({ xid: reply.xid, raw: msg, reply });
      }
    });
  }

  static async open(port: number, host = '127.0.0.1'): Promise<UdpRpc> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    return new UdpRpc(s, port, host);
  }

  call(prog: number, vers: number, proc: number, args: Buffer = Buffer.alloc(0), timeoutMs = 5000): Promise<Reply> {
    const xid = nextXid++;
    this.sendRaw(R.encodeCall({ xid, prog, vers, proc, args }));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting.delete(xid);
        reject(new Error(`no UDP reply to xid ${xid}`));
      }, timeoutMs);
      this.waiting.set(xid, (r) => {
        clearTimeout(t);
        resolve(r);
      });
    });
  }

  sendRaw(msg: Buffer): void {
    this.sock.send(msg, this.port, this.host);
  }

  close(): void {
    this.sock.close();
  }
}

export type Rpc = Pick<TcpRpc, 'call'> | Pick<UdpRpc, 'call'>;

/** The result body of an accepted SUCCESS reply (throws otherwise). */
export function body(r: Reply): XdrReader {
  if (!r.reply.accepted) throw new Error(`call denied (reject_stat ${r.reply.rejectStat})`);
  if (r.reply.stat !== R.SUCCESS) throw new Error(`accept_stat ${r.reply.stat}`);
  return r.reply.body;
}

export interface Fattr {
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

export function readFattr(r: XdrReader): Fattr {
  const type = r.uint32();
  const mode = r.uint32();
  const nlink = r.uint32();
  const uid = r.uint32();
  const gid = r.uint32();
  const size = r.uint64();
  const used = r.uint64();
  r.skip(8); // rdev
  const fsid = r.uint64();
  const fileid = r.uint64();
  r.skip(8); // atime
  const mtime = r.uint32();
  r.skip(4);
  r.skip(8); // ctime
  return { type, mode, nlink, uid, gid, size, used, fsid, fileid, mtime };
}

export function readPostOp(r: XdrReader): Fattr | undefined {
  return r.bool() ? readFattr(r) : undefined;
}

export function readWcc(r: XdrReader): { pre: boolean; post?: Fattr } {
  const pre = r.bool();
  if (pre) r.skip(24);
  return { pre, post: readPostOp(r) };
}

export const w = (): XdrWriter => new XdrWriter(64);

export async function mnt(rpc: Rpc, path: string, vers = 3): Promise<{ status: number; fh?: Buffer; flavors?: number[] }> {
  const r = body(await rpc.call(MOUNT, vers, 1, w().string(path).finish()));
  const status = r.uint32();
  if (status !== 0) return { status };
  const fh = Buffer.from(r.opaqueVar(64));
  const n = r.uint32();
  const flavors: number[] = [];
  for (let i = 0; i < n; i++) flavors.push(r.uint32());
  return { status, fh, flavors };
}

export async function lookup(rpc: Rpc, dir: Buffer, name: string | Buffer): Promise<{ status: number; fh?: Buffer; attrs?: Fattr; dirAttrs?: Fattr }> {
  const nameBuf = typeof name === 'string' ? Buffer.from(name) : name;
  const r = body(await rpc.call(NFS, 3, 3, w().opaqueVar(dir).opaqueVar(nameBuf).finish()));
  const status = r.uint32();
  if (status !== 0) return { status, dirAttrs: readPostOp(r) };
  const fh = Buffer.from(r.opaqueVar(64));
  return { status, fh, attrs: readPostOp(r), dirAttrs: readPostOp(r) };
}

export async function walk(rpc: Rpc, root: Buffer, path: string): Promise<Buffer> {
  let fh = root;
  for (const seg of path.split('/').filter(Boolean)) {
    const r = await lookup(rpc, fh, seg);
    if (r.status !== 0) throw new Error(`LOOKUP ${seg}: status ${r.status}`);
    fh = r.fh!;
  }
  return fh;
}

export async function getattr(rpc: Rpc, fh: Buffer): Promise<{ status: number; attrs?: Fattr }> {
  const r = body(await rpc.call(NFS, 3, 1, w().opaqueVar(fh).finish()));
  const status = r.uint32();
  return status === 0 ? { status, attrs: readFattr(r) } : { status };
}

export interface ReadResult {
  status: number;
  attrs?: Fattr;
  count?: number;
  eof?: boolean;
  data?: Buffer;
}

export function readCall(fh: Buffer, offset: number | bigint, count: number): Buffer {
  return w().opaqueVar(fh).uint64(BigInt(offset)).uint32(count).finish();
}

export function parseRead(rep: Reply): ReadResult {
  const r = body(rep);
  const status = r.uint32();
  const attrs = readPostOp(r);
  if (status !== 0) return { status, attrs };
  const count = r.uint32();
  const eof = r.bool();
  const data = Buffer.from(r.opaqueVar(1 << 24));
  return { status, attrs, count, eof, data };
}

export async function read(rpc: Rpc, fh: Buffer, offset: number | bigint, count: number): Promise<ReadResult> {
  return parseRead(await rpc.call(NFS, 3, 6, readCall(fh, offset, count)));
}

/** Reads a whole file with `depth` READs of `chunk` bytes in flight. */
export async function readAll(rpc: Rpc, fh: Buffer, size: number, chunk: number, depth = 4): Promise<Buffer> {
  const out = Buffer.alloc(size);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < size) {
      const off = next;
      next += chunk;
      const r = await read(rpc, fh, off, chunk);
      if (r.status !== 0) throw new Error(`READ at ${off}: status ${r.status}`);
      r.data!.copy(out, off);
      if (off + r.count! < size && r.count! < Math.min(chunk, size - off)) throw new Error(`short READ at ${off}: ${r.count}`);
    }
  };
  await Promise.all(Array.from({ length: depth }, worker));
  return out;
}

export interface DirEntryPlus {
  fileid: bigint;
  name: string;
  cookie: bigint;
  attrs?: Fattr;
  fh?: Buffer;
}

export interface DirPage {
  status: number;
  dirAttrs?: Fattr;
  verf?: Buffer;
  entries: DirEntryPlus[];
  eof?: boolean;
}

export async function readdir(rpc: Rpc, fh: Buffer, cookie: bigint, verf: Buffer, count: number, plus: boolean): Promise<DirPage> {
  const args = w().opaqueVar(fh).uint64(cookie).opaqueFixed(verf);
  if (plus) args.uint32(count).uint32(count);
  else args.uint32(count);
  const r = body(await rpc.call(NFS, 3, plus ? 17 : 16, args.finish()));
  const status = r.uint32();
  const dirAttrs = readPostOp(r);
  if (status !== 0) return { status, dirAttrs, entries: [] };
  const v = Buffer.from(r.opaqueFixed(8));
  const entries: DirEntryPlus[] = [];
  while (r.bool()) {
    const e: DirEntryPlus = { fileid: r.uint64(), name: r.string(1024), cookie: r.uint64() };
    if (plus) {
      e.attrs = readPostOp(r);
      if (r.bool()) e.fh = Buffer.from(r.opaqueVar(64));
    }
    entries.push(e);
  }
  const eof = r.bool();
  if (r.remaining !== 0) throw new Error(`READDIR reply has ${r.remaining} bytes left over`);
  return { status, dirAttrs, verf: v, entries, eof };
}

/** Every entry of a directory, page by page; also returns the page count. */
export async function readdirAll(rpc: Rpc, fh: Buffer, count: number, plus: boolean): Promise<{ entries: DirEntryPlus[]; pages: number }> {
  const all: DirEntryPlus[] = [];
  let cookie = 0n;
  let verf: Buffer = Buffer.alloc(8);
  for (let pages = 1; ; pages++) {
    const p = await readdir(rpc, fh, cookie, verf, count, plus);
    if (p.status !== 0) throw new Error(`READDIR status ${p.status}`);
    all.push(...p.entries);
    if (p.eof) return { entries: all, pages };
    if (p.entries.length === 0) throw new Error('READDIR: no entries and no eof');
    cookie = p.entries[p.entries.length - 1]!.cookie;
    verf = p.verf!;
    if (pages > 10_000) throw new Error('READDIR does not end');
  }
}
