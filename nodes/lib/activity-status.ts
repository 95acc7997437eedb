import type { NodeStatus } from './red';

/**
 * A serving node's status dot while it serves: "3 active, 41 MB/s". Counts the transfers in
 * flight and a byte rate smoothed over the last few seconds, and shows it at most once a second
 * (a status goes to every open editor; a hundred transfers must not mean a hundred updates).
 *
 * Bytes are credited as the node learns of them: `progress` with a transfer's running total, or,
 * for a transfer that only reports its end (a TFTP transfer shorter than its progress interval),
 * spread over its whole duration at `end`. The node words the text through its own locale file.
 */
export interface ActivityStatusOptions {
  /** Sets the node's status (`node.status`). */
  show(status: NodeStatus): void;
  /** The status with nothing in flight ('listening :69'). */
  idle(): NodeStatus;
  /** The status text with `count` transfers and `rate` already formatted ('41 MB/s'). */
  busyText(count: number, rate: string): string;
  /** Least time between two status updates (default 1000 ms). */
  intervalMs?: number;
  /** How far back the rate looks (default 5000 ms). */
  windowMs?: number;
  /**
   * A transfer with no news for this long is no longer counted (default: never). For servers
   * whose transfers have no end of their own: an NFS client reads a file and simply stops, an
   * NBD client stays connected long after it last read.
   */
  staleMs?: number;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
}

const BUCKET_MS = 250;
const MAX_TRANSFERS = 4096;

/** 41 MB/s, 850 kB/s, 1.2 GB/s (SI units, two or three significant digits). */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = Math.max(0, n);
  let i = 0;
  while (v >= 999.5 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  const digits = i === 0 || v >= 10 ? 0 : 1;
  return `${v.toFixed(digits)} ${units[i]}`;
}

interface Transfer {
  bytes: number;
  startedAt: number;
  /** When the node last heard of it (begin or progress). */
  lastAt: number;
}

export class ActivityStatus {
  private readonly transfers = new Map<string, Transfer>();
  /** Bytes per BUCKET_MS slot, keyed by slot number. */
  private readonly buckets = new Map<number, number>();
  private timer: unknown;
  private lastShown = -Infinity;
  private lastText: string | undefined;
  private closed = false;
  private externalCount: number | undefined;
  private readonly now: () => number;
  private readonly intervalMs: number;
  private readonly windowMs: number;

  constructor(private readonly opts: ActivityStatusOptions) {
    this.now = opts.now ?? Date.now;
    this.intervalMs = opts.intervalMs ?? 1000;
    this.windowMs = opts.windowMs ?? 5000;
  }

  /** Transfers in flight (what the node counts itself when it calls setCount). */
  get count(): number {
    return this.externalCount ?? this.transfers.size;
  }

  /** A transfer started. */
  begin(key: string): void {
    const now = this.now();
    const t = this.transfers.get(key);
    if (t) t.lastAt = now;
    else this.add(key, { bytes: 0, startedAt: now, lastAt: now });
    this.update();
  }

  /** `bytes` of the transfer are done so far (a running total). */
  progress(key: string, bytes: number): void {
    const now = this.now();
    let t = this.transfers.get(key);
    if (!t) {
      t = { bytes: 0, startedAt: now, lastAt: now };
      this.add(key, t);
    }
    t.lastAt = now;
    if (bytes > t.bytes) {
      this.credit(bytes - t.bytes, now, now);
      t.bytes = bytes;
    }
    this.update();
  }

  /**
   * The transfer ended with `bytes` sent in all (undefined: as last reported). Bytes not yet
   * reported by progress are spread over the time since its last progress report, or, if it
   * had none, over its whole duration (from `startedAt`, else from its begin).
   */
  end(key: string, bytes?: number, startedAt?: number): void {
    const now = this.now();
    const t = this.transfers.get(key);
    const from = t && t.bytes > 0 ? t.lastAt : (startedAt ?? t?.startedAt ?? now);
    const before = t?.bytes ?? 0;
    if (bytes !== undefined && bytes > before) this.credit(bytes - before, from, now);
    this.transfers.delete(key);
    this.update();
  }

  /** The node knows the number in flight better (its server counts them): use that. */
  setCount(n: number | undefined): void {
    this.externalCount = n;
    this.update();
  }

  /** Bytes per second over the window. */
  rate(now = this.now()): number {
    const cur = Math.floor(now / BUCKET_MS);
    const first = cur - Math.ceil(this.windowMs / BUCKET_MS) + 1;
    let sum = 0;
    for (const [slot, b] of this.buckets) {
      if (slot < first) this.buckets.delete(slot);
      else if (slot <= cur) sum += b;
    }
    return (sum * 1000) / this.windowMs;
  }

  /** Shows the status now if the interval allows, else once it does. */
  update(): void {
    if (this.closed || this.timer !== undefined) return;
    const wait = this.lastShown + this.intervalMs - this.now();
    if (wait <= 0) return this.render();
    const set = this.opts.setTimer ?? ((fn: () => void, ms: number) => setTimeout(fn, ms).unref());
    this.timer = set(() => {
      this.timer = undefined;
      this.render();
    }, wait);
  }

  /** Stops updating (the node closes; it sets its own last status). */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) (this.opts.clearTimer ?? ((t: unknown) => clearTimeout(t as NodeJS.Timeout)))(this.timer);
    this.timer = undefined;
  }

  /** Transfers whose end never came (a server that lost track) must not pile up. */
  private add(key: string, t: Transfer): void {
    this.transfers.set(key, t);
    if (this.transfers.size > MAX_TRANSFERS) this.transfers.delete(this.transfers.keys().next().value as string);
  }

  private dropStale(now: number): void {
    const staleMs = this.opts.staleMs;
    if (staleMs === undefined) return;
    for (const [key, t] of this.transfers) if (now - t.lastAt >= staleMs) this.transfers.delete(key);
  }

  private credit(bytes: number, from: number, to: number): void {
    const a = Math.floor(from / BUCKET_MS);
    const b = Math.floor(to / BUCKET_MS);
    const oldest = Math.floor(this.now() / BUCKET_MS) - Math.ceil(this.windowMs / BUCKET_MS) + 1;
    const slots = b - a + 1;
    for (let s = Math.max(a, oldest); s <= b; s++) this.buckets.set(s, (this.buckets.get(s) ?? 0) + bytes / slots);
  }

  private render(): void {
    if (this.closed) return;
    this.lastShown = this.now();
    this.dropStale(this.lastShown);
    const n = this.count;
    const rate = this.rate();
    // Nothing in flight is idle at once: a rate fading over the window would read as activity.
    const status: NodeStatus = n > 0 ? { fill: 'blue', shape: 'dot', text: this.opts.busyText(n, formatRate(rate)) } : this.opts.idle();
    const key = `${status.fill}|${status.shape}|${status.text}`;
    if (key !== this.lastText) {
      this.lastText = key;
      this.opts.show(status);
    }
    // While transfers run, the rate moves: look again.
    if (n > 0 && this.timer === undefined) {
      const set = this.opts.setTimer ?? ((fn: () => void, ms: number) => setTimeout(fn, ms).unref());
      this.timer = set(() => {
        this.timer = undefined;
        this.render();
      }, this.intervalMs);
    }
  }
}
