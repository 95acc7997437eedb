/**
 * The reply memory of one NBD server: every byte of a read reply that is being read from the file,
 * waiting for its turn, or handed to a socket the kernel has not taken yet is held against it.
 *
 * Each connection is guaranteed `reserved` bytes of its own, so a client always makes progress
 * however many others hold memory; beyond that it borrows from one shared pool. The total is
 * therefore at most `maxConnections × reserved + shared`, whatever the clients do.
 */
export class ReplyBudget {
  private sharedFree: number;
  /** Connections waiting for shared bytes, woken in arrival order when some come back. */
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

  /** Shared bytes a connection holding `held` would need on top of its reserve to hold `n` more. */
  private sharedPart(held: number, n: number): number {
    return Math.max(0, held + n - this.reserved) - Math.max(0, held - this.reserved);
  }

  /** Takes `n` bytes for a connection that holds `held`; false (nothing taken) if the pool is short. */
  take(held: number, n: number): boolean {
    const extra = this.sharedPart(held, n);
    if (extra > this.sharedFree) return false;
    this.sharedFree -= extra;
    return true;
  }

  /** Gives back `n` of the `held` bytes of a connection. */
  give(held: number, n: number): void {
    const extra = this.sharedPart(held - n, n);
    this.sharedFree += extra;
    if (extra > 0 && this.waiters.size) {
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
 * Piece buffers for reuse, so that serving does not allocate (and leave to the garbage collector)
 * a new buffer for every piece: at most `keep` are kept, and all are dropped after `idleMs`
 * without use, so nothing large outlives a burst of clients.
 */
export class PiecePool {
  private free: Buffer[] = [];
  private lastUse = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly size: number,
    readonly keep: number,
    readonly idleMs: number,
  ) {}

  get kept(): number {
    return this.free.length;
  }

  get(): Buffer {
    this.lastUse = Date.now();
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  /** Takes back a buffer nothing uses any more (its read and write have ended). */
  put(buf: Buffer): void {
    if (buf.length !== this.size || this.free.length >= this.keep) return;
    this.free.push(buf);
    this.timer ??= setTimeout(() => this.trim(), this.idleMs).unref();
  }

  private trim(): void {
    this.timer = undefined;
    const idle = Date.now() - this.lastUse;
    if (idle >= this.idleMs) this.free = [];
    else if (this.free.length) this.timer = setTimeout(() => this.trim(), this.idleMs - idle).unref();
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.free = [];
  }
}
