import { recordDate, u32both } from './bytes';
import { SECTOR } from './descriptors';
import { badImage } from './source';

/** File flags of a directory record (ECMA-119 9.1.6). */
export const FLAG_DIRECTORY = 0x02;
export const FLAG_ASSOCIATED = 0x04;
export const FLAG_MULTI_EXTENT = 0x80;

/** Smallest possible record: 33 fixed bytes plus a 1-byte identifier. */
export const MIN_RECORD = 34;

/** One directory record, as stored (ECMA-119 9.1). */
export interface DirRecord {
  /** Absolute byte offset of the record in the image, for error messages. */
  at: number;
  /** First logical block of the data (after any extended attribute record). */
  block: number;
  dataLength: number;
  flags: number;
  mtime: Date;
  /** Raw file identifier; 0x00 and 0x01 are '.' and '..'. */
  id: Buffer;
  /** The system use area (where SUSP / Rock Ridge entries live). */
  systemUse: Buffer;
}

/** Parses one record starting at `pos` of `buf`; `limit` is where the record must end by. */
export function parseRecord(buf: Buffer, pos: number, limit: number, base: number): DirRecord {
  const at = base + pos;
  const len = buf[pos];
  if (len < MIN_RECORD) throw badImage(`corrupt directory record at byte ${at}: length ${len} is below the ${MIN_RECORD}-byte minimum`);
  if (pos + len > limit) {
    throw badImage(`corrupt directory record at byte ${at}: length ${len} runs past the end of its sector or extent`);
  }
  const idLen = buf[pos + 32];
  if (idLen === 0 || 33 + idLen > len) {
    throw badImage(`corrupt directory record at byte ${at}: identifier length ${idLen} does not fit the ${len}-byte record`);
  }
  const xattrLen = buf[pos + 1];
  // The identifier is padded to an even length; the system use area follows.
  const suStart = 33 + idLen + (idLen % 2 === 0 ? 1 : 0);
  return {
    at,
    block: u32both(buf, pos + 2) + xattrLen,
    dataLength: u32both(buf, pos + 10),
    flags: buf[pos + 25],
    mtime: recordDate(buf, pos + 18),
    id: buf.subarray(pos + 33, pos + 33 + idLen),
    systemUse: buf.subarray(pos + Math.min(suStart, len), pos + len),
  };
}

/**
 * Splits a directory extent into its records. Records never cross a sector boundary: a zero
 * length byte is the normal padding to the next sector; a length that runs past the sector (or
 * the extent) is corruption.
 */
export function parseDirectory(buf: Buffer, base: number): DirRecord[] {
  return [...directoryRecords(buf, base)];
}

/**
 * parseDirectory one record at a time: a reader that handles each record before taking the next
 * never holds them all (they die young, instead of a directory's worth surviving its parse).
 */
export function* directoryRecords(buf: Buffer, base: number): Generator<DirRecord, void, undefined> {
  let pos = 0;
  while (pos < buf.length) {
    const sectorEnd = Math.min(buf.length, (Math.floor(pos / SECTOR) + 1) * SECTOR);
    if (buf[pos] === 0) {
      pos = sectorEnd;
      continue;
    }
    const rec = parseRecord(buf, pos, sectorEnd, base);
    pos += buf[pos];
    yield rec;
  }
}
