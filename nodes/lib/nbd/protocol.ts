/**
 * The NBD wire protocol (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md), the
 * subset a read-only server with simple replies needs: the fixed newstyle handshake, option
 * haggling and transmission requests/replies. Pure encode/decode on Buffers; all integers are
 * big-endian. 64-bit offsets and sizes are bigint on the wire and numbers here (ISO images are far
 * below 2^53 bytes); decoders refuse what does not fit.
 */

export const NBDMAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
export const IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT"
export const OPTION_REPLY_MAGIC = 0x0003e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;

/** Handshake flags the server sends (16 bits). */
export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_NO_ZEROES = 1 << 1;
/** Client flags (32 bits) in answer. */
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_C_NO_ZEROES = 1 << 1;

/** Transmission flags (16 bits), per export. */
export const NBD_FLAG_HAS_FLAGS = 1 << 0;
export const NBD_FLAG_READ_ONLY = 1 << 1;
export const NBD_FLAG_SEND_FLUSH = 1 << 2;
export const NBD_FLAG_SEND_FUA = 1 << 3;
export const NBD_FLAG_ROTATIONAL = 1 << 4;
export const NBD_FLAG_SEND_TRIM = 1 << 5;
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
export const NBD_FLAG_SEND_DF = 1 << 7;
export const NBD_FLAG_CAN_MULTI_CONN = 1 << 8;

export const NBD_OPT_EXPORT_NAME = 1;
export const NBD_OPT_ABORT = 2;
export const NBD_OPT_LIST = 3;
export const NBD_OPT_STARTTLS = 5;
export const NBD_OPT_INFO = 6;
export const NBD_OPT_GO = 7;
export const NBD_OPT_STRUCTURED_REPLY = 8;
export const NBD_OPT_LIST_META_CONTEXT = 9;
export const NBD_OPT_SET_META_CONTEXT = 10;
export const NBD_OPT_EXTENDED_HEADERS = 11;

export const NBD_REP_ACK = 1;
export const NBD_REP_SERVER = 2;
export const NBD_REP_INFO = 3;
const REP_ERR = 0x80000000;
export const NBD_REP_ERR_UNSUP = (REP_ERR | 1) >>> 0;
export const NBD_REP_ERR_POLICY = (REP_ERR | 2) >>> 0;
export const NBD_REP_ERR_INVALID = (REP_ERR | 3) >>> 0;
export const NBD_REP_ERR_PLATFORM = (REP_ERR | 4) >>> 0;
export const NBD_REP_ERR_TLS_REQD = (REP_ERR | 5) >>> 0;
export const NBD_REP_ERR_UNKNOWN = (REP_ERR | 6) >>> 0;
export const NBD_REP_ERR_SHUTDOWN = (REP_ERR | 7) >>> 0;
export const NBD_REP_ERR_BLOCK_SIZE_REQD = (REP_ERR | 8) >>> 0;
export const NBD_REP_ERR_TOO_BIG = (REP_ERR | 9) >>> 0;

export function isReplyError(type: number): boolean {
  return (type & REP_ERR) !== 0;
}

export const NBD_INFO_EXPORT = 0;
export const NBD_INFO_NAME = 1;
export const NBD_INFO_DESCRIPTION = 2;
export const NBD_INFO_BLOCK_SIZE = 3;

export const NBD_CMD_READ = 0;
export const NBD_CMD_WRITE = 1;
export const NBD_CMD_DISC = 2;
export const NBD_CMD_FLUSH = 3;
export const NBD_CMD_TRIM = 4;
export const NBD_CMD_CACHE = 5;
export const NBD_CMD_WRITE_ZEROES = 6;
export const NBD_CMD_BLOCK_STATUS = 7;

export const NBD_CMD_FLAG_FUA = 1 << 0;

/** Error values in replies: the spec fixes them (they are Linux errno numbers). */
export const NBD_EPERM = 1;
export const NBD_EIO = 5;
export const NBD_ENOMEM = 12;
export const NBD_EINVAL = 22;
export const NBD_ENOSPC = 28;
export const NBD_EOVERFLOW = 75;
export const NBD_ENOTSUP = 95;
export const NBD_ESHUTDOWN = 108;

export const OPTION_HEADER_LENGTH = 16;
export const OPTION_REPLY_HEADER_LENGTH = 20;
export const REQUEST_LENGTH = 28;
export const SIMPLE_REPLY_LENGTH = 16;
/** Bytes of the EXPORT_NAME answer: size, flags, and 124 zeroes unless NO_ZEROES was agreed. */
export const EXPORT_NAME_REPLY_ZEROES = 124;

export class NbdProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NbdProtocolError';
  }
}

function toSafe(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new NbdProtocolError(`${what} ${v} is too large`);
  return Number(v);
}

// --- handshake -----------------------------------------------------------------------------------

/** The server's greeting: NBDMAGIC, IHAVEOPT, handshake flags. */
export function encodeGreeting(flags: number): Buffer {
  const b = Buffer.alloc(18);
  b.writeBigUInt64BE(NBDMAGIC, 0);
  b.writeBigUInt64BE(IHAVEOPT, 8);
  b.writeUInt16BE(flags, 16);
  return b;
}

export function decodeGreeting(b: Buffer): { flags: number } {
  if (b.length < 18) throw new NbdProtocolError('greeting too short');
  if (b.readBigUInt64BE(0) !== NBDMAGIC) throw new NbdProtocolError('bad NBDMAGIC');
  if (b.readBigUInt64BE(8) !== IHAVEOPT) throw new NbdProtocolError('not a newstyle server');
  return { flags: b.readUInt16BE(16) };
}

export function encodeClientFlags(flags: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(flags >>> 0, 0);
  return b;
}

// --- options -------------------------------------------------------------------------------------

export interface OptionHeader {
  option: number;
  length: number;
}

export function encodeOption(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(OPTION_HEADER_LENGTH + data.length);
  b.writeBigUInt64BE(IHAVEOPT, 0);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(data.length, 12);
  data.copy(b, OPTION_HEADER_LENGTH);
  return b;
}

/** The 16-byte header of a client option; the caller reads `length` data bytes after it. */
export function decodeOptionHeader(b: Buffer): OptionHeader {
  if (b.length < OPTION_HEADER_LENGTH) throw new NbdProtocolError('option header too short');
  if (b.readBigUInt64BE(0) !== IHAVEOPT) throw new NbdProtocolError('option without IHAVEOPT magic');
  return { option: b.readUInt32BE(8), length: b.readUInt32BE(12) };
}

export function encodeOptionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(OPTION_REPLY_HEADER_LENGTH + data.length);
  b.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(type >>> 0, 12);
  b.writeUInt32BE(data.length, 16);
  data.copy(b, OPTION_REPLY_HEADER_LENGTH);
  return b;
}

export interface OptionReplyHeader {
  option: number;
  type: number;
  length: number;
}

export function decodeOptionReplyHeader(b: Buffer): OptionReplyHeader {
  if (b.length < OPTION_REPLY_HEADER_LENGTH) throw new NbdProtocolError('option reply too short');
  if (b.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) throw new NbdProtocolError('bad option reply magic');
  return { option: b.readUInt32BE(8), type: b.readUInt32BE(12), length: b.readUInt32BE(16) };
}

/** NBD_OPT_INFO / NBD_OPT_GO data: the export name and the information types asked for. */
export interface InfoRequest {
  name: string;
  requests: number[];
}

export function encodeInfoRequest(req: InfoRequest): Buffer {
  const name = Buffer.from(req.name, 'utf8');
  const b = Buffer.alloc(4 + name.length + 2 + 2 * req.requests.length);
  b.writeUInt32BE(name.length, 0);
  name.copy(b, 4);
  b.writeUInt16BE(req.requests.length, 4 + name.length);
  req.requests.forEach((r, i) => b.writeUInt16BE(r, 6 + name.length + 2 * i));
  return b;
}

/** Refuses data whose declared lengths do not add up exactly (the spec's NBD_REP_ERR_INVALID). */
export function decodeInfoRequest(b: Buffer): InfoRequest {
  if (b.length < 6) throw new NbdProtocolError('info request too short');
  const nameLen = b.readUInt32BE(0);
  if (nameLen > b.length - 6) throw new NbdProtocolError('export name length exceeds the option');
  const name = decodeName(b.subarray(4, 4 + nameLen));
  const count = b.readUInt16BE(4 + nameLen);
  if (b.length !== 6 + nameLen + 2 * count) throw new NbdProtocolError('information request count does not match the option length');
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push(b.readUInt16BE(6 + nameLen + 2 * i));
  return { name, requests };
}

/** Export names are UTF-8 strings (spec); NUL bytes or invalid UTF-8 are refused. */
export function decodeName(b: Buffer): string {
  const s = b.toString('utf8');
  if (!Buffer.from(s, 'utf8').equals(b) || s.includes('\0')) throw new NbdProtocolError('export name is not valid UTF-8');
  return s;
}

/** NBD_REP_SERVER data for NBD_OPT_LIST: the name (and optional description). */
export function encodeServerReplyData(name: string, description = ''): Buffer {
  const n = Buffer.from(name, 'utf8');
  const d = Buffer.from(description, 'utf8');
  const b = Buffer.alloc(4 + n.length + d.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  d.copy(b, 4 + n.length);
  return b;
}

export function decodeServerReplyData(b: Buffer): { name: string; description: string } {
  if (b.length < 4) throw new NbdProtocolError('server reply too short');
  const len = b.readUInt32BE(0);
  if (len > b.length - 4) throw new NbdProtocolError('server reply name overruns');
  return { name: decodeName(b.subarray(4, 4 + len)), description: b.subarray(4 + len).toString('utf8') };
}

export function encodeInfoExport(size: number, flags: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(NBD_INFO_EXPORT, 0);
  b.writeBigUInt64BE(BigInt(size), 2);
  b.writeUInt16BE(flags, 10);
  return b;
}

export interface BlockSizes {
  minimum: number;
  preferred: number;
  maximum: number;
}

export function encodeInfoBlockSize(s: BlockSizes): Buffer {
  const b = Buffer.alloc(14);
  b.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 0);
  b.writeUInt32BE(s.minimum, 2);
  b.writeUInt32BE(s.preferred, 6);
  b.writeUInt32BE(s.maximum, 10);
  return b;
}

export function encodeInfoName(name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(2 + n.length);
  b.writeUInt16BE(NBD_INFO_NAME, 0);
  n.copy(b, 2);
  return b;
}

export type InfoReply =
  | { type: typeof NBD_INFO_EXPORT; size: number; flags: number }
  | { type: typeof NBD_INFO_NAME; name: string }
  | ({ type: typeof NBD_INFO_BLOCK_SIZE } & BlockSizes)
  | { type: number; raw: Buffer };

export function decodeInfoReply(b: Buffer): InfoReply {
  if (b.length < 2) throw new NbdProtocolError('info reply too short');
  const type = b.readUInt16BE(0);
  if (type === NBD_INFO_EXPORT) {
    if (b.length !== 12) throw new NbdProtocolError('NBD_INFO_EXPORT must be 12 bytes');
    return { type, size: toSafe(b.readBigUInt64BE(2), 'export size'), flags: b.readUInt16BE(10) };
  }
  if (type === NBD_INFO_NAME) return { type, name: decodeName(b.subarray(2)) };
  if (type === NBD_INFO_BLOCK_SIZE) {
    if (b.length !== 14) throw new NbdProtocolError('NBD_INFO_BLOCK_SIZE must be 14 bytes');
    return { type, minimum: b.readUInt32BE(2), preferred: b.readUInt32BE(6), maximum: b.readUInt32BE(10) };
  }
  return { type, raw: b.subarray(2) };
}

/** The old-style answer to NBD_OPT_EXPORT_NAME (no reply header). */
export function encodeExportNameReply(size: number, flags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(10 + (noZeroes ? 0 : EXPORT_NAME_REPLY_ZEROES));
  b.writeBigUInt64BE(BigInt(size), 0);
  b.writeUInt16BE(flags, 8);
  return b;
}

// --- transmission --------------------------------------------------------------------------------

export interface Request {
  flags: number;
  type: number;
  /** The client's opaque 8-byte cookie, echoed in the reply. */
  handle: Buffer;
  offset: number;
  length: number;
}

export function encodeRequest(r: Request): Buffer {
  const b = Buffer.alloc(REQUEST_LENGTH);
  b.writeUInt32BE(REQUEST_MAGIC, 0);
  b.writeUInt16BE(r.flags, 4);
  b.writeUInt16BE(r.type, 6);
  r.handle.copy(b, 8, 0, 8);
  b.writeBigUInt64BE(BigInt(r.offset), 16);
  b.writeUInt32BE(r.length >>> 0, 24);
  return b;
}

/**
 * Decodes a 28-byte request. An offset beyond 2^53 is reported as Infinity rather than thrown:
 * it is a valid request whose answer is EINVAL, not a reason to drop the connection.
 */
export function decodeRequest(b: Buffer): Request {
  if (b.length < REQUEST_LENGTH) throw new NbdProtocolError('request too short');
  const magic = b.readUInt32BE(0);
  if (magic !== REQUEST_MAGIC) throw new NbdProtocolError(`bad request magic 0x${magic.toString(16)}`);
  const off = b.readBigUInt64BE(16);
  return {
    flags: b.readUInt16BE(4),
    type: b.readUInt16BE(6),
    handle: Buffer.from(b.subarray(8, 16)),
    offset: off > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(off),
    length: b.readUInt32BE(24),
  };
}

/** A simple reply header; for a successful read, `dataLength` bytes of room follow it. */
export function encodeSimpleReply(error: number, handle: Buffer, dataLength = 0): Buffer {
  return writeSimpleReplyHeader(Buffer.allocUnsafe(SIMPLE_REPLY_LENGTH + dataLength), error, handle);
}

/** Writes a simple reply header at the start of `b` (which has room for it); returns `b`. */
export function writeSimpleReplyHeader(b: Buffer, error: number, handle: Buffer): Buffer {
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error >>> 0, 4);
  handle.copy(b, 8, 0, 8);
  return b;
}

export function decodeSimpleReply(b: Buffer): { error: number; handle: Buffer } {
  if (b.length < SIMPLE_REPLY_LENGTH) throw new NbdProtocolError('reply too short');
  if (b.readUInt32BE(0) !== SIMPLE_REPLY_MAGIC) throw new NbdProtocolError('bad reply magic');
  return { error: b.readUInt32BE(4), handle: Buffer.from(b.subarray(8, 16)) };
}

const OPTION_NAMES: Record<number, string> = {
  [NBD_OPT_EXPORT_NAME]: 'EXPORT_NAME',
  [NBD_OPT_ABORT]: 'ABORT',
  [NBD_OPT_LIST]: 'LIST',
  [NBD_OPT_STARTTLS]: 'STARTTLS',
  [NBD_OPT_INFO]: 'INFO',
  [NBD_OPT_GO]: 'GO',
  [NBD_OPT_STRUCTURED_REPLY]: 'STRUCTURED_REPLY',
  [NBD_OPT_LIST_META_CONTEXT]: 'LIST_META_CONTEXT',
  [NBD_OPT_SET_META_CONTEXT]: 'SET_META_CONTEXT',
  [NBD_OPT_EXTENDED_HEADERS]: 'EXTENDED_HEADERS',
};

export function optionName(opt: number): string {
  return OPTION_NAMES[opt] ?? `option ${opt}`;
}
