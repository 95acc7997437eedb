/**
 * Which bytes of a file a client has read, for "rootfs 42 %" and "complete" (archiso copies
 * airootfs.sfs to RAM over NFS; a kernel client reads it in page-aligned READs, in any order,
 * re-reading some pages).
 *
 * ReadCoverage keeps one bit per chunk: chunks of 4 KiB (the page size every kernel READ is
 * aligned to), doubled until the file has at most 2^18 chunks, so the bitmap is at most 32 KiB
 * whatever the file size. A READ that covers only part of a chunk is remembered as one sub-range
 * of that chunk (up to MAX_PARTIAL chunks), extended by adjacent reads, so unaligned sequential
 * readers (libnfs, small buffers) are counted exactly too. `bytes` never exceeds what was read.
 *
 * ReadTracker keeps one coverage per (client address, path), at most `maxTracked` of them (least
 * recently read first out), and emits progress at most once per interval per pair, with a
 * trailing event for the last read in an interval and exactly one final event with done: true.
 */

export const MIN_CHUNK = 4096;
export const MAX_CHUNKS = 1 << 18;
export const MAX_PARTIAL = 64;

export class ReadCoverage {
  readonly chunk: number;
  readonly chunks: number;
  private bits: Uint8Array | undefined;
  private fullChunks = 0;
  private fullBytes = 0;
  private readonly partial = new Map<number, [number, number]>();

  constructor(readonly size: number) {
    let chunk = MIN_CHUNK;
    while (Math.ceil(size / chunk) > MAX_CHUNKS) chunk *= 2;
    this.chunk = chunk;
    this.chunks = Math.ceil(size / chunk);
  }

  /** Distinct bytes read so far. */
  get bytes(): number {
    let b = this.fullBytes;
    for (const [lo, hi] of this.partial.values()) b += hi - lo;
    return Math.min(b, this.size);
  }

  get done(): boolean {
    return this.fullChunks === this.chunks;
  }

  private chunkLength(i: number): number {
    return Math.min(this.chunk, this.size - i * this.chunk);
  }

  private isSet(i: number): boolean {
    return this.bits !== undefined && (this.bits[i >>> 3]! & (1 << (i & 7))) !== 0;
  }

  private setChunk(i: number): void {
    if (this.isSet(i)) return;
    this.bits ??= new Uint8Array(Math.ceil(this.chunks / 8));
    this.bits[i >>> 3]! |= 1 << (i & 7);
    this.fullChunks++;
    this.fullBytes += this.chunkLength(i);
    if (this.partial.size) this.partial.delete(i);
  }

  private addPartial(i: number, lo: number, hi: number): void {
    if (this.isSet(i)) return;
    const p = this.partial.get(i);
    let range: [number, number] = [lo, hi];
    if (p) {
      if (hi >= p[0] && lo <= p[1]) range = [Math.min(lo, p[0]), Math.max(hi, p[1])];
      else if (p[1] - p[0] >= hi - lo) return; // disjoint: keep the larger of the two
      this.partial.delete(i);
    }
    if (range[0] === 0 && range[1] === this.chunkLength(i)) {
      this.setChunk(i);
      return;
    }
    if (this.partial.size >= MAX_PARTIAL) this.partial.delete(this.partial.keys().next().value!);
    this.partial.set(i, range);
  }

  /** Records a read of `length` bytes at `offset` (clipped to the file). */
  add(offset: number, length: number): void {
    const end = Math.min(offset + length, this.size);
    if (!(offset >= 0) || end <= offset) return;
    const first = Math.floor(offset / this.chunk);
    const last = Math.floor((end - 1) / this.chunk);
    for (let i = first; i <= last; i++) {
      const start = i * this.chunk;
      const lo = Math.max(offset, start) - start;
      const hi = Math.min(end, start + this.chunkLength(i)) - start;
      if (lo === 0 && hi === this.chunkLength(i)) this.setChunk(i);
      else this.addPartial(i, lo, hi);
    }
  }
}

export interface ReadProgress {
  address: string;
  path: string;
  bytes: number;
  size: number;
  share: number;
  done: boolean;
}

interface Pair {
  address: string;
  path: string;
  coverage: ReadCoverage;
  lastEmit: number;
  timer: NodeJS.Timeout | undefined;
  finished: boolean;
}

export class ReadTracker {
  private readonly pairs = new Map<string, Pair>();
  private closed = false;

  constructor(
    private readonly intervalMs: number,
    private readonly emit: (p: ReadProgress) => void,
    private readonly maxTracked = 128,
  ) {}

  get tracked(): number {
    return this.pairs.size;
  }

  /** A READ of `length` bytes at `offset` of `path` (of `size` bytes) answered to `address`. */
  record(address: string, path: string, offset: number, length: number, size: number): void {
    if (this.closed) return;
    const key = `${address}\0${path}`;
    let p = this.pairs.get(key);
    if (p && p.coverage.size !== size) {
      // The file changed size (replaced): start over.
      this.drop(key, p);
      p = undefined;
    }
    if (!p) {
      p = { address, path, coverage: new ReadCoverage(size), lastEmit: -Infinity, timer: undefined, finished: false };
      this.pairs.set(key, p);
      if (this.pairs.size > this.maxTracked) {
        const [oldKey, old] = this.pairs.entries().next().value!;
        this.drop(oldKey, old);
      }
    } else {
      this.pairs.delete(key);
      this.pairs.set(key, p);
    }
    if (p.finished) return;
    p.coverage.add(offset, length);
    if (p.coverage.done) {
      clearTimeout(p.timer);
      p.timer = undefined;
      p.finished = true;
      this.fire(p);
      return;
    }
    const wait = p.lastEmit + this.intervalMs - Date.now();
    if (wait <= 0) {
      clearTimeout(p.timer);
      p.timer = undefined;
      this.fire(p);
    } else if (!p.timer) {
      const pair = p;
      p.timer = setTimeout(() => {
        pair.timer = undefined;
        if (!pair.finished && !this.closed) this.fire(pair);
      }, wait);
      p.timer.unref();
    }
  }

  private fire(p: Pair): void {
    p.lastEmit = Date.now();
    const size = p.coverage.size;
    const bytes = p.coverage.bytes;
    this.emit({ address: p.address, path: p.path, bytes, size, share: size === 0 ? 1 : bytes / size, done: p.coverage.done });
  }

  private drop(key: string, p: Pair): void {
    clearTimeout(p.timer);
    this.pairs.delete(key);
  }

  /** Forgets what `address` has read (it mounted again: a new boot). */
  resetClient(address: string): void {
    for (const [key, p] of [...this.pairs]) if (p.address === address) this.drop(key, p);
  }

  close(): void {
    this.closed = true;
    for (const [key, p] of [...this.pairs]) this.drop(key, p);
  }
}
