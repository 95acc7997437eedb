/**
 * XDR (RFC 4506): the encoding under ONC RPC, portmapper, MOUNT and NFS v3.
 *
 * Trust policy: everything an XdrReader reads comes from the network. Every read is checked
 * against the bytes left in the message before it happens; every variable-length item (opaque,
 * string, array count) is checked against a caller-given maximum *and* against the bytes left
 * before anything is allocated, so a length word of 2^32-1 costs nothing. Violations throw
 * XdrError, which the RPC layer turns into GARBAGE_ARGS (or drops the message). Opaques are
 * returned as views into the message (no copy); strings are decoded as UTF-8.
 *
 * XdrWriter grows by doubling, or writes into a buffer the caller sized (the READ reply, whose
 * size is known before the data is read). All integers are big-endian, all items 4-byte aligned.
 */

export type XdrErrorCode = 'TRUNCATED' | 'TOO_LONG' | 'BAD_VALUE';

export class XdrError extends Error {
  override name = 'XdrError';
  constructor(
    readonly code: XdrErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Bytes of zero padding after `n` bytes of opaque data. */
export function pad4(n: number): number {
  return (4 - (n & 3)) & 3;
}

/** Bytes an opaque<> / string of `n` bytes takes on the wire (length word, data, padding). */
export function opaqueSize(n: number): number {
  return 4 + n + pad4(n);
}

const MAX_UINT64 = (1n << 64n) - 1n;

export class XdrReader {
  private pos: number;
  private readonly end: number;

  constructor(
    private readonly buf: Buffer,
    start = 0,
    end = buf.length,
  ) {
    if (start < 0 || end > buf.length || start > end) throw new RangeError('XdrReader bounds outside the buffer');
    this.pos = start;
    this.end = end;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  /** An independent reader at the same position (to peek at arguments without consuming them). */
  clone(): XdrReader {
    return new XdrReader(this.buf, this.pos, this.end);
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.pos) {
      throw new XdrError('TRUNCATED', `${what} needs ${n} bytes, ${this.end - this.pos} left`);
    }
  }

  uint32(): number {
    this.need(4, 'uint32');
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  int32(): number {
    this.need(4, 'int32');
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  uint64(): bigint {
    this.need(8, 'uint64');
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  int64(): bigint {
    this.need(8, 'int64');
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /**
   * A uint64 as a number; values above 2^53 - 1 become Number.MAX_SAFE_INTEGER (an offset or a
   * cookie that large is past the end of any file or listing, which is what the caller checks).
   */
  uint64Number(): number {
    this.need(8, 'uint64');
    const hi = this.buf.readUInt32BE(this.pos);
    const lo = this.buf.readUInt32BE(this.pos + 4);
    this.pos += 8;
    return hi > 0x1fffff ? Number.MAX_SAFE_INTEGER : hi * 0x1_0000_0000 + lo;
  }

  bool(): boolean {
    const v = this.uint32();
    if (v > 1) throw new XdrError('BAD_VALUE', `bool of value ${v}`);
    return v === 1;
  }

  /** Fixed-length opaque of `n` bytes (plus padding), as a view into the message. */
  opaqueFixed(n: number): Buffer {
    const total = n + pad4(n);
    this.need(total, `opaque[${n}]`);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += total;
    return v;
  }

  /** Variable-length opaque<max>, as a view into the message. */
  opaqueVar(max: number): Buffer {
    const n = this.uint32();
    if (n > max) throw new XdrError('TOO_LONG', `opaque of ${n} bytes exceeds ${max}`);
    return this.opaqueFixed(n);
  }

  /** string<max> (max in bytes), decoded as UTF-8. */
  string(max: number): string {
    return this.opaqueVar(max).toString('utf8');
  }

  /** An array count, refused when over `max` or when `minItemSize`-byte items could not fit. */
  count(max: number, minItemSize = 4): number {
    const n = this.uint32();
    if (n > max) throw new XdrError('TOO_LONG', `array of ${n} items exceeds ${max}`);
    if (n * minItemSize > this.remaining) throw new XdrError('TRUNCATED', `array of ${n} items cannot fit in ${this.remaining} bytes`);
    return n;
  }

  skip(n: number): void {
    this.need(n, 'skip');
    this.pos += n;
  }
}

export class XdrWriter {
  private buf: Buffer;
  private pos: number;
  private readonly fixed: boolean;

  /**
   * A growable writer of `initial` bytes, or (with `into`) a writer over a buffer the caller
   * sized, starting at `start`, which throws rather than grow.
   */
  constructor(initial = 256, into?: Buffer, start = 0) {
    if (into) {
      this.buf = into;
      this.pos = start;
      this.fixed = true;
    } else {
      this.buf = Buffer.allocUnsafe(Math.max(16, initial));
      this.pos = 0;
      this.fixed = false;
    }
  }

  get offset(): number {
    return this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    if (this.fixed) throw new RangeError(`XdrWriter: ${n} more bytes do not fit in ${this.buf.length}`);
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  uint32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }

  int32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32BE(v | 0, this.pos);
    this.pos += 4;
    return this;
  }

  /**
   * A uint64 from a bigint or a number (file sizes over 4 GiB included). Numbers, the common case,
   * are written without BigInt arithmetic; negative or non-integer numbers are clamped/floored.
   */
  uint64(v: bigint | number): this {
    this.ensure(8);
    if (typeof v === 'number') {
      const n = v > 0 ? Math.floor(Math.min(v, Number.MAX_SAFE_INTEGER)) : 0;
      const hi = Math.floor(n / 0x1_0000_0000);
      this.buf.writeUInt32BE(hi, this.pos);
      this.buf.writeUInt32BE(n - hi * 0x1_0000_0000, this.pos + 4);
    } else {
      if (v < 0n || v > MAX_UINT64) throw new RangeError(`uint64 out of range: ${v}`);
      this.buf.writeBigUInt64BE(v, this.pos);
    }
    this.pos += 8;
    return this;
  }

  bool(v: boolean): this {
    return this.uint32(v ? 1 : 0);
  }

  /** Fixed-length opaque: the bytes and their padding, no length word. */
  opaqueFixed(data: Buffer): this {
    const p = pad4(data.length);
    this.ensure(data.length + p);
    data.copy(this.buf, this.pos);
    this.pos += data.length;
    this.buf.fill(0, this.pos, this.pos + p);
    this.pos += p;
    return this;
  }

  opaqueVar(data: Buffer): this {
    this.uint32(data.length);
    return this.opaqueFixed(data);
  }

  string(s: string): this {
    return this.opaqueVar(Buffer.from(s, 'utf8'));
  }

  /** Bytes already in XDR form (a multiple of 4), copied as they are. */
  raw(data: Buffer): this {
    this.ensure(data.length);
    data.copy(this.buf, this.pos);
    this.pos += data.length;
    return this;
  }

  /** Skips `n` bytes (to be filled later with writeUInt32At, or by the caller). */
  reserve(n: number): number {
    this.ensure(n);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  uint32At(at: number, v: number): void {
    this.buf.writeUInt32BE(v >>> 0, at);
  }

  /** The bytes written so far (a view, not a copy). */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}
