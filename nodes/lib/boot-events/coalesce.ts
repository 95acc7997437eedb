export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(t: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
};

/**
 * Runs `fn` at most once per `intervalMs` however often it is poked: the first poke after a quiet
 * spell runs it at once, pokes within the interval are folded into one run at its end.
 */
export class Coalescer {
  private last = -Infinity;
  private timer: unknown;
  runs = 0;

  constructor(
    private readonly fn: () => void,
    private readonly intervalMs: number,
    private readonly clock: Clock = realClock,
  ) {}

  poke(): void {
    if (this.timer !== undefined) return;
    const wait = this.last + this.intervalMs - this.clock.now();
    if (wait <= 0) return this.run();
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.run();
    }, wait);
  }

  cancel(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private run(): void {
    this.last = this.clock.now();
    this.runs++;
    this.fn();
  }
}
