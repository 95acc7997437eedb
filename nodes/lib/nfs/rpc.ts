/**
 * ONC RPC version 2 (RFC 5531): call decoding, reply encoding, and TCP record marking (§11).
 *
 * Trust policy: a call comes from anyone on the network. parseCall reads the fixed header with
 * a bounded XdrReader; what it cannot attribute to a call (fewer than 8 bytes, a REPLY, a header
 * cut short before the credential) is dropped without an answer, as RFC 5531 lets a server do
 * with garbage. Once it is a call: rpcvers other than 2 → MSG_DENIED RPC_MISMATCH(2, 2); a
 * credential other than AUTH_NONE or AUTH_SYS, or an AUTH_SYS body that does not parse (machine
 * name over 255 bytes, more than 16 groups, truncated), or any opaque body over 400 bytes →
 * MSG_DENIED AUTH_ERROR (AUTH_BADCRED; AUTH_REJECTEDCRED for AUTH_SHORT, which we never hand
 * out); a verifier other than an empty AUTH_NONE → AUTH_BADVERF. Arguments are left unread, as a
 * reader bounded to the message; the program decodes them and answers GARBAGE_ARGS on XdrError.
 *
 * Every reply carries an AUTH_NONE verifier of length 0 (klibc's nfsmount parses replies at
 * fixed offsets and insists on it). Replies are built with 4 spare bytes in front: TCP fills them
 * with the record mark and writes the whole Buffer at once (klibc reads a reply with one read()),
 * UDP sends the Buffer from offset 4; neither copies.
 *
 * RecordDecoder reassembles TCP records from fragments. A record longer than its maximum closes
 * the connection before anything is allocated for it (a mark of 2^31 - 1 costs nothing), and a
 * record never holds more than one accumulation buffer of at most the maximum.
 */
import { XdrError, XdrReader, XdrWriter } from './xdr';

export const RPC_VERSION = 2;
export const CALL = 0;
export const REPLY = 1;
export const MSG_ACCEPTED = 0;
export const MSG_DENIED = 1;

/** accept_stat */
export const SUCCESS = 0;
export const PROG_UNAVAIL = 1;
export const PROG_MISMATCH = 2;
export const PROC_UNAVAIL = 3;
export const GARBAGE_ARGS = 4;
export const SYSTEM_ERR = 5;

/** reject_stat */
export const RPC_MISMATCH = 0;
export const AUTH_ERROR = 1;

/** auth_stat */
export const AUTH_OK = 0;
export const AUTH_BADCRED = 1;
export const AUTH_REJECTEDCRED = 2;
export const AUTH_BADVERF = 3;
export const AUTH_REJECTEDVERF = 4;
export const AUTH_TOOWEAK = 5;

/** auth_flavor */
export const AUTH_NONE = 0;
export const AUTH_SYS = 1;
export const AUTH_SHORT = 2;
export const AUTH_DH = 3;
export const RPCSEC_GSS = 6;

/** opaque_auth bodies are at most 400 bytes (RFC 5531 §8.2). */
export const MAX_AUTH_BYTES = 400;
/** AUTH_SYS limits (RFC 5531 appendix A). */
export const MAX_MACHINENAME = 255;
export const MAX_GIDS = 16;

/** Bytes in front of every reply message reserved for the TCP record mark. */
export const MARK_SPACE = 4;
/** Record mark + accepted reply header (xid, REPLY, MSG_ACCEPTED, AUTH_NONE verf, accept_stat). */
export const ACCEPTED_HEADER_SIZE = MARK_SPACE + 24;

export interface AuthSys {
  stamp: number;
  machinename: string;
  uid: number;
  gid: number;
  gids: number[];
}

export type RpcCred = { flavor: typeof AUTH_NONE } | ({ flavor: typeof AUTH_SYS } & AuthSys);

export interface RpcCall {
  xid: number;
  prog: number;
  vers: number;
  proc: number;
  cred: RpcCred;
  /** The procedure's arguments: a reader over the rest of the message. */
  args: XdrReader;
}

export type CallParse =
  | { kind: 'call'; call: RpcCall }
  /** Answer with `reply` (a MSG_DENIED, with mark space in front). */
  | { kind: 'deny'; xid: number; reply: Buffer }
  /** Not an answerable call: drop it. */
  | { kind: 'drop'; reason: string };

function parseAuthSys(body: Buffer): AuthSys {
  const r = new XdrReader(body);
  const stamp = r.uint32();
  const machinename = r.string(MAX_MACHINENAME);
  const uid = r.uint32();
  const gid = r.uint32();
  const n = r.count(MAX_GIDS);
  const gids: number[] = [];
  for (let i = 0; i < n; i++) gids.push(r.uint32());
  return { stamp, machinename, uid, gid, gids };
}

/** Decodes the header of one RPC message (a UDP datagram or a reassembled TCP record). */
export function parseCall(msg: Buffer): CallParse {
  if (msg.length < 8) return { kind: 'drop', reason: `message of ${msg.length} bytes` };
  const r = new XdrReader(msg);
  const xid = r.uint32();
  const mtype = r.uint32();
  if (mtype !== CALL) return { kind: 'drop', reason: `message type ${mtype} is not a call` };
  let rpcvers: number, prog: number, vers: number, proc: number;
  try {
    rpcvers = r.uint32();
    if (rpcvers !== RPC_VERSION) return { kind: 'deny', xid, reply: rpcMismatchReply(xid) };
    prog = r.uint32();
    vers = r.uint32();
    proc = r.uint32();
  } catch {
    return { kind: 'drop', reason: 'call header cut short' };
  }
  let cred: RpcCred;
  try {
    const flavor = r.uint32();
    const body = r.opaqueVar(MAX_AUTH_BYTES);
    if (flavor === AUTH_NONE) cred = { flavor: AUTH_NONE };
    else if (flavor === AUTH_SYS) cred = { flavor: AUTH_SYS, ...parseAuthSys(body) };
    else return { kind: 'deny', xid, reply: authErrorReply(xid, flavor === AUTH_SHORT ? AUTH_REJECTEDCRED : AUTH_BADCRED) };
  } catch {
    return { kind: 'deny', xid, reply: authErrorReply(xid, AUTH_BADCRED) };
  }
  try {
    const vflavor = r.uint32();
    const vbody = r.opaqueVar(MAX_AUTH_BYTES);
    if (vflavor !== AUTH_NONE || vbody.length !== 0) return { kind: 'deny', xid, reply: authErrorReply(xid, AUTH_BADVERF) };
  } catch {
    return { kind: 'deny', xid, reply: authErrorReply(xid, AUTH_BADVERF) };
  }
  return { kind: 'call', call: { xid, prog, vers, proc, cred, args: new XdrReader(msg, r.offset) } };
}

/** A writer holding mark space and the header of an accepted reply; append the body, then finish(). */
export function acceptedWriter(xid: number, stat: number, sizeHint = 128): XdrWriter {
  const w = new XdrWriter(Math.max(sizeHint, ACCEPTED_HEADER_SIZE + 16));
  writeAcceptedHeader(w, xid, stat);
  return w;
}

/** Writes mark space and an accepted reply header at the writer's position. */
export function writeAcceptedHeader(w: XdrWriter, xid: number, stat: number): void {
  w.reserve(MARK_SPACE);
  w.uint32(xid).uint32(REPLY).uint32(MSG_ACCEPTED).uint32(AUTH_NONE).uint32(0).uint32(stat);
}

export function acceptedReply(xid: number, stat: number): Buffer {
  return acceptedWriter(xid, stat, ACCEPTED_HEADER_SIZE).finish();
}

export function progMismatchReply(xid: number, low: number, high: number): Buffer {
  return acceptedWriter(xid, PROG_MISMATCH, ACCEPTED_HEADER_SIZE + 8).uint32(low).uint32(high).finish();
}

function deniedWriter(xid: number, stat: number): XdrWriter {
  const w = new XdrWriter(MARK_SPACE + 24);
  w.reserve(MARK_SPACE);
  return w.uint32(xid).uint32(REPLY).uint32(MSG_DENIED).uint32(stat);
}

export function rpcMismatchReply(xid: number): Buffer {
  return deniedWriter(xid, RPC_MISMATCH).uint32(RPC_VERSION).uint32(RPC_VERSION).finish();
}

export function authErrorReply(xid: number, authStat: number): Buffer {
  return deniedWriter(xid, AUTH_ERROR).uint32(authStat).finish();
}

/** Fills the mark space of a reply for TCP: one last fragment holding the whole message. */
export function setRecordMark(reply: Buffer): Buffer {
  reply.writeUInt32BE((0x80000000 | (reply.length - MARK_SPACE)) >>> 0, 0);
  return reply;
}

/** The reply message without its mark space (for UDP). */
export function messageOf(reply: Buffer): Buffer {
  return reply.subarray(MARK_SPACE);
}

// ---------------------------------------------------------------------------------------------
// The client side: our portmapper registration and the tests use it.

export interface CallOptions {
  xid: number;
  prog: number;
  vers: number;
  proc: number;
  cred?: RpcCred;
  /** Encoded arguments. */
  args?: Buffer;
}

/** An RPC call message (no record mark). */
export function encodeCall(o: CallOptions): Buffer {
  const w = new XdrWriter(64 + (o.args?.length ?? 0));
  w.uint32(o.xid).uint32(CALL).uint32(RPC_VERSION).uint32(o.prog).uint32(o.vers).uint32(o.proc);
  const cred = o.cred ?? { flavor: AUTH_NONE };
  if (cred.flavor === AUTH_SYS) {
    const b = new XdrWriter(64);
    b.uint32(cred.stamp).string(cred.machinename).uint32(cred.uid).uint32(cred.gid).uint32(cred.gids.length);
    for (const g of cred.gids) b.uint32(g);
    w.uint32(AUTH_SYS).opaqueVar(b.finish());
  } else {
    w.uint32(AUTH_NONE).uint32(0);
  }
  w.uint32(AUTH_NONE).uint32(0);
  if (o.args) w.opaqueFixed(o.args);
  return w.finish();
}

/** One record, one fragment: a copy of `msg` with a record mark in front. */
export function withRecordMark(msg: Buffer): Buffer {
  const out = Buffer.allocUnsafe(msg.length + 4);
  out.writeUInt32BE((0x80000000 | msg.length) >>> 0, 0);
  msg.copy(out, 4);
  return out;
}

export type RpcReply =
  | { xid: number; accepted: true; stat: number; body: XdrReader; mismatch?: { low: number; high: number } }
  | { xid: number; accepted: false; rejectStat: number; authStat?: number; mismatch?: { low: number; high: number } };

/** Decodes a reply message (no record mark). Throws XdrError on anything malformed. */
export function parseReply(msg: Buffer): RpcReply {
  const r = new XdrReader(msg);
  const xid = r.uint32();
  const mtype = r.uint32();
  if (mtype !== REPLY) throw new XdrError('BAD_VALUE', `message type ${mtype} is not a reply`);
  const replyStat = r.uint32();
  if (replyStat === MSG_ACCEPTED) {
    r.uint32(); // verifier flavor
    r.opaqueVar(MAX_AUTH_BYTES);
    const stat = r.uint32();
    if (stat === PROG_MISMATCH) return { xid, accepted: true, stat, body: r, mismatch: { low: r.uint32(), high: r.uint32() } };
    return { xid, accepted: true, stat, body: r };
  }
  if (replyStat !== MSG_DENIED) throw new XdrError('BAD_VALUE', `reply_stat ${replyStat}`);
  const rejectStat = r.uint32();
  if (rejectStat === RPC_MISMATCH) return { xid, accepted: false, rejectStat, mismatch: { low: r.uint32(), high: r.uint32() } };
  return { xid, accepted: false, rejectStat, authStat: r.uint32() };
}

// ---------------------------------------------------------------------------------------------
// TCP record marking.

export class RecordError extends Error {
  override name = 'RecordError';
}

/** Fragments one record may have; more closes the connection (each costs a header parse). */
export const MAX_FRAGMENTS = 1024;

/**
 * Reassembles records from a TCP byte stream. push() the chunks as they arrive; next() returns
 * the next whole record or undefined, and throws RecordError for a record over `maxRecord` bytes
 * or with over MAX_FRAGMENTS fragments (the connection must then be closed). A record that is a
 * single fragment inside one chunk is returned as a view of the chunk; others are copied once
 * into a buffer that grows (at most to maxRecord) as their bytes arrive.
 */
export class RecordDecoder {
  private chunks: Buffer[] = [];
  private head = 0; // read position in chunks[0]
  private bufferedBytes = 0;
  private inFragment = false;
  private fragLeft = 0;
  private fragLast = false;
  private fragments = 0;
  private recordLen = 0;
  private acc: Buffer | undefined;

  constructor(readonly maxRecord: number) {}

  /** Bytes received and not yet returned as records. */
  get buffered(): number {
    return this.bufferedBytes + this.recordLen;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
  }

  private consume(n: number): void {
    this.head += n;
    this.bufferedBytes -= n;
    while (this.chunks.length && this.head >= this.chunks[0]!.length) {
      this.head -= this.chunks[0]!.length;
      this.chunks.shift();
    }
  }

  private readMark(): number {
    const first = this.chunks[0]!;
    if (first.length - this.head >= 4) {
      const v = first.readUInt32BE(this.head);
      this.consume(4);
      return v;
    }
    let v = 0;
    for (let i = 0; i < 4; i++) {
      v = v * 256 + this.chunks[0]![this.head]!;
      this.consume(1);
    }
    return v;
  }

  private append(src: Buffer, start: number, n: number): void {
    const need = this.recordLen + n;
    if (!this.acc || this.acc.length < need) {
      let size = Math.max(this.acc ? this.acc.length * 2 : 4096, need);
      size = Math.min(size, this.maxRecord);
      const next = Buffer.allocUnsafe(size);
      if (this.acc) this.acc.copy(next, 0, 0, this.recordLen);
      this.acc = next;
    }
    src.copy(this.acc, this.recordLen, start, start + n);
    this.recordLen += n;
  }

  next(): Buffer | undefined {
    for (;;) {
      if (!this.inFragment) {
        if (this.bufferedBytes < 4) return undefined;
        const mark = this.readMark();
        const len = mark & 0x7fffffff;
        this.fragLast = mark >= 0x80000000;
        if (++this.fragments > MAX_FRAGMENTS) throw new RecordError(`record of more than ${MAX_FRAGMENTS} fragments`);
        if (this.recordLen + len > this.maxRecord) {
          throw new RecordError(`record of ${this.recordLen + len}+ bytes exceeds ${this.maxRecord}`);
        }
        this.fragLeft = len;
        this.inFragment = true;
      }
      if (this.fragLeft > 0) {
        if (this.bufferedBytes === 0) return undefined;
        const first = this.chunks[0]!;
        const avail = first.length - this.head;
        // The common case: a whole one-fragment record inside the current chunk, no copy.
        if (this.fragLast && this.recordLen === 0 && avail >= this.fragLeft) {
          const rec = first.subarray(this.head, this.head + this.fragLeft);
          this.consume(this.fragLeft);
          this.resetRecord();
          return rec;
        }
        const n = Math.min(avail, this.fragLeft);
        this.append(first, this.head, n);
        this.consume(n);
        this.fragLeft -= n;
        if (this.fragLeft > 0) continue;
      }
      this.inFragment = false;
      if (!this.fragLast) continue;
      const rec = this.acc ? this.acc.subarray(0, this.recordLen) : Buffer.alloc(0);
      this.resetRecord();
      return rec;
    }
  }

  private resetRecord(): void {
    this.inFragment = false;
    this.fragLeft = 0;
    this.fragments = 0;
    this.recordLen = 0;
    this.acc = undefined;
  }
}
