/**
 * The two throttles between boots and people: the comms notice to the editors (at most one per
 * 500 ms, however many clients boot) and a serving node's status dot (at most one per second, with
 * a byte rate smoothed over a few seconds).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ActivityStatus, formatBytes, formatRate } from '../../nodes/lib/activity-status';
import { Coalescer, type Clock } from '../../nodes/lib/boot-events/coalesce';
import type { NodeStatus } from '../../nodes/lib/red';

/** A clock the test moves by hand. */
class FakeClock implements Clock {
  t = 1_000_000;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private next = 1;
  now = (): number => this.t;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = this.next++;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  };
  clearTimeout = (id: unknown): void => {
    this.timers = this.timers.filter((x) => x.id !== id);
  };
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const due = this.timers[0];
      if (!due || due.at > end) break;
      this.timers.shift();
      this.t = due.at;
      due.fn();
    }
    this.t = end;
  }
}

describe('Coalescer: the editors are told at most twice a second', () => {
  it('runs at once after a quiet spell, then folds every poke of an interval into one run at its end', () => {
    const clock = new FakeClock();
    const runs: number[] = [];
    const c = new Coalescer(() => runs.push(clock.t), 500, clock);
    c.poke();
    assert.equal(runs.length, 1, 'leading edge');
    // 200 clients × 20 signals a second for 3 seconds.
    for (let i = 0; i < 3000; i++) {
      clock.advance(1);
      for (let k = 0; k < 4; k++) c.poke();
    }
    clock.advance(1000);
    assert.ok(runs.length >= 6 && runs.length <= 8, `runs ${runs.length}`);
    for (let i = 1; i < runs.length; i++) assert.ok(runs[i]! - runs[i - 1]! >= 500, `gap ${runs[i]! - runs[i - 1]!}`);
    assert.ok(runs.at(-1)! >= clock.t - 1000 - 500, 'the last pokes got their run');
  });
});

describe('ActivityStatus: a serving node status dot', () => {
  it('formats rates short', () => {
    assert.equal(formatRate(41_200_000), '41 MB/s');
    assert.equal(formatRate(850_000), '850 kB/s');
    assert.equal(formatRate(1_230_000_000), '1.2 GB/s');
    assert.equal(formatRate(999_600), '1.0 MB/s');
    assert.equal(formatBytes(0), '0 B');
  });

  function setup(staleMs?: number): { clock: FakeClock; shown: NodeStatus[]; a: ActivityStatus } {
    const clock = new FakeClock();
    const shown: NodeStatus[] = [];
    const a = new ActivityStatus({
      show: (s) => shown.push(s),
      idle: () => ({ fill: 'green', shape: 'dot', text: 'listening :69' }),
      busyText: (n, rate) => `${n} active, ${rate}`,
      now: clock.now,
      setTimer: clock.setTimeout,
      clearTimer: clock.clearTimeout,
      ...(staleMs !== undefined ? { staleMs } : {}),
    });
    return { clock, shown, a };
  }

  it('counts transfers and a rate from running totals, updating at most once a second', () => {
    const { clock, shown, a } = setup();
    a.begin('1');
    a.begin('2');
    a.begin('3');
    // 3 transfers at 10 MB/s each for 5 s, reported 20 times a second each.
    for (let ms = 0; ms < 5000; ms += 50) {
      clock.advance(50);
      for (const k of ['1', '2', '3']) a.progress(k, ((ms + 50) / 1000) * 10_000_000);
    }
    assert.ok(shown.length <= 7, `updates ${shown.length}`);
    assert.match(shown.at(-1)!.text!, /^3 active, (29|30|31) MB\/s$/);
    a.end('1');
    a.end('2');
    clock.advance(1000);
    assert.match(shown.at(-1)!.text!, /^1 active, \d+ MB\/s$/);
    a.end('3');
    clock.advance(1000);
    assert.deepEqual(shown.at(-1), { fill: 'green', shape: 'dot', text: 'listening :69' }, 'idle as soon as nothing is in flight');
  });

  it('spreads the bytes of a transfer that only reports its end (TFTP) over its duration', () => {
    const { clock, shown, a } = setup();
    a.begin('k');
    a.begin('other');
    clock.advance(4000);
    a.end('k', 8_000_000);
    clock.advance(1000);
    // 8 MB over 4 s, seen through a 5 s window one second later: about 1.2–1.6 MB/s, not 8 MB at once.
    const m = /^1 active, ([\d.]+) MB\/s$/.exec(shown.at(-1)!.text!);
    assert.ok(m && Number(m[1]) >= 1.2 && Number(m[1]) <= 1.6, shown.at(-1)!.text);
  });

  it('forgets transfers that went quiet when told to (NFS and NBD reads have no end)', () => {
    const { clock, shown, a } = setup(3000);
    a.progress('a', 1_000_000);
    a.progress('b', 1_000_000);
    for (let ms = 0; ms < 2000; ms += 500) {
      clock.advance(500);
      a.progress('a', 1_000_000 + ms * 1000);
    }
    assert.match(shown.at(-1)!.text!, /^2 active, /);
    // 'b' has had no news for 3 s: one transfer left; then 'a' goes quiet too: idle.
    clock.advance(1500);
    assert.match(shown.at(-1)!.text!, /^1 active, /);
    clock.advance(3000);
    assert.deepEqual(shown.at(-1), { fill: 'green', shape: 'dot', text: 'listening :69' });
    // News again: counted again.
    a.progress('a', 9_000_000);
    clock.advance(1000);
    assert.match(shown.at(-1)!.text!, /^1 active, /);
  });

  it('without staleMs a quiet transfer stays counted until its end', () => {
    const { clock, shown, a } = setup();
    a.begin('slow');
    clock.advance(60_000);
    assert.match(shown.at(-1)!.text!, /^1 active, /);
  });

  it('stops after close', () => {
    const { clock, shown, a } = setup();
    a.begin('x');
    const n = shown.length;
    a.close();
    a.progress('x', 1e9);
    clock.advance(5000);
    assert.equal(shown.length, n);
  });
});
