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
