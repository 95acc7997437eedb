/**
 * Short busy-polling of the event loop, the user-space cousin of Linux's SO_BUSY_POLL (which
 * Node cannot set). With windowsize 1 every block waits for an ACK that a LAN client sends
 * within tens of microseconds; sleeping in epoll_wait for it costs a wake-up (a context switch,
 * and on a virtual machine an idle vCPU to resume) on every block, which bounds throughput.
 * After each send the loop is kept turning with setImmediate for a short budget, so the ACK is
 * picked up by a poll instead of a wake-up. Other events (the rest of Node-RED) still run between
 * turns; the loop never blocks.
 *
 * Polling only pays when the CPU is free. A turn that comes back much later than it should means
 * another process had the core; polling then only steals time from the client, so it pauses:
 * briefly for an isolated hiccup (a GC, the host), longer and longer while it keeps happening.
 */
export class BusyPoller {
  private until = 0;
  private running = false;
  private lastTurn = 0;
  private pausedUntil = 0;
  private pause = 0;
  private lastPreempted = -Infinity;
  /** Turns polled and pauses for contention, for diagnostics. */
  turns = 0;
  pauses = 0;

  /**
   * @param budgetMs how long to keep polling after a send (0 disables)
   * @param preemptedMs a gap between turns above this means the core is contended
   * @param minPauseMs first pause after contention; it doubles while contention recurs within
   *   a second, up to maxPauseMs
   */
  constructor(
    private readonly budgetMs: number,
    private readonly preemptedMs = 1,
    private readonly minPauseMs = 20,
    private readonly maxPauseMs = 2000,
  ) {}

  /** Something was sent and an answer is expected soon: keep polling for the budget. */
  kick(): void {
    if (this.budgetMs <= 0) return;
    const now = performance.now();
    if (now < this.pausedUntil) return;
    this.until = now + this.budgetMs;
    if (!this.running) {
      this.running = true;
      this.lastTurn = now;
      setImmediate(this.turn);
    }
  }

  /** Stops polling (server closing). */
  stop(): void {
    this.until = 0;
  }

  private readonly turn = (): void => {
    const now = performance.now();
    this.turns++;
    if (now - this.lastTurn > this.preemptedMs) {
      this.pauses++;
      this.pause = now - this.lastPreempted < 1000 ? Math.min(this.maxPauseMs, this.pause * 2) : this.minPauseMs;
      this.lastPreempted = now;
      this.pausedUntil = now + this.pause;
      this.until = 0;
    }
    this.lastTurn = now;
    if (now < this.until) setImmediate(this.turn);
    else this.running = false;
  };
}
