/**
 * Progress of one transfer as a flow wants it: a report each time another `step` percent is
 * done, at most one per `minIntervalMs` (a crossing skipped by the rate limit is reported at the
 * next chance, rounded down to its step), always ending with exactly one 100.
 */
export interface ProgressOptions {
  /** Percent between reports, 1..100 (default 10). */
  step?: number;
  /** Least time between two reports, except the final 100 (default 250 ms: at most 4 a second). */
  minIntervalMs?: number;
  now?: () => number;
}

export class ProgressTracker {
  private readonly step: number;
  private readonly minIntervalMs: number;
  private readonly now: () => number;
  private lastPercent = 0;
  private lastTime = -Infinity;

  constructor(
    readonly total: number,
    opts: ProgressOptions = {},
  ) {
    const step = Number(opts.step ?? 10);
    this.step = Number.isFinite(step) ? Math.min(100, Math.max(1, Math.floor(step))) : 10;
    const min = Number(opts.minIntervalMs ?? 250);
    this.minIntervalMs = Number.isFinite(min) && min >= 0 ? min : 250;
    this.now = opts.now ?? Date.now;
  }

  /** Percent of the transfer at `bytes` done, 0..100 (an empty transfer is complete). */
  percentOf(bytes: number): number {
    if (this.total <= 0) return 100;
    return Math.min(100, Math.floor((bytes * 100) / this.total));
  }

  /** Bytes done so far; returns the percent to report now, or null. */
  update(bytes: number): number | null {
    const pct = this.percentOf(bytes);
    if (pct >= 100) return this.finish();
    const stepped = Math.floor(pct / this.step) * this.step;
    if (stepped <= this.lastPercent) return null;
    const t = this.now();
    if (t - this.lastTime < this.minIntervalMs) return null;
    this.lastPercent = stepped;
    this.lastTime = t;
    return stepped;
  }

  /** The transfer completed: 100 unless it was already reported. */
  finish(): number | null {
    if (this.lastPercent >= 100) return null;
    this.lastPercent = 100;
    this.lastTime = this.now();
    return 100;
  }
}
