/**
 * A fixed budget of reusable read buffers shared by every transfer of a process. Reusing them
 * spares the allocation (and the kernel's page zeroing) of a fresh 1 MiB buffer per chunk, and the
 * budget bounds the memory that fast transfers hold however many clients there are.
 *
 * Nobody waits for a buffer: a transfer that finds none (or whose client address already holds its
 * share) sends through its own small buffer instead, more slowly but never starved. A buffer whose
 * socket write cannot finish (the client stopped reading) is written off: it leaves the budget, so
 * a stalled transfer never holds shared buffers, and is counted against a second, equally fixed
 * budget until its write ends.
 */
export interface BufferPoolLimits {
  /** Buffers one owner (a client address) may hold at once, in use and written off together. */
  maxPerOwner?: number;
  /** Buffers written off (pinned by stalled writes) at once, over all owners. */
  maxWrittenOff?: number;
}

export class BufferPool {
  private readonly free: Buffer[] = [];
  private outstanding = 0;
  private trimTimer: NodeJS.Timeout | undefined;
  /** Owner of each buffer handed out (in use or written off). */
  private readonly owners = new Map<Buffer, string>();
  private readonly perOwner = new Map<string, number>();
  private readonly writtenOffSet = new Set<Buffer>();
  readonly maxPerOwner: number;
  readonly maxWrittenOff: number;

  constructor(
    readonly bufferSize: number,
    readonly maxBuffers: number,
    /** Free buffers are dropped after this long with none in use, giving the memory back. */
    readonly idleTrimMs = 10_000,
    limits: BufferPoolLimits = {},
  ) {
    this.maxPerOwner = Math.max(1, Math.floor(limits.maxPerOwner ?? maxBuffers));
    this.maxWrittenOff = Math.max(0, Math.floor(limits.maxWrittenOff ?? maxBuffers));
  }

  /** Buffers handed out and not yet released (written-off ones not included). */
  get inUse(): number {
    return this.outstanding;
  }

  /** Buffers ever allocated and still owned by the pool (free or in use). */
  get allocated(): number {
    return this.outstanding + this.free.length;
  }

  /** Buffers written off whose write has not ended yet. */
  get writtenOff(): number {
    return this.writtenOffSet.size;
  }

  /** Buffers `owner` holds (in use and written off). */
  heldBy(owner: string): number {
    return this.perOwner.get(owner) ?? 0;
  }

  /** A buffer now if one is free or the budget allows a new one and `owner` is within its share; else null. */
  tryAcquire(owner = ''): Buffer | null {
    if (this.heldBy(owner) >= this.maxPerOwner) return null;
    const b = this.free.pop() ?? (this.allocated < this.maxBuffers ? Buffer.allocUnsafeSlow(this.bufferSize) : null);
    if (!b) return null;
    this.outstanding++;
    clearTimeout(this.trimTimer);
    this.owners.set(b, owner);
    this.perOwner.set(owner, this.heldBy(owner) + 1);
    return b;
  }

  private disown(b: Buffer): void {
    const owner = this.owners.get(b);
    if (owner === undefined) return;
    this.owners.delete(b);
    const left = this.heldBy(owner) - 1;
    if (left > 0) this.perOwner.set(owner, left);
    else this.perOwner.delete(owner);
  }

  /**
   * Gives a buffer back: one in use returns to the free list; one written off is forgotten (its
   * memory goes when the last reference does). Releasing twice, or a foreign buffer, does nothing.
   */
  release(b: Buffer): void {
    if (!this.owners.has(b)) return;
    this.disown(b);
    if (this.writtenOffSet.delete(b)) return;
    this.outstanding--;
    this.free.push(b);
    if (this.outstanding === 0) {
      clearTimeout(this.trimTimer);
      this.trimTimer = setTimeout(() => this.trim(), this.idleTrimMs);
      this.trimTimer.unref();
    }
  }

  /**
   * Takes a buffer in use out of the budget because a write that cannot finish pins it: the
   * budget may allocate a replacement, and `release` later forgets it. It stays counted against
   * its owner. False when the written-off budget is spent (the caller must then end the write).
   */
  writeOff(b: Buffer): boolean {
    if (!this.owners.has(b) || this.writtenOffSet.has(b)) return this.writtenOffSet.has(b);
    if (this.writtenOffSet.size >= this.maxWrittenOff) return false;
    this.writtenOffSet.add(b);
    this.outstanding--;
    return true;
  }

  /** Drops the free buffers (the ones in use stay counted). */
  trim(): void {
    this.free.length = 0;
  }
}
