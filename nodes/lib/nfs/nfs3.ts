/**
 * The NFS program, 100003 version 3 (RFC 1813), read-only over a FileStore.
 *
 * Served: NULL, GETATTR, LOOKUP, ACCESS, READ, READDIR, READDIRPLUS, FSSTAT, FSINFO, PATHCONF.
 * READLINK answers NFS3ERR_INVAL (stores resolve symlinks themselves, so none is ever shown).
 * SETATTR, WRITE, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME, LINK and COMMIT answer
 * NFS3ERR_ROFS with the wcc_data / post_op_attr their result types require (a bad handle is
 * reported first: BADHANDLE / STALE). Version 2 is not served (PROG_MISMATCH(3, 3)).
 *
 * Trust policy: arguments are decoded with bounded readers (file handles ≤ 64 bytes, names ≤
 * 4096 bytes on the wire, else GARBAGE_ARGS). Names: '' → NOENT, '/' or NUL inside → INVAL,
 * over 255 bytes → NAMETOOLONG, invalid UTF-8 or '\' (a separator to the store's path rules) →
 * NOENT; '.' is the directory itself and '..' its parent (the root's parent is the root), so no
 * name leaves the store; the store's own path rules apply on top. Every reply is bounded: READ
 * by rtmax (1 MiB over TCP, 32 KiB over UDP), READDIR(PLUS) by the client's count, by 64 KiB and
 * by the transport; replyBound() states these bounds before the call runs (memory budget).
 *
 * READ builds its whole reply in one Buffer: the RPC and NFS headers in front, the file data
 * read by the store straight into place behind them, so the transport writes it once, uncopied.
 *
 * Directory cookies are positions in the store's sorted listing with '.' and '..' in front
 * (entry i has cookie i + 1); the cookie verifier is a hash of the listing, so it stays the
 * same while the directory does; a stale verifier with a non-zero cookie → NFS3ERR_BAD_COOKIE.
 * Listings (and their entries encoded for READDIR / READDIRPLUS) are cached per directory for
 * LISTING_TTL_MS, at most MAX_LISTINGS directories and MAX_LISTED_ENTRIES entries; past the TTL
 * the store is listed again, and an unchanged listing (same verifier) keeps its encodings.
 */
import { MAX_PATH_LENGTH } from '../store/path';
import { isStoreError, type FileStore, type StoreFile, type StoreStat } from '../store/types';
import type { ConnectionSession, RpcContext, RpcProgram } from './dispatch';
import { SMALL_REPLY } from './dispatch';
import { POST_OP_ATTR_SIZE, writeFattr, writePostOpAttr, writeWcc, type NodeAttrs } from './fattr';
import type { CachedFile, FileCache } from './file-cache';
import { FH_SIZE, fileIdOf, joinPath, parentOf, type HandleIndex } from './handles';
import * as C from './nfs3-const';
import type { ReplyPool } from './reply-pool';
import * as R from './rpc';
import { opaqueSize, pad4, XdrWriter, type XdrReader } from './xdr';

/** Largest READ over TCP (FSINFO rtmax), and over UDP (the reply must fit one datagram). */
export const TCP_RTMAX = 1024 * 1024;
export const UDP_RTMAX = 32 * 1024;
/** What FSINFO offers for writes (never accepted, but clients size their buffers by it). */
export const WTMAX = 64 * 1024;
/** Largest READDIR / READDIRPLUS reply, and the size FSINFO suggests. */
export const DIR_MAX = 64 * 1024;
export const DTPREF = 32 * 1024;

/** Record mark + RPC header + status + post_op_attr + count + eof + data length. */
export const READ_HEADER_SIZE = R.ACCEPTED_HEADER_SIZE + 4 + POST_OP_ATTR_SIZE + 12;
/**
 * The fixed part of READDIR3resok / READDIRPLUS3resok, which count / maxcount bound (RFC 1813:
 * "the size of the READDIRPLUS3resok structure"; the status word before it is not part of it):
 * dir_attributes, cookieverf, the list's end marker and eof.
 */
const DIR_FIXED = POST_OP_ATTR_SIZE + 8 + 8;
/** The parts of an entryplus3 beyond an entry3: post_op_attr and post_op_fh3. */
const PLUS_EXTRA = POST_OP_ATTR_SIZE + 4 + 4 + FH_SIZE;
/** A directory listing is reused this long (READDIR paging, then LOOKUPs). */
export const LISTING_TTL_MS = 1000;
/**
 * Attributes of a path are reused this long (GETATTR, and every procedure that reports them, asks
 * the store otherwise), at most MAX_ATTRS of them; READDIRPLUS listings fill the cache too.
 */
const ATTR_TTL_MS = 1000;
const MAX_ATTRS = 8192;
/** READs shorter than this start no read ahead (directory-sized reads, small files). */
const READ_AHEAD_MIN = 64 * 1024;
/** Directories whose listings are cached (oldest out first). */
export const MAX_LISTINGS = 256;
/** Entries held by the cached listings together (a listing over it is used once, not kept). */
const MAX_LISTED_ENTRIES = 100_000;

export function rtmaxOf(ctx: Pick<RpcContext, 'transport'>): number {
  return ctx.transport === 'udp' ? UDP_RTMAX : TCP_RTMAX;
}

/** Room for a directory reply of the client's `count`, within our cap and the transport. */
function dirRoom(count: number, ctx: RpcContext): number {
  return Math.min(count, DIR_MAX, ctx.maxReply - 24);
}

export interface Nfs3ProgramOptions {
  store: FileStore;
  handles: HandleIndex;
  files: FileCache;
  /** Where READ replies get their buffers (default: a fresh one each time). */
  pool?: ReplyPool;
  /** A READ answered: `length` bytes at `offset` of `path` (a file of `size` bytes). */
  onRead?: (ctx: RpcContext, path: string, offset: number, length: number, size: number) => void;
}

/** One entry of a listing. */
interface ListedEntry {
  name: Buffer;
  path: string;
  attrs: NodeAttrs;
}

/**
 * The entries of a listing encoded once as READDIR writes them (entry3 or entryplus3, with their
 * value_follows word and their cookie), back to back: a page of a reply is one copy of a slice.
 * offsets[k]..offsets[k+1] is listing entry k.
 */
interface Encoded {
  buf: Buffer;
  offsets: Uint32Array;
}

interface Listing {
  entries: ListedEntry[];
  verf: Buffer;
  at: number;
  /** Entries the store listed (before names over NAME_MAX were left out). */
  listed: number;
  plain?: Encoded;
  plus?: Encoded;
}

interface DirEntry {
  name: Buffer;
  fileid: number;
  attrs?: NodeAttrs;
}

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

interface ReadAhead {
  path: string;
  cached: CachedFile;
  offset: number;
  buf: Buffer;
  reserved: number;
  /** Bytes read into buf at READ_HEADER_SIZE. */
  done: Promise<number>;
}

/** Bytes of one entry3 (or entryplus3) with a name of `nameLength` bytes, value_follows included. */
function entrySize(nameLength: number, plus: boolean): number {
  return 4 + 8 + opaqueSize(nameLength) + 8 + (plus ? PLUS_EXTRA : 0);
}

/** Reads up to `length` bytes at `position` into buf[at…]; fewer only at the end of the file. */
async function readFully(file: StoreFile, buf: Buffer, at: number, length: number, position: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const n = await file.read(buf, at + got, length - got, position + got);
    if (n <= 0) break;
    got += n;
  }
  return got;
}

type Target = { ok: true; path: string; fileid: number; attrs: NodeAttrs } | { ok: false; status: number };

function attrsOf(fileid: number, st: Pick<StoreStat, 'isDirectory' | 'size' | 'mtime'>): NodeAttrs {
  return { fileid, isDirectory: st.isDirectory, size: st.size, mtime: st.mtime };
}

/** The NFS status of a store error: of an object a handle names (`handle`), or of a name. */
function statusOf(err: unknown, handle: boolean): number {
  if (isStoreError(err, 'ENOENT') || isStoreError(err, 'ENOTDIR') || isStoreError(err, 'EINVAL')) {
    return handle ? C.NFS3ERR_STALE : C.NFS3ERR_NOENT;
  }
  if (isStoreError(err, 'EACCES')) return C.NFS3ERR_ACCES;
  if (isStoreError(err, 'EISDIR')) return C.NFS3ERR_ISDIR;
  return C.NFS3ERR_IO;
}

/** A name from LOOKUP, checked: the name, or the status to answer. */
export function checkName(raw: Buffer): { ok: true; name: string } | { ok: false; status: number } {
  if (raw.length === 0) return { ok: false, status: C.NFS3ERR_NOENT };
  if (raw.length > C.NAME_MAX) return { ok: false, status: C.NFS3ERR_NAMETOOLONG };
  // Plain ASCII (the usual case) needs no UTF-8 round trip.
  let ascii = true;
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i]!;
    if (b === 0x2f || b === 0) return { ok: false, status: C.NFS3ERR_INVAL };
    if (b >= 0x80) ascii = false;
  }
  if (ascii) return raw.includes(0x5c) ? { ok: false, status: C.NFS3ERR_NOENT } : { ok: true, name: raw.toString('latin1') };
  const name = raw.toString('utf8');
  if (!Buffer.from(name, 'utf8').equals(raw) || name.includes('\\')) return { ok: false, status: C.NFS3ERR_NOENT };
  return { ok: true, name };
}

export class Nfs3Program implements RpcProgram {
  readonly prog = C.NFS_PROG;
  readonly name = 'nfs';
  readonly low = C.NFS_V3;
  readonly high = C.NFS_V3;
  readonly procs = 22;
  readonly fsid: number;
  /** READs answered from a read ahead. */
  readAheadHits = 0;
  /** Listings built (entries and encodings made anew); an unchanged directory re-listed is not one. */
  listingsBuilt = 0;
  private readonly attrCache = new Map<string, { st: Pick<StoreStat, 'isDirectory' | 'size' | 'mtime'>; at: number }>();
  private readonly listings = new Map<string, Listing>();
  private listedEntries = 0;
  private readonly listingLoads = new Map<string, Promise<Listing>>();
  private readonly aheads = new WeakMap<ConnectionSession, ReadAhead>();
  private readonly watched = new WeakSet<ConnectionSession>();

  /** Directory listings cached now (≤ MAX_LISTINGS). */
  get cachedListings(): number {
    return this.listings.size;
  }

  constructor(private readonly opts: Nfs3ProgramOptions) {
    this.fsid = opts.handles.generation.readUInt32BE(0);
  }

  replyBound(call: R.RpcCall, ctx: RpcContext): number {
    const peek = (): XdrReader => {
      const r = call.args.clone();
      r.opaqueVar(C.NFS3_FHSIZE);
      return r;
    };
    switch (call.proc) {
      case C.NFSPROC3.READ: {
        const r = peek();
        r.uint64();
        return READ_HEADER_SIZE + Math.min(r.uint32(), rtmaxOf(ctx)) + 4;
      }
      case C.NFSPROC3.READDIR: {
        const r = peek();
        r.skip(16);
        return R.ACCEPTED_HEADER_SIZE + Math.max(DIR_FIXED, dirRoom(r.uint32(), ctx));
      }
      case C.NFSPROC3.READDIRPLUS: {
        const r = peek();
        r.skip(20);
        return R.ACCEPTED_HEADER_SIZE + Math.max(DIR_FIXED, dirRoom(r.uint32(), ctx));
      }
      default:
        return SMALL_REPLY;
    }
  }

  handle(call: R.RpcCall, ctx: RpcContext): Promise<Buffer> | Buffer {
    const P = C.NFSPROC3;
    switch (call.proc) {
      case P.NULL:
        return R.acceptedReply(call.xid, R.SUCCESS);
      case P.GETATTR:
        return this.getattr(call);
      case P.LOOKUP:
        return this.lookup(call);
      case P.ACCESS:
        return this.access(call);
      case P.READLINK:
        return this.readlink(call);
      case P.READ:
        return this.read(call, ctx);
      case P.READDIR:
        return this.readdir(call, ctx, false);
      case P.READDIRPLUS:
        return this.readdir(call, ctx, true);
      case P.FSSTAT:
        return this.fsstat(call);
      case P.FSINFO:
        return this.fsinfo(call, ctx);
      case P.PATHCONF:
        return this.pathconf(call);
      case P.RENAME:
        return this.rofsRename(call);
      case P.LINK:
        return this.rofsLink(call);
      default:
        // SETATTR, WRITE, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, COMMIT: one wcc_data.
        return this.rofsWcc(call);
    }
  }

  // -------------------------------------------------------------------------------------------

  private reply(call: R.RpcCall, status: number, size = 256): XdrWriter {
    return R.acceptedWriter(call.xid, R.SUCCESS, size).uint32(status);
  }

  /** The store's stat of a path, from the attribute cache when fresh. Throws the store's errors. */
  private async stat(path: string): Promise<Pick<StoreStat, 'isDirectory' | 'size' | 'mtime'>> {
    const c = this.attrCache.get(path);
    if (c && Date.now() - c.at < ATTR_TTL_MS) return c.st;
    const st = await this.opts.store.stat(path);
    this.cacheAttrs(path, st);
    return st;
  }

  private cacheAttrs(path: string, st: Pick<StoreStat, 'isDirectory' | 'size' | 'mtime'>, at = Date.now()): void {
    // Insertion order is the eviction order (an update keeps its place: cheaper than an LRU).
    const c = this.attrCache.get(path);
    if (c) {
      c.st = st;
      c.at = at;
      return;
    }
    this.attrCache.set(path, { st, at });
    if (this.attrCache.size > MAX_ATTRS) this.attrCache.delete(this.attrCache.keys().next().value!);
  }

  /** The object a handle names, with its attributes. */
  private async target(fh: Buffer): Promise<Target> {
    const res = await this.opts.handles.resolve(fh);
    if (!res.ok) return res;
    try {
      return { ok: true, path: res.path, fileid: res.fileid, attrs: attrsOf(res.fileid, await this.stat(res.path)) };
    } catch (err) {
      return { ok: false, status: statusOf(err, true) };
    }
  }

  private async statOf(path: string): Promise<NodeAttrs | undefined> {
    try {
      return attrsOf(fileIdOf(path), await this.stat(path));
    } catch {
      return undefined;
    }
  }

  private async getattr(call: R.RpcCall): Promise<Buffer> {
    const t = await this.target(call.args.opaqueVar(C.NFS3_FHSIZE));
    if (!t.ok) return this.reply(call, t.status).finish();
    const w = this.reply(call, C.NFS3_OK);
    writeFattr(w, t.attrs, this.fsid);
    return w.finish();
  }

  private async lookup(call: R.RpcCall): Promise<Buffer> {
    const fh = call.args.opaqueVar(C.NFS3_FHSIZE);
    const raw = call.args.opaqueVar(C.MAX_NAME_WIRE);
    const dir = await this.target(fh);
    if (!dir.ok) return this.reply(call, dir.status).bool(false).finish();
    const failWith = (status: number): Buffer => {
      const w = this.reply(call, status);
      writePostOpAttr(w, dir.attrs, this.fsid);
      return w.finish();
    };
    if (!dir.attrs.isDirectory) return failWith(C.NFS3ERR_NOTDIR);
    const checked = checkName(raw);
    if (!checked.ok) return failWith(checked.status);
    const name = checked.name;
    const childPath = name === '.' ? dir.path : name === '..' ? parentOf(dir.path) : joinPath(dir.path, name);
    if (childPath.length > MAX_PATH_LENGTH) return failWith(C.NFS3ERR_NAMETOOLONG);
    let child: NodeAttrs;
    try {
      const st = await this.stat(childPath);
      child = attrsOf(this.opts.handles.remember(childPath), st);
    } catch (err) {
      return failWith(statusOf(err, false));
    }
    const w = this.reply(call, C.NFS3_OK, 320);
    this.opts.handles.writeHandle(w, child.fileid);
    writePostOpAttr(w, child, this.fsid);
    writePostOpAttr(w, dir.attrs, this.fsid);
    return w.finish();
  }

  private async access(call: R.RpcCall): Promise<Buffer> {
    const fh = call.args.opaqueVar(C.NFS3_FHSIZE);
    const wanted = call.args.uint32();
    const t = await this.target(fh);
    if (!t.ok) return this.reply(call, t.status).bool(false).finish();
    // Read-only: directories can be listed and searched, files read; nothing else.
    const allowed = t.attrs.isDirectory ? C.ACCESS3_READ | C.ACCESS3_LOOKUP | C.ACCESS3_EXECUTE : C.ACCESS3_READ;
    const w = this.reply(call, C.NFS3_OK);
    writePostOpAttr(w, t.attrs, this.fsid);
    return w.uint32(wanted & allowed).finish();
  }

  private async readlink(call: R.RpcCall): Promise<Buffer> {
    const t = await this.target(call.args.opaqueVar(C.NFS3_FHSIZE));
    if (!t.ok) return this.reply(call, t.status).bool(false).finish();
    const w = this.reply(call, C.NFS3ERR_INVAL);
    writePostOpAttr(w, t.attrs, this.fsid);
    return w.finish();
  }

  private async read(call: R.RpcCall, ctx: RpcContext): Promise<Buffer> {
    const fh = call.args.opaqueVar(C.NFS3_FHSIZE);
    const offset = call.args.uint64Number();
    const count = call.args.uint32();
    const res = await this.opts.handles.resolve(fh);
    if (!res.ok) return this.reply(call, res.status).bool(false).finish();
    let cached;
    try {
      cached = await this.opts.files.acquire(res.path);
    } catch (err) {
      const status = statusOf(err, true);
      const w = this.reply(call, status);
      writePostOpAttr(w, status === C.NFS3ERR_ISDIR ? await this.statOf(res.path) : undefined, this.fsid);
      return w.finish();
    }
    try {
      const file = cached.file;
      const size = file.size;
      const want = offset >= size ? 0 : Math.min(count, rtmaxOf(ctx), size - offset);
      let buf: Buffer | undefined;
      let got = 0;
      const ahead = this.takeReadAhead(ctx, res.path, cached, offset);
      if (ahead) {
        // The data is there already (or on its way): a sequential reader's next READ.
        const n = await ahead.done.catch(() => -1);
        if (n > 0) {
          this.readAheadHits++;
          buf = ahead.buf;
          got = Math.min(n, want); // fewer than asked is a short read, which NFS allows
        }
        this.finishReadAhead(ctx.session!, ahead, n > 0);
      }
      if (!buf) {
        // One buffer for the whole reply; the data is read straight into its place.
        const total = READ_HEADER_SIZE + want + pad4(want);
        buf = this.opts.pool ? this.opts.pool.take(total) : Buffer.allocUnsafe(total);
        got = await readFully(file, buf, READ_HEADER_SIZE, want, offset);
      }
      const attrs: NodeAttrs = { fileid: res.fileid, isDirectory: false, size, mtime: file.mtime };
      if (got === 0 && want > 0) {
        const w = this.reply(call, C.NFS3ERR_IO);
        writePostOpAttr(w, attrs, this.fsid);
        return w.finish();
      }
      const p = pad4(got);
      buf.fill(0, READ_HEADER_SIZE + got, READ_HEADER_SIZE + got + p);
      const w = new XdrWriter(0, buf, 0);
      R.writeAcceptedHeader(w, call.xid, R.SUCCESS);
      w.uint32(C.NFS3_OK);
      writePostOpAttr(w, attrs, this.fsid);
      w.uint32(got).bool(offset + got >= size).uint32(got);
      this.opts.onRead?.(ctx, res.path, offset, got, size);
      this.deferReadAhead(ctx, res.path, cached, offset + got, got);
      return buf.subarray(0, READ_HEADER_SIZE + got + p);
    } catch (err) {
      const w = this.reply(call, statusOf(err, true));
      return w.bool(false).finish();
    } finally {
      this.opts.files.release(cached);
    }
  }

  // --- read ahead ---------------------------------------------------------------------------------
  //
  // A client that reads one READ at a time (libnfs's nfs-cp, a single-threaded reader) waits for
  // each reply before it asks for the next, so the store's read latency adds up READ after READ.
  // When a connection has nothing else running and a READ of at least READ_AHEAD_MIN bytes ends,
  // the next piece of the same size is read into a reply-shaped buffer at once; the next READ of
  // exactly that offset only has to write it. Clients that keep several READs in flight (the
  // Linux kernel) hide the latency themselves and get no read ahead. Bounds: one read ahead per
  // connection, at most rtmax bytes, reserved from the connection's budget while the server's reply
  // bytes stay under half its shared pool (skipped otherwise), dropped when another READ comes or the connection
  // ends.

  private takeReadAhead(ctx: RpcContext, path: string, cached: CachedFile, offset: number): ReadAhead | undefined {
    const session = ctx.session;
    if (!session) return undefined;
    const ahead = this.aheads.get(session);
    if (!ahead) return undefined;
    this.aheads.delete(session);
    if (ahead.path === path && ahead.cached === cached && ahead.offset === offset) return ahead;
    this.finishReadAhead(session, ahead, false);
    return undefined;
  }

  /** Ends a read ahead: its buffer was used for a reply (`used`), or goes back to the pool. */
  private finishReadAhead(session: ConnectionSession, ahead: ReadAhead, used: boolean): void {
    const done = ahead.done
      .catch(() => 0)
      .then(() => {
        session.unreserve(ahead.reserved);
        this.opts.files.release(ahead.cached);
        if (!used) this.opts.pool?.release(ahead.buf);
      });
    session.track(done);
  }

  /**
   * Starts the read ahead once this READ's reply has been handed to the socket (setImmediate runs
   * after the reply's write): with the server on one CPU, the store read (a thread-pool job)
   * would otherwise run first and delay the reply the client is waiting for.
   */
  private deferReadAhead(ctx: RpcContext, path: string, cached: CachedFile, next: number, length: number): void {
    const session = ctx.session;
    if (!session || session.closed || length < READ_AHEAD_MIN || next >= cached.file.size) return;
    this.opts.files.retain(cached);
    session.track(
      new Promise<void>((resolve) =>
        setImmediate(() => {
          try {
            this.startReadAhead(ctx, path, cached, next, length);
          } finally {
            this.opts.files.release(cached);
            resolve();
          }
        }),
      ),
    );
  }

  private startReadAhead(ctx: RpcContext, path: string, cached: CachedFile, next: number, length: number): void {
    const session = ctx.session;
    const size = cached.file.size;
    // Only when nothing else runs on the connection (this READ has ended).
    if (!session || session.closed || session.inflight > 0 || this.aheads.has(session) || length < READ_AHEAD_MIN || next >= size) return;
    const want = Math.min(length, size - next, rtmaxOf(ctx));
    const total = READ_HEADER_SIZE + want + 4;
    if (!session.tryReserve(total)) return;
    this.opts.files.retain(cached);
    const buf = this.opts.pool ? this.opts.pool.take(total) : Buffer.allocUnsafe(total);
    const ahead: ReadAhead = { path, cached, offset: next, buf, reserved: total, done: readFully(cached.file, buf, READ_HEADER_SIZE, want, next) };
    ahead.done.catch(() => undefined);
    this.aheads.set(session, ahead);
    if (!this.watched.has(session)) {
      this.watched.add(session);
      session.onClose(() => {
        const left = this.aheads.get(session);
        this.aheads.delete(session);
        if (left) this.finishReadAhead(session, left, false);
      });
    }
  }

  /** A directory's sorted listing and its verifier, shared for LISTING_TTL_MS. */
  private listing(path: string): Promise<Listing> {
    const cached = this.listings.get(path);
    if (cached && Date.now() - cached.at < LISTING_TTL_MS) return Promise.resolve(cached);
    let p = this.listingLoads.get(path);
    if (p) return p;
    p = (async () => {
      const listed = await this.opts.store.list(path);
      const now = Date.now();
      // The verifier: a hash of names, kinds, sizes and times (not cryptographic; it only has to
      // change when the directory does).
      let h1 = 0x3c6ef372;
      let h2 = 0x1b873593;
      for (const e of listed) {
        const key = `${e.name}/${e.isDirectory ? 1 : 0}/${e.size}/${e.mtime.getTime()}`;
        for (let i = 0; i < key.length; i++) {
          const c = key.charCodeAt(i);
          h1 = Math.imul(h1 ^ c, 0x01000193);
          h2 = Math.imul(h2 ^ c, 0x5bd1e995) ^ (h2 >>> 15);
        }
      }
      const verf = Buffer.allocUnsafe(8);
      verf.writeInt32BE(h1 | 0, 0);
      verf.writeInt32BE((h2 ^ listed.length) | 0, 4);
      if (verf.every((b) => b === 0)) verf[7] = 1; // 0 means "no verifier"
      const old = this.listings.get(path);
      if (old && old.verf.equals(verf) && old.listed === listed.length) {
        // Unchanged since it was built (same verifier): keep its entries and their encodings, and
        // only refresh what the TTLs count on (the attribute cache, the handle index).
        old.at = now;
        for (const e of old.entries) {
          this.opts.handles.remember(e.path, e.attrs.fileid);
          this.cacheAttrs(e.path, e.attrs, now);
        }
        this.listings.delete(path);
        this.listings.set(path, old);
        return old;
      }
      this.listingsBuilt++;
      const entries: ListedEntry[] = [];
      for (const e of listed) {
        const name = Buffer.from(e.name, 'utf8');
        if (name.length > C.NAME_MAX) continue; // could not be looked up anyway
        const childPath = joinPath(path, e.name);
        const fileid = this.opts.handles.remember(childPath);
        const attrs = attrsOf(fileid, e);
        this.cacheAttrs(childPath, attrs, now);
        entries.push({ name, path: childPath, attrs });
      }
      const l: Listing = { entries, verf, at: now, listed: listed.length };
      if (old) {
        this.listings.delete(path);
        this.listedEntries -= old.entries.length;
      }
      if (entries.length <= MAX_LISTED_ENTRIES) {
        this.listings.set(path, l);
        this.listedEntries += entries.length;
        while (this.listings.size > MAX_LISTINGS || this.listedEntries > MAX_LISTED_ENTRIES) {
          const [k, v] = this.listings.entries().next().value!;
          this.listings.delete(k);
          this.listedEntries -= v.entries.length;
        }
      }
      return l;
    })().finally(() => this.listingLoads.delete(path));
    this.listingLoads.set(path, p);
    return p;
  }

  /** The listing's entries encoded for READDIR (`plus` false) or READDIRPLUS, once per listing. */
  private encoded(listing: Listing, plus: boolean): Encoded {
    const have = plus ? listing.plus : listing.plain;
    if (have) return have;
    const n = listing.entries.length;
    let size = 0;
    for (const e of listing.entries) size += entrySize(e.name.length, plus);
    const w = new XdrWriter(0, Buffer.allocUnsafe(size));
    const offsets = new Uint32Array(n + 1);
    for (let k = 0; k < n; k++) {
      const e = listing.entries[k]!;
      offsets[k] = w.offset;
      // The cookie of listing entry k is its position after '.' and '..', plus one.
      w.bool(true).uint64(e.attrs.fileid).opaqueVar(e.name).uint64(k + 3);
      if (plus) {
        writePostOpAttr(w, e.attrs, this.fsid);
        w.bool(true);
        this.opts.handles.writeHandle(w, e.attrs.fileid);
      }
    }
    offsets[n] = w.offset;
    const enc: Encoded = { buf: w.finish(), offsets };
    if (plus) listing.plus = enc;
    else listing.plain = enc;
    return enc;
  }

  private async readdir(call: R.RpcCall, ctx: RpcContext, plus: boolean): Promise<Buffer> {
    const r = call.args;
    const fh = r.opaqueVar(C.NFS3_FHSIZE);
    const cookie = r.uint64Number();
    const verf = r.opaqueFixed(8);
    if (plus) r.uint32(); // dircount: like Linux nfsd, only maxcount limits the reply
    const count = r.uint32();
    const dir = await this.target(fh);
    if (!dir.ok) return this.reply(call, dir.status).bool(false).finish();
    const failWith = (status: number): Buffer => {
      const w = this.reply(call, status);
      writePostOpAttr(w, dir.attrs, this.fsid);
      return w.finish();
    };
    if (!dir.attrs.isDirectory) return failWith(C.NFS3ERR_NOTDIR);
    let listing: Listing;
    try {
      listing = await this.listing(dir.path);
    } catch (err) {
      return failWith(statusOf(err, true));
    }
    if (cookie !== 0 && !verf.every((b) => b === 0) && !verf.equals(listing.verf)) return failWith(C.NFS3ERR_BAD_COOKIE);
    const total = listing.entries.length + 2;
    const room0 = dirRoom(count, ctx);
    let room = room0 - DIR_FIXED;
    const start = Math.min(cookie, total);
    const enc = start < total ? this.encoded(listing, plus) : undefined;
    // Sized for the whole reply at once (no regrowth while entries are written), and no larger than
    // what is left of the listing: clients ask for up to 64 KiB per call, and a buffer that size
    // per call for a 50-entry directory is mostly garbage to collect.
    let left = enc ? enc.buf.length - enc.offsets[Math.max(0, start - 2)]! : 0;
    for (let k = start; k < 2; k++) left += entrySize(k + 1, plus);
    const w = this.reply(call, C.NFS3_OK, R.ACCEPTED_HEADER_SIZE + 16 + DIR_FIXED + Math.max(0, Math.min(room, left)));
    writePostOpAttr(w, dir.attrs, this.fsid);
    w.opaqueFixed(listing.verf);
    let i = start;
    let sent = 0;
    // '.' and '..' (the root's parent is the root), written for this request.
    for (; i < 2; i++) {
      const e: DirEntry =
        i === 0
          ? { name: DOT, fileid: dir.fileid, attrs: dir.attrs }
          : { name: DOTDOT, fileid: fileIdOf(parentOf(dir.path)), attrs: plus ? await this.statOf(parentOf(dir.path)) : undefined };
      const size = entrySize(e.name.length, plus);
      if (size > room) break;
      w.bool(true).uint64(e.fileid).opaqueVar(e.name).uint64(i + 1);
      if (plus) {
        writePostOpAttr(w, e.attrs, this.fsid);
        w.bool(true);
        this.opts.handles.writeHandle(w, e.fileid);
      }
      room -= size;
      sent++;
    }
    // The listing's entries: as many whole pre-encoded entries as fit, in one copy.
    if (i >= 2 && i < total && enc) {
      const first = i - 2;
      let last = first;
      const limit = enc.offsets[first]! + room;
      while (last < listing.entries.length && enc.offsets[last + 1]! <= limit) last++;
      if (last > first) {
        w.raw(enc.buf.subarray(enc.offsets[first], enc.offsets[last]));
        sent += last - first;
        i = last + 2;
      }
    }
    if (sent === 0 && i < total) return failWith(C.NFS3ERR_TOOSMALL);
    return w.bool(false).bool(i >= total).finish();
  }

  private async fsstat(call: R.RpcCall): Promise<Buffer> {
    const t = await this.target(call.args.opaqueVar(C.NFS3_FHSIZE));
    if (!t.ok) return this.reply(call, t.status).bool(false).finish();
    const w = this.reply(call, C.NFS3_OK);
    writePostOpAttr(w, t.attrs, this.fsid);
    const s = this.opts.store as { size?: unknown };
    const total = typeof s.size === 'number' && Number.isSafeInteger(s.size) && s.size > 0 ? s.size : 0;
    w.uint64(total).uint64(0).uint64(0); // tbytes, fbytes, abytes: nothing free, nothing writable
    w.uint64(this.opts.handles.size + 1).uint64(0).uint64(0); // tfiles, ffiles, afiles
    return w.uint32(0).finish(); // invarsec
  }

  private async fsinfo(call: R.RpcCall, ctx: RpcContext): Promise<Buffer> {
    const t = await this.target(call.args.opaqueVar(C.NFS3_FHSIZE));
    if (!t.ok) return this.reply(call, t.status).bool(false).finish();
    const w = this.reply(call, C.NFS3_OK);
    writePostOpAttr(w, t.attrs, this.fsid);
    const rtmax = rtmaxOf(ctx);
    w.uint32(rtmax).uint32(rtmax).uint32(4096); // rtmax, rtpref, rtmult
    w.uint32(WTMAX).uint32(WTMAX).uint32(4096); // wtmax, wtpref, wtmult
    w.uint32(DTPREF);
    w.uint64((1n << 63n) - 1n); // maxfilesize (a bigint: over 2^53)
    w.uint32(0).uint32(1_000_000); // time_delta: store times have millisecond resolution at best
    return w.uint32(C.FSF3_HOMOGENEOUS).finish();
  }

  private async pathconf(call: R.RpcCall): Promise<Buffer> {
    const t = await this.target(call.args.opaqueVar(C.NFS3_FHSIZE));
    if (!t.ok) return this.reply(call, t.status).bool(false).finish();
    const w = this.reply(call, C.NFS3_OK);
    writePostOpAttr(w, t.attrs, this.fsid);
    w.uint32(1).uint32(C.NAME_MAX); // linkmax, name_max
    return w.bool(true).bool(true).bool(false).bool(true).finish(); // no_trunc, chown_restricted, case_insensitive, case_preserving
  }

  // --- the modifying procedures: NFS3ERR_ROFS ---------------------------------------------------

  private async wccOf(fh: Buffer): Promise<{ status: number; attrs?: NodeAttrs }> {
    const t = await this.target(fh);
    return t.ok ? { status: C.NFS3ERR_ROFS, attrs: t.attrs } : { status: t.status };
  }

  private async rofsWcc(call: R.RpcCall): Promise<Buffer> {
    const { status, attrs } = await this.wccOf(call.args.opaqueVar(C.NFS3_FHSIZE));
    const w = this.reply(call, status);
    writeWcc(w, attrs, this.fsid);
    return w.finish();
  }

  private async rofsRename(call: R.RpcCall): Promise<Buffer> {
    const fromFh = call.args.opaqueVar(C.NFS3_FHSIZE);
    call.args.opaqueVar(C.MAX_NAME_WIRE);
    const toFh = call.args.opaqueVar(C.NFS3_FHSIZE);
    const from = await this.wccOf(fromFh);
    const to = await this.wccOf(toFh);
    const w = this.reply(call, from.status !== C.NFS3ERR_ROFS ? from.status : to.status, 512);
    writeWcc(w, from.attrs, this.fsid);
    writeWcc(w, to.attrs, this.fsid);
    return w.finish();
  }

  private async rofsLink(call: R.RpcCall): Promise<Buffer> {
    const fileFh = call.args.opaqueVar(C.NFS3_FHSIZE);
    const dirFh = call.args.opaqueVar(C.NFS3_FHSIZE);
    const file = await this.wccOf(fileFh);
    const dir = await this.wccOf(dirFh);
    const w = this.reply(call, file.status !== C.NFS3ERR_ROFS ? file.status : dir.status, 512);
    writePostOpAttr(w, file.attrs, this.fsid);
    writeWcc(w, dir.attrs, this.fsid);
    return w.finish();
  }
}
