/**
 * TFTP packets (RFC 1350, OACK from RFC 2347): typed decode and encode. Decoding never trusts the
 * input: every string must be NUL-terminated inside the datagram, and anything else is a
 * TftpDecodeError that the server answers (or drops) without ever throwing past its handler.
 */

export const Opcode = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;
export type OpcodeValue = (typeof Opcode)[keyof typeof Opcode];

/** RFC 1350 error codes, plus 8 from RFC 2347 (option negotiation refused). */
export const ErrorCode = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  DISK_FULL: 3,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TID: 5,
  FILE_EXISTS: 6,
  NO_SUCH_USER: 7,
  OPTION_REFUSED: 8,
} as const;

/** One option of a request or OACK, in the order it was sent. Names are lower-cased on decode. */
export interface TftpOption {
  name: string;
  value: string;
}

export interface RequestPacket {
  op: typeof Opcode.RRQ | typeof Opcode.WRQ;
  filename: string;
  /** Lower-cased transfer mode as sent ('octet', 'netascii', 'mail' or anything else). */
  mode: string;
  options: TftpOption[];
}
export interface DataPacket {
  op: typeof Opcode.DATA;
  block: number;
  data: Buffer;
}
export interface AckPacket {
  op: typeof Opcode.ACK;
  block: number;
}
export interface ErrorPacket {
  op: typeof Opcode.ERROR;
  code: number;
  message: string;
}
export interface OackPacket {
  op: typeof Opcode.OACK;
  options: TftpOption[];
}
export type TftpPacket = RequestPacket | DataPacket | AckPacket | ErrorPacket | OackPacket;

/** The largest DATA payload RFC 2348 allows. */
export const MAX_BLKSIZE = 65464;
/** RFC 1350's block size, used when the client does not negotiate one. */
export const DEFAULT_BLKSIZE = 512;
/** Error and OACK packets are kept within the classic 512-byte request size. */
const MAX_SMALL_PACKET = 512;
/** A request carrying more options than this is not from a real client. */
export const MAX_OPTIONS = 32;

export class TftpDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TftpDecodeError';
  }
}

/** Reads a NUL-terminated string starting at `pos`; returns it and the position after the NUL. */
function readString(buf: Buffer, pos: number, what: string): [string, number] {
  const end = buf.indexOf(0, pos);
  if (end < 0) throw new TftpDecodeError(`${what} is not NUL-terminated`);
  return [buf.toString('utf8', pos, end), end + 1];
}

function decodeOptions(buf: Buffer, pos: number): TftpOption[] {
  const options: TftpOption[] = [];
  while (pos < buf.length) {
    if (options.length >= MAX_OPTIONS) throw new TftpDecodeError(`more than ${MAX_OPTIONS} options`);
    let name: string;
    let value: string;
    [name, pos] = readString(buf, pos, 'option name');
    // Some clients pad requests with NULs after the last option: tolerate trailing empties.
    if (name === '' && buf.subarray(pos - 1).every((b) => b === 0)) break;
    if (name === '') throw new TftpDecodeError('empty option name');
    [value, pos] = readString(buf, pos, `value of option ${name}`);
    options.push({ name: name.toLowerCase(), value });
  }
  return options;
}

/** Decodes one datagram. Throws TftpDecodeError for anything that is not a well-formed packet. */
export function decode(buf: Buffer): TftpPacket {
  if (buf.length < 2) throw new TftpDecodeError(`packet of ${buf.length} bytes is too short`);
  const op = buf.readUInt16BE(0);
  switch (op) {
    case Opcode.RRQ:
    case Opcode.WRQ: {
      const [filename, p1] = readString(buf, 2, 'filename');
      if (filename === '') throw new TftpDecodeError('empty filename');
      const [mode, p2] = readString(buf, p1, 'mode');
      if (mode === '') throw new TftpDecodeError('empty mode');
      return { op, filename, mode: mode.toLowerCase(), options: decodeOptions(buf, p2) };
    }
    case Opcode.DATA:
      if (buf.length < 4) throw new TftpDecodeError('DATA shorter than its header');
      return { op, block: buf.readUInt16BE(2), data: buf.subarray(4) };
    case Opcode.ACK:
      if (buf.length < 4) throw new TftpDecodeError('ACK shorter than 4 bytes');
      return { op, block: buf.readUInt16BE(2) };
    case Opcode.ERROR: {
      if (buf.length < 4) throw new TftpDecodeError('ERROR shorter than its header');
      const code = buf.readUInt16BE(2);
      // The message should be NUL-terminated; a missing NUL is common enough to accept.
      const end = buf.indexOf(0, 4);
      return { op, code, message: buf.toString('utf8', 4, end < 0 ? buf.length : end) };
    }
    case Opcode.OACK:
      return { op, options: decodeOptions(buf, 2) };
    default:
      throw new TftpDecodeError(`unknown opcode ${op}`);
  }
}

/** The opcode of a datagram without decoding the rest (0 if it is too short). */
export function peekOpcode(buf: Buffer): number {
  return buf.length >= 2 ? buf.readUInt16BE(0) : 0;
}

function strings(parts: string[]): Buffer[] {
  const out: Buffer[] = [];
  for (const s of parts) {
    if (s.includes('\0')) throw new RangeError('TFTP strings cannot contain NUL');
    out.push(Buffer.from(s, 'utf8'), Buffer.alloc(1));
  }
  return out;
}

function opBuf(op: number, extra = 0): Buffer {
  const b = Buffer.alloc(2 + extra);
  b.writeUInt16BE(op, 0);
  return b;
}

export function encodeRequest(op: RequestPacket['op'], filename: string, mode: string, options: TftpOption[] = []): Buffer {
  return Buffer.concat([opBuf(op), ...strings([filename, mode, ...options.flatMap((o) => [o.name, o.value])])]);
}

/** Writes the 4-byte DATA header at `offset` (block number taken modulo 65536: rollover). */
export function writeDataHeader(buf: Buffer, offset: number, block: number): void {
  buf[offset] = 0;
  buf[offset + 1] = Opcode.DATA;
  buf[offset + 2] = (block >>> 8) & 0xff;
  buf[offset + 3] = block & 0xff;
}

export function encodeData(block: number, data: Buffer): Buffer {
  const b = Buffer.allocUnsafe(4 + data.length);
  writeDataHeader(b, 0, block);
  data.copy(b, 4);
  return b;
}

export function encodeAck(block: number): Buffer {
  const b = opBuf(Opcode.ACK, 2);
  b.writeUInt16BE(block & 0xffff, 2);
  return b;
}

/** An ERROR packet; the message is cut so the packet stays within 512 bytes. */
export function encodeError(code: number, message: string): Buffer {
  const head = opBuf(Opcode.ERROR, 2);
  head.writeUInt16BE(code & 0xffff, 2);
  let msg = Buffer.from(message.replace(/\0/g, ' '), 'utf8');
  if (msg.length > MAX_SMALL_PACKET - 5) msg = msg.subarray(0, MAX_SMALL_PACKET - 5);
  return Buffer.concat([head, msg, Buffer.alloc(1)]);
}

export function encodeOack(options: TftpOption[]): Buffer {
  return Buffer.concat([opBuf(Opcode.OACK), ...strings(options.flatMap((o) => [o.name, o.value]))]);
}
