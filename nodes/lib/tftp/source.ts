/**
 * What a read transfer sends, as a sequence of large chunks: the file read through
 * StoreFile.read() in read-ahead-sized pieces (one syscall per chunk, not per block), converted
 * to netascii on the way when asked. Sources are strictly sequential; the transfer keeps the
 * chunks it may still have to retransmit.
 */
import { NetasciiEncoder } from './netascii';
import type { StoreFile } from '../store/types';

export interface ChunkSource {
  /** Size on the wire if known before sending (octet mode), for tsize. */
  readonly size: number | undefined;
  /** Fills `buf` with the next bytes; returns how many. Fewer than buf.length means the end. */
  next(buf: Buffer): Promise<number>;
  /**
   * The same, synchronously, when the bytes are in the page cache (no disk wait, no thread-pool
   * hop); -1 when they are not (or cannot be known), and next() must be used. Optional.
   */
  nextCached?(buf: Buffer): number;
}

/** Reads `length` bytes at `position`, looping over short reads; stops early only at end of file. */
async function readFully(file: StoreFile, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const n = await file.read(buf, offset + got, length - got, position + got);
    if (n <= 0) break;
    got += n;
  }
  return got;
}

/** The file as is. The size is fixed when the file is opened, so tsize and the data agree. */
export class OctetSource implements ChunkSource {
  private position = 0;
  readonly size: number;

  /** @param cached use the store's synchronous page-cache reads when it offers them */
  constructor(
    private readonly file: StoreFile,
    private readonly cached = true,
  ) {
    this.size = file.size;
  }

  nextCached(buf: Buffer): number {
    if (!this.cached || !this.file.readCached) return -1;
    const want = Math.min(buf.length, this.size - this.position);
    if (want <= 0) return 0;
    const n = this.file.readCached(buf, 0, want, this.position);
    // Partly cached: the async read does the whole chunk (the copy made here is simply redone).
    if (n !== want) return -1;
    this.position += n;
    return n;
  }

  async next(buf: Buffer): Promise<number> {
    const want = Math.min(buf.length, this.size - this.position);
    if (want <= 0) return 0;
    const n = await readFully(this.file, buf, 0, want, this.position);
    this.position += n;
    return n;
  }
}

/** The file converted to netascii; its wire size is only known at the end. */
export class NetasciiSource implements ChunkSource {
  readonly size = undefined;
  private readonly raw: Buffer;
  private rawStart = 0;
  private rawEnd = 0;
  private position = 0;
  private eof = false;
  private readonly encoder = new NetasciiEncoder();

  constructor(
    private readonly file: StoreFile,
    rawBufferBytes: number,
  ) {
    this.raw = Buffer.allocUnsafe(Math.max(64, rawBufferBytes));
  }

  async next(buf: Buffer): Promise<number> {
    let filled = 0;
    while (filled < buf.length) {
      if (this.rawStart === this.rawEnd && !this.encoder.hasPending) {
        if (this.eof) break;
        const n = await readFully(this.file, this.raw, 0, this.raw.length, this.position);
        this.position += n;
        this.rawStart = 0;
        this.rawEnd = n;
        if (n < this.raw.length) this.eof = true;
        if (n === 0) break;
      }
      const { read, written } = this.encoder.encode(this.raw, this.rawStart, this.rawEnd, buf, filled, buf.length);
      this.rawStart += read;
      filled += written;
    }
    return filled;
  }
}
