/**
 * Read requests waiting for a transfer slot, oldest first. When every slot is taken a request
 * used to be dropped, and the client could only resend and hope its resend landed in the moment
 * a slot was free: in a storm of 200 clients one would run out of retries (about 35 s for a PXE
 * ROM, 25 s for tftp-hpa) and be lost. Here it waits its turn instead, within two bounds: how
 * many wait at once, and how long one waits; past either the server refuses it with an ERROR,
 * so the client learns why instead of timing out.
 *
 * Keyed by the client's address:port: a client resending its request while it waits is the same
 * request, not a second one. Pure: the clock and timer are injectable, for tests.
 */
export interface AdmissionOptions<T> {
  /** Most requests waiting at once (every one holds its request packet, at most 512 bytes). */
  maxWaiting: number;
  /** Longest a request waits for a slot, ms. */
  maxWaitMs: number;
  /** A request that waited maxWaitMs without a slot; it has left the queue. */
  onExpired(item: T, waitedMs: number): void;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (timer: unknown) => void;
}

interface Waiting<T> {
  item: T;
  since: number;
}

export type Offer = 'queued' | 'waiting' | 'full';

export class AdmissionQueue<T> {
  /** A Map keeps insertion order: its first entry is the oldest request. */
  private readonly waiting = new Map<string, Waiting<T>>();
  private timer: unknown;
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (timer: unknown) => void;

  constructor(private readonly opts: AdmissionOptions<T>) {
    this.now = opts.now ?? Date.now;
    this.setTimer =
      opts.setTimer ??
      ((fn, ms) => {
        const t = setTimeout(fn, ms);
        // Waiting requests alone must not keep a closing process alive.
        t.unref();
        return t;
      });
    this.clearTimer = opts.clearTimer ?? ((t) => clearTimeout(t as NodeJS.Timeout));
  }

  get size(): number {
    return this.waiting.size;
  }

  has(key: string): boolean {
    return this.waiting.has(key);
  }

  /**
   * 'queued': it waits at the back. 'waiting': that client port already waits; its newest
   * request replaces the old one in place (a resend is identical), keeping its turn and its clock.
   * 'full': maxWaiting are waiting already; nothing was kept.
   */
  offer(key: string, item: T): Offer {
    const known = this.waiting.get(key);
    if (known) {
      known.item = item;
      return 'waiting';
    }
    if (this.waiting.size >= this.opts.maxWaiting) return 'full';
    this.waiting.set(key, { item, since: this.now() });
    if (this.waiting.size === 1) this.arm(); // else the timer runs for an older one
    return 'queued';
  }

  /** The oldest waiting request, out of the queue; undefined when none waits. */
  take(): T | undefined {
    for (const [key, w] of this.waiting) {
      this.waiting.delete(key);
      this.arm();
      return w.item;
    }
    return undefined;
  }

  /** Empties the queue (shutdown), returning what waited, oldest first. */
  clear(): T[] {
    const items = [...this.waiting.values()].map((w) => w.item);
    this.waiting.clear();
    this.arm();
    return items;
  }

  /** One timer, for the oldest request's deadline (the others are younger). */
  private arm(): void {
    if (this.timer !== undefined) this.clearTimer(this.timer);
    this.timer = undefined;
    const first = this.waiting.values().next();
    if (first.done) return;
    const ms = Math.max(0, first.value.since + this.opts.maxWaitMs - this.now());
    this.timer = this.setTimer(this.expire, ms);
  }

  private readonly expire = (): void => {
    this.timer = undefined;
    const now = this.now();
    const expired: [T, number][] = [];
    for (const [key, w] of this.waiting) {
      if (now - w.since < this.opts.maxWaitMs) break;
      this.waiting.delete(key);
      expired.push([w.item, now - w.since]);
    }
    this.arm();
    for (const [item, waited] of expired) this.opts.onExpired(item, waited);
  };
}
