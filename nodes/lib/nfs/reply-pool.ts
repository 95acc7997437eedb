/**
 * Reusable buffers for READ replies. A fresh 1 MiB Buffer per READ costs page faults and kernel
 * zeroing on first touch, then garbage collection; a kernel client reading a squashfs issues
 * thousands of them. Buffers come in a few size classes (2^k KiB + room for the headers) and go
 * back to the pool once the socket is done with them (the write callback).
 *
 * Bounds: the pool keeps at most `maxPooledBytes` of idle buffers (the rest are left to the
 * garbage collector) and drops them all after `idleMs` without use. Buffers it did not hand out
 * are ignored by release(), so a release of any reply is safe.
 */

const HEADROOM = 4096;
/** Size classes: 32 KiB … 1 MiB of data, each with HEADROOM for the RPC/NFS headers. */
export const CLASSES = [32, 64, 128, 256, 512, 1024].map((k) => k * 1024 + HEADROOM);

export class ReplyPool {
  private readonly free: Buffer[][] = CLASSES.map(() => []);
  private readonly issued = new WeakSet<ArrayBuffer>();
  private readonly idle = new Set<ArrayBuffer>();
  private pooledBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastUse = 0;

  constructor(
    readonly maxPooledBytes = 8 * 1024 * 1024,
    readonly idleMs = 10_000,
  ) {}

  get pooled(): number {
    return this.pooledBytes;
  }

  /** A buffer of at least `size` bytes (contents undefined). */
  take(size: number): Buffer {
    this.lastUse = Date.now();
    const c = CLASSES.findIndex((s) => s >= size);
    if (c < 0 || size < CLASSES[0]! / 2) return Buffer.allocUnsafe(size);
    const list = this.free[c]!;
    const b = list.pop();
    if (b) {
      this.pooledBytes -= b.length;
      this.idle.delete(b.buffer as ArrayBuffer);
      return b;
    }
    // Not from Node's shared slab: the whole ArrayBuffer is this buffer, so it can come back.
    const fresh = Buffer.allocUnsafeSlow(CLASSES[c]!);
    this.issued.add(fresh.buffer as ArrayBuffer);
    return fresh;
  }

  /** Returns the buffer under `view` (any subarray of a taken buffer) for reuse. */
  release(view: Buffer): void {
    const ab = view.buffer as ArrayBuffer;
    if (!this.issued.has(ab) || this.idle.has(ab)) return;
    const c = CLASSES.indexOf(ab.byteLength);
    if (c < 0 || this.pooledBytes + ab.byteLength > this.maxPooledBytes) return;
    this.free[c]!.push(Buffer.from(ab));
    this.idle.add(ab);
    this.pooledBytes += ab.byteLength;
    this.arm();
  }

  private arm(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (Date.now() - this.lastUse < this.idleMs) return;
      this.clear();
    }, this.idleMs);
    this.timer.unref();
  }

  clear(): void {
    for (const list of this.free) list.length = 0;
    this.idle.clear();
    this.pooledBytes = 0;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
