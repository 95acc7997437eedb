/**
 * A fixed budget of reusable read buffers shared by every transfer of a process. Reusing them
 * spares the allocation (and the kernel's page zeroing) of a fresh 1 MiB buffer per chunk, and the
 * budget bounds the memory that transfers hold however many clients there are: a transfer that
 * finds none free waits its turn.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private outstanding = 0;
  private readonly waiters: Array<(b: Buffer) => void> = [];
  private trimTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly bufferSize: number,
    readonly maxBuffers: number,
    /** Free buffers are dropped after this long with none in use, giving the memory back. */
    readonly idleTrimMs = 10_000,
  ) {}

  /** Buffers handed out and not yet released. */
  get inUse(): number {
    return this.outstanding;
  }

  /** Buffers ever allocated and still owned by the pool (free or in use). */
  get allocated(): number {
    return this.outstanding + this.free.length;
  }

  /** A buffer now if one is free or the budget allows a new one, else null. */
  tryAcquire(): Buffer | null {
    const b = this.free.pop() ?? (this.allocated < this.maxBuffers ? Buffer.allocUnsafeSlow(this.bufferSize) : null);
    if (b) {
      this.outstanding++;
      clearTimeout(this.trimTimer);
    }
    return b;
  }

  /** A buffer, waiting in line if the budget is spent; null if `signal` withdraws the request. */
  acquire(signal?: AbortSignal): Promise<Buffer | null> {
    if (signal?.aborted) return Promise.resolve(null);
    const b = this.waiters.length === 0 ? this.tryAcquire() : null;
    if (b) return Promise.resolve(b);
    return new Promise((resolve) => {
      const waiter = (buf: Buffer): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(buf);
      };
      const onAbort = (): void => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(null);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Gives a buffer back; the next waiter gets it directly. */
  release(b: Buffer): void {
    const next = this.waiters.shift();
    if (next) return next(b);
    this.outstanding--;
    this.free.push(b);
    if (this.outstanding === 0) {
      clearTimeout(this.trimTimer);
      this.trimTimer = setTimeout(() => this.trim(), this.idleTrimMs);
      this.trimTimer.unref();
    }
  }

  /** Drops the free buffers (the ones in use stay counted). */
  trim(): void {
    this.free.length = 0;
  }
}
