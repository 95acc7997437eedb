// Field decoders for ISO 9660 structures (ECMA-119 7.2, 7.3, 9.1.5).

/** A both-endian 32-bit field (ECMA-119 7.3.3): the little-endian half is authoritative. */
export function u32both(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at);
}

/** A both-endian 16-bit field (ECMA-119 7.2.3). */
export function u16both(buf: Buffer, at: number): number {
  return buf.readUInt16LE(at);
}

/** The 7-byte recording date of a directory record; a nonsense date becomes the epoch. */
export function recordDate(buf: Buffer, at: number): Date {
  const [y, mo, d, h, mi, s] = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3], buf[at + 4], buf[at + 5]];
  const tz = buf.readInt8(at + 6); // 15-minute units east of GMT
  if (mo < 1 || mo > 12 || d < 1 || d > 31) return new Date(0);
  const ms = Date.UTC(1900 + y, mo - 1, d, h, mi, s) - tz * 15 * 60_000;
  return Number.isFinite(ms) ? new Date(ms) : new Date(0);
}

/** The 17-byte "dec-datetime" of volume descriptors and long-form TF entries (ECMA-119 8.4.26.1). */
export function decDate(buf: Buffer, at: number): Date {
  const text = buf.toString('latin1', at, at + 16);
  if (!/^\d{16}$/.test(text) || text === '0000000000000000') return new Date(0);
  const n = (a: number, b: number) => Number(text.slice(a, b));
  const tz = buf.readInt8(at + 16);
  const ms = Date.UTC(n(0, 4), n(4, 6) - 1, n(6, 8), n(8, 10), n(10, 12), n(12, 14), n(14, 16) * 10) - tz * 15 * 60_000;
  return Number.isFinite(ms) ? new Date(ms) : new Date(0);
}

/** Joliet names are UCS-2 big-endian (we accept surrogate pairs, i.e. UTF-16BE, as Linux does). */
export function ucs2be(buf: Buffer): string {
  const even = buf.subarray(0, buf.length & ~1);
  const swapped = Buffer.from(even);
  swapped.swap16();
  return swapped.toString('utf16le');
}

/** ISO 9660 file identifiers: 'NAME.EXT;1' → 'NAME.EXT', 'NAME.;1' → 'NAME'. */
export function stripVersion(name: string): string {
  let out = name.replace(/;\d*$/, '');
  if (out.endsWith('.') && out.length > 1) out = out.slice(0, -1);
  return out;
}
