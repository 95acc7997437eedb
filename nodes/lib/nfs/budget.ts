/**
 * A byte budget shared by every TCP connection of a server: the bytes of replies being built
 * (reserved before a READ allocates its buffer) plus the bytes written to sockets and not yet
 * handed to the kernel. acquire() waits (first come, first served) while the budget is spent,
 * so however many clients stop reading their replies, the server holds at most `max` bytes of
 * replies (plus one request over, when a single request is larger than what is left).
 */
export class ByteBudget {
  private usedBytes = 0;
  private peakBytes = 0;
  private readonly waiters: { n: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  private closed = false;

  constructor(readonly max: number) {}

  get used(): number {
    return this.usedBytes;
  }

  /** The most ever in use at once. */
  get peak(): number {
    return this.peakBytes;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  private take(n: number): void {
    this.usedBytes += n;
    if (this.usedBytes > this.peakBytes) this.peakBytes = this.usedBytes;
  }

  /** Resolves once `n` bytes are ours; a request larger than the whole budget waits for it to be empty. */
  acquire(n: number): Promise<void> {
    if (this.closed) return Promise.reject(new Error('budget closed'));
    if (this.waiters.length === 0 && (this.usedBytes + n <= this.max || this.usedBytes === 0)) {
      this.take(n);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.waiters.push({ n, resolve, reject }));
  }

  /** Takes `n` bytes if that fits now under `ceiling` (default: the whole budget) and nobody waits. */
  tryAcquire(n: number, ceiling = this.max): boolean {
    if (this.closed || this.waiters.length > 0 || this.usedBytes + n > Math.min(ceiling, this.max)) return false;
    this.take(n);
    return true;
  }

  /** Takes `n` bytes without waiting (small replies that are already built). */
  force(n: number): void {
    this.take(n);
  }

  release(n: number): void {
    this.usedBytes -= n;
    if (this.usedBytes < 0) this.usedBytes = 0;
    while (this.waiters.length) {
      const w = this.waiters[0]!;
      if (this.usedBytes + w.n > this.max && this.usedBytes !== 0) break;
      this.waiters.shift();
      this.take(w.n);
      w.resolve();
    }
  }

  /** Rejects every waiter (the server is closing). */
  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(new Error('budget closed'));
  }
}
