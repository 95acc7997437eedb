/**
 * DHCPv4 / BOOTP wire format (RFC 2131 §2, RFC 2132, RFC 3396).
 *
 * Decoding is strict about what would make us misread a packet (short header, an option whose
 * length runs past its area, a malformed overload option) and throws DhcpDecodeError; the server
 * drops such packets. Options are returned already concatenated: every instance of a code, in the
 * order options field → file → sname (RFC 3396 §5), so callers never see the split.
 *
 * Encoding splits values longer than 255 bytes into consecutive instances (RFC 3396), overloads
 * the file/sname fields (option 52) only when the options would not fit otherwise, and pads the
 * message to the 300-byte BOOTP minimum that old relays and PXE ROMs expect.
 */
import { bufToIp, ipToBuf, macToString } from './ip';

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
export const MAGIC_COOKIE = 0x63825363;
/** Fixed BOOTP header (op … file) before the magic cookie. */
export const HEADER_SIZE = 236;
export const SNAME_OFFSET = 44;
export const SNAME_SIZE = 64;
export const FILE_OFFSET = 108;
export const FILE_SIZE = 128;
export const OPTIONS_OFFSET = HEADER_SIZE + 4;
/** BOOTP minimum message size (RFC 951 vendor area of 64 bytes); shorter replies upset old clients. */
export const MIN_MESSAGE_SIZE = 300;
/** The IP datagram every client must accept (RFC 2131 §2): 576 minus IP and UDP headers. */
export const DEFAULT_MAX_MESSAGE = 576;
const IP_UDP_HEADERS = 28;

const OPT_PAD = 0;
const OPT_END = 255;
const OPT_OVERLOAD = 52;

export const FLAG_BROADCAST = 0x8000;

export class DhcpDecodeError extends Error {
  override name = 'DhcpDecodeError';
}

export class DhcpEncodeError extends Error {
  override name = 'DhcpEncodeError';
}

export interface DhcpPacket {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** Client hardware address field, always 16 bytes (only the first `hlen` are meaningful). */
  chaddr: Buffer;
  /** Server host name field ('' when empty or overloaded with options). */
  sname: string;
  /** Boot file name field ('' when empty or overloaded with options). */
  file: string;
  /** Option code → value (all instances concatenated). Insertion order is encoding order. */
  options: Map<number, Buffer>;
}

/** The client's hardware address as lower-case colon hex (only the `hlen` meaningful bytes). */
export function clientMac(p: DhcpPacket): string {
  return macToString(p.chaddr.subarray(0, Math.min(p.hlen, 16)));
}

/** A blank packet with sane defaults; `fields` override them. */
export function createPacket(fields: Partial<DhcpPacket> = {}): DhcpPacket {
  return {
    op: BOOTREPLY,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: 0,
    secs: 0,
    flags: 0,
    ciaddr: '0.0.0.0',
    yiaddr: '0.0.0.0',
    siaddr: '0.0.0.0',
    giaddr: '0.0.0.0',
    chaddr: Buffer.alloc(16),
    sname: '',
    file: '',
    options: new Map(),
    ...fields,
  };
}

/** A NUL-terminated string field; bytes after the first NUL are ignored. */
function readCString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
}

/** Parses one option area into `out`, collecting instances per code. */
function parseArea(buf: Buffer, start: number, end: number, area: string, out: Map<number, Buffer[]>): void {
  let i = start;
  while (i < end) {
    const code = buf[i]!;
    if (code === OPT_PAD) {
      i++;
      continue;
    }
    if (code === OPT_END) return;
    if (i + 1 >= end) throw new DhcpDecodeError(`option ${code} has no length byte in ${area}`);
    const len = buf[i + 1]!;
    if (i + 2 + len > end) throw new DhcpDecodeError(`option ${code} length ${len} runs past the end of ${area}`);
    const list = out.get(code);
    const value = buf.subarray(i + 2, i + 2 + len);
    if (list) list.push(value);
    else out.set(code, [value]);
    i += 2 + len;
  }
  // A missing END option is tolerated: several PXE ROMs and embedded clients omit it.
}

export function decode(buf: Buffer): DhcpPacket {
  if (buf.length < HEADER_SIZE) throw new DhcpDecodeError(`message of ${buf.length} bytes is shorter than the BOOTP header`);
  const hlen = buf[2]!;
  if (hlen > 16) throw new DhcpDecodeError(`hardware address length ${hlen} exceeds 16`);
  const p: DhcpPacket = {
    op: buf[0]!,
    htype: buf[1]!,
    hlen,
    hops: buf[3]!,
    xid: buf.readUInt32BE(4),
    secs: buf.readUInt16BE(8),
    flags: buf.readUInt16BE(10),
    ciaddr: bufToIp(buf, 12),
    yiaddr: bufToIp(buf, 16),
    siaddr: bufToIp(buf, 20),
    giaddr: bufToIp(buf, 24),
    chaddr: Buffer.from(buf.subarray(28, 44)),
    sname: '',
    file: '',
    options: new Map(),
  };
  const snameField = buf.subarray(SNAME_OFFSET, SNAME_OFFSET + SNAME_SIZE);
  const fileField = buf.subarray(FILE_OFFSET, FILE_OFFSET + FILE_SIZE);
  // No magic cookie: a plain BOOTP message without DHCP options.
  if (buf.length < OPTIONS_OFFSET || buf.readUInt32BE(HEADER_SIZE) !== MAGIC_COOKIE) {
    p.sname = readCString(snameField);
    p.file = readCString(fileField);
    return p;
  }
  const main = new Map<number, Buffer[]>();
  parseArea(buf, OPTIONS_OFFSET, buf.length, 'the options field', main);
  let overload = 0;
  const ov = main.get(OPT_OVERLOAD);
  if (ov) {
    const v = Buffer.concat(ov);
    if (v.length !== 1 || v[0]! < 1 || v[0]! > 3) throw new DhcpDecodeError('malformed option overload (52)');
    overload = v[0]!;
    main.delete(OPT_OVERLOAD);
  }
  const parts = [main];
  if (overload & 1) {
    const fromFile = new Map<number, Buffer[]>();
    parseArea(buf, FILE_OFFSET, FILE_OFFSET + FILE_SIZE, 'the file field', fromFile);
    parts.push(fromFile);
  } else p.file = readCString(fileField);
  if (overload & 2) {
    const fromSname = new Map<number, Buffer[]>();
    parseArea(buf, SNAME_OFFSET, SNAME_OFFSET + SNAME_SIZE, 'the sname field', fromSname);
    parts.push(fromSname);
  } else p.sname = readCString(snameField);
  // RFC 3396 §5: concatenate in the order options, file, sname. An overload option inside an
  // overloaded field means nothing (no loops): it is dropped.
  const all = new Map<number, Buffer[]>();
  for (const part of parts) {
    for (const [code, list] of part) {
      if (code === OPT_OVERLOAD) continue;
      const acc = all.get(code);
      if (acc) acc.push(...list);
      else all.set(code, [...list]);
    }
  }
  for (const [code, list] of all) p.options.set(code, list.length === 1 ? Buffer.from(list[0]!) : Buffer.concat(list));
  return p;
}

/** TLV instances for one option: values over 255 bytes become consecutive instances (RFC 3396). */
function instances(code: number, value: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  do {
    const n = Math.min(255, value.length - off);
    const tlv = Buffer.alloc(2 + n);
    tlv[0] = code;
    tlv[1] = n;
    value.copy(tlv, 2, off, off + n);
    out.push(tlv);
    off += n;
  } while (off < value.length);
  return out;
}

function writeCString(dst: Buffer, offset: number, size: number, s: string, field: string): void {
  const b = Buffer.from(s, 'utf8');
  // One byte is kept for the terminating NUL that TFTP loaders expect.
  if (b.length >= size) throw new DhcpEncodeError(`${field} "${s.slice(0, 40)}" is longer than ${size - 1} bytes`);
  b.copy(dst, offset);
}

export interface EncodeOptions {
  /**
   * The largest IP datagram the receiver accepts (option 57 semantics, 576..65535); the DHCP
   * message may use this minus the IP and UDP headers.
   */
  maxMessageSize?: number;
}

/** Options in encoding order: message type and server identifier first, as clients expect. */
function orderedOptions(options: Map<number, Buffer>): [number, Buffer][] {
  const first = [53, 54].filter((c) => options.has(c)).map((c) => [c, options.get(c)!] as [number, Buffer]);
  const rest = [...options].filter(([c]) => c !== 53 && c !== 54);
  for (const [c] of rest) {
    if (c === OPT_PAD || c === OPT_END || c === OPT_OVERLOAD) throw new DhcpEncodeError(`option ${c} is reserved for the encoder`);
    if (!Number.isInteger(c) || c < 0 || c > 255) throw new DhcpEncodeError(`option code ${c} out of range`);
  }
  return [...first, ...rest];
}

export function encode(p: DhcpPacket, opts: EncodeOptions = {}): Buffer {
  const maxDatagram = Math.max(DEFAULT_MAX_MESSAGE, Math.min(65535, opts.maxMessageSize ?? DEFAULT_MAX_MESSAGE));
  const limit = maxDatagram - IP_UDP_HEADERS;
  const tlvs = orderedOptions(p.options).flatMap(([c, v]) => instances(c, v));
  const total = tlvs.reduce((n, t) => n + t.length, 0);
  const mainRoom = limit - OPTIONS_OFFSET;

  // Areas: [start, capacity excluding the END byte]. The options field always comes first.
  let overload = 0;
  const areas: { start: number; room: number; used: number; tlvs: Buffer[] }[] = [];
  if (total + 1 <= mainRoom) {
    areas.push({ start: OPTIONS_OFFSET, room: mainRoom - 1, used: 0, tlvs: [] });
  } else {
    // Overloading: 3 bytes for option 52 in the options field, then file, then sname (only if free).
    areas.push({ start: OPTIONS_OFFSET, room: mainRoom - 1 - 3, used: 0, tlvs: [] });
    if (!p.file) areas.push({ start: FILE_OFFSET, room: FILE_SIZE - 1, used: 0, tlvs: [] });
    if (!p.sname) areas.push({ start: SNAME_OFFSET, room: SNAME_SIZE - 1, used: 0, tlvs: [] });
  }
  let ai = 0;
  for (const t of tlvs) {
    // Whole instances only; the area pointer only moves forward so split options stay in order.
    while (ai < areas.length && areas[ai]!.room - areas[ai]!.used < t.length) ai++;
    const area = areas[ai];
    if (!area) throw new DhcpEncodeError(`options (${total} bytes) do not fit in a ${maxDatagram}-byte message`);
    area.tlvs.push(t);
    area.used += t.length;
    if (area.start === FILE_OFFSET) overload |= 1;
    if (area.start === SNAME_OFFSET) overload |= 2;
  }

  const mainUsed = areas[0]!.used + (overload ? 3 : 0);
  const size = Math.max(MIN_MESSAGE_SIZE, OPTIONS_OFFSET + mainUsed + 1);
  const buf = Buffer.alloc(size);
  buf[0] = p.op;
  buf[1] = p.htype;
  buf[2] = p.hlen;
  buf[3] = p.hops;
  buf.writeUInt32BE(p.xid >>> 0, 4);
  buf.writeUInt16BE(p.secs & 0xffff, 8);
  buf.writeUInt16BE(p.flags & 0xffff, 10);
  ipToBuf(p.ciaddr).copy(buf, 12);
  ipToBuf(p.yiaddr).copy(buf, 16);
  ipToBuf(p.siaddr).copy(buf, 20);
  ipToBuf(p.giaddr).copy(buf, 24);
  p.chaddr.copy(buf, 28, 0, Math.min(16, p.chaddr.length));
  if (!(overload & 2)) writeCString(buf, SNAME_OFFSET, SNAME_SIZE, p.sname, 'server name');
  if (!(overload & 1)) writeCString(buf, FILE_OFFSET, FILE_SIZE, p.file, 'boot file name');
  buf.writeUInt32BE(MAGIC_COOKIE, HEADER_SIZE);

  let off = OPTIONS_OFFSET;
  if (overload) {
    buf[off++] = OPT_OVERLOAD;
    buf[off++] = 1;
    buf[off++] = overload;
  }
  for (const area of areas) {
    if (area.start !== OPTIONS_OFFSET && area.tlvs.length === 0) continue;
    let o = area.start === OPTIONS_OFFSET ? off : area.start;
    for (const t of area.tlvs) {
      t.copy(buf, o);
      o += t.length;
    }
    buf[o] = OPT_END;
  }
  return buf;
}
