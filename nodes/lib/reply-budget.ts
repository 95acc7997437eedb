/**
 * The reply memory of one server (NBD, NFS): every byte of a reply that is being built or read
 * from a file, waiting for its turn, or handed to a socket the kernel has not taken yet is held
 * against it.
 *
 * Each connection is guaranteed `reserved` bytes of its own, so a client always makes progress
 * however many others hold memory; beyond that it borrows from one shared pool. The total is
 * therefore at most `maxConnections × reserved + shared` (plus what callers `force`, replies that
 * are already built), whatever the clients do.
 *
 * The caller keeps each connection's `held` count (or uses a `ReplyAccount`, which does).
 */
export class ReplyBudget {
  private sharedFree: number;
  private usedBytes = 0;
  private peakBytes = 0;
  /** Connections waiting for shared bytes, all woken when some come back. */
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly reserved: number,
    readonly shared: number,
  ) {
    this.sharedFree = shared;
  }

  get sharedAvailable(): number {
    return this.sharedFree;
  }

  /** Shared bytes lent now. */
  get sharedUsed(): number {
    return this.shared - this.sharedFree;
  }

  /** Bytes held now over all connections. */
  get used(): number {
    return this.usedBytes;
  }

  /** The most ever held at once. */
  get peak(): number {
    return this.peakBytes;
  }

  /** Connections waiting for shared bytes. */
  get waiting(): number {
    return this.waiters.size;
  }

  /** Shared bytes a connection holding `held` would need on top of its reserve to hold `n` more. */
  sharedPart(held: number, n: number): number {
    return Math.max(0, held + n - this.reserved) - Math.max(0, held - this.reserved);
  }

  private count(n: number): void {
    this.usedBytes += n;
    if (this.usedBytes > this.peakBytes) this.peakBytes = this.usedBytes;
  }

  /** Takes `n` bytes for a connection that holds `held`; false (nothing taken) if the pool is short. */
  take(held: number, n: number): boolean {
    const extra = this.sharedPart(held, n);
    if (extra > this.sharedFree) return false;
    this.sharedFree -= extra;
    this.count(n);
    return true;
  }

  /** Takes `n` bytes even if the pool is short (a reply already built must go out). */
  force(held: number, n: number): void {
    this.sharedFree -= this.sharedPart(held, n);
    this.count(n);
  }

  /** Gives back `n` of the `held` bytes of a connection. */
  give(held: number, n: number): void {
    const extra = this.sharedPart(held - n, n);
    this.sharedFree += extra;
    this.usedBytes -= n;
    if (extra > 0 && this.sharedFree > 0 && this.waiters.size) {
      const ws = [...this.waiters];
      this.waiters.clear();
      for (const w of ws) w();
    }
  }

  /** Calls `wake` once, the next time shared bytes come back. */
  wait(wake: () => void): void {
    this.waiters.add(wake);
  }

  cancel(wake: () => void): void {
    this.waiters.delete(wake);
  }
}

/**
 * One connection's side of a ReplyBudget, for servers whose calls wait with promises (NFS): calls
 * are granted in arrival order; they wait while the connection is past its reserve and the shared
 * pool is short, and are retried both when shared bytes come back and when the connection gives
 * back bytes of its own (so its waiting calls always proceed within its reserve).
 */
export class ReplyAccount {
  private heldBytes = 0;
  private readonly queue: { n: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  private parked = false;
  private closed = false;

  constructor(readonly budget: ReplyBudget) {}

  /** Bytes this connection holds. */
  get held(): number {
    return this.heldBytes;
  }

  /** Calls of this connection waiting for bytes. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Resolves once `n` bytes are held for this connection; rejects if the account closes first. */
  acquire(n: number): Promise<void> {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    if (this.queue.length === 0 && this.budget.take(this.heldBytes, n)) {
      this.heldBytes += n;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ n, resolve, reject });
      this.park();
    });
  }

  /**
   * Takes `n` bytes now if they fit in the reserve, or if nobody waits and the shared bytes lent
   * would stay within `sharedCeiling` (optional work such as a read ahead); never waits.
   */
  tryAcquire(n: number, sharedCeiling = this.budget.shared): boolean {
    if (this.closed || this.queue.length > 0) return false;
    const extra = this.budget.sharedPart(this.heldBytes, n);
    if (extra > 0 && (this.budget.waiting > 0 || this.budget.sharedUsed + extra > sharedCeiling)) return false;
    if (!this.budget.take(this.heldBytes, n)) return false;
    this.heldBytes += n;
    return true;
  }

  /** Holds `n` bytes without waiting (a reply that is already built). */
  force(n: number): void {
    this.budget.force(this.heldBytes, n);
    this.heldBytes += n;
  }

  release(n: number): void {
    const m = Math.min(n, this.heldBytes);
    if (m <= 0) return;
    this.budget.give(this.heldBytes, m);
    this.heldBytes -= m;
    if (this.queue.length) this.drain();
  }

  /** Refuses every waiting call (bytes still held are given back by their holders' release). */
  close(): void {
    this.closed = true;
    this.budget.cancel(this.wake);
    this.parked = false;
    for (const w of this.queue.splice(0)) w.reject(new Error('connection closed'));
  }

  private park(): void {
    if (this.parked) return;
    this.parked = true;
    this.budget.wait(this.wake);
  }

  private readonly wake = (): void => {
    this.parked = false;
    this.drain();
  };

  private drain(): void {
    while (this.queue.length && !this.closed) {
      const w = this.queue[0]!;
      if (!this.budget.take(this.heldBytes, w.n)) {
        this.park();
        return;
      }
      this.queue.shift();
      this.heldBytes += w.n;
      w.resolve();
    }
  }
}
