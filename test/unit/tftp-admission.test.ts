import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AdmissionQueue } from '../../nodes/lib/tftp/admission';

/** A fake clock with one pending timer at most (the queue keeps one). */
function fakeClock(): { now: () => number; advance: (ms: number) => void; setTimer: (fn: () => void, ms: number) => unknown; clearTimer: (t: unknown) => void; pending: () => number } {
  let t = 0;
  let timers: { at: number; fn: () => void; id: number }[] = [];
  let ids = 0;
  return {
    now: () => t,
    advance: (ms) => {
      const end = t + ms;
      for (;;) {
        const due = timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        timers = timers.filter((x) => x !== due);
        t = due.at;
        due.fn();
      }
      t = end;
    },
    setTimer: (fn, ms) => {
      const id = ++ids;
      timers.push({ at: t + ms, fn, id });
      return id;
    },
    clearTimer: (id) => {
      timers = timers.filter((x) => x.id !== id);
    },
    pending: () => timers.length,
  };
}

describe('tftp admission queue', () => {
  const make = (maxWaiting = 3, maxWaitMs = 1000) => {
    const clock = fakeClock();
    const expired: [string, number][] = [];
    const q = new AdmissionQueue<string>({ maxWaiting, maxWaitMs, onExpired: (item, waited) => expired.push([item, waited]), ...clock });
    return { q, clock, expired };
  };

  it('hands requests out oldest first', () => {
    const { q } = make();
    assert.equal(q.offer('a:1', 'A'), 'queued');
    assert.equal(q.offer('b:1', 'B'), 'queued');
    assert.equal(q.offer('c:1', 'C'), 'queued');
    assert.equal(q.size, 3);
    assert.deepEqual([q.take(), q.take(), q.take(), q.take()], ['A', 'B', 'C', undefined]);
    assert.equal(q.size, 0);
  });

  it('keeps one entry per client port: a resend neither queues twice nor loses its turn', () => {
    const { q } = make();
    q.offer('a:1', 'A');
    q.offer('b:1', 'B');
    assert.equal(q.offer('a:1', 'A again'), 'waiting');
    assert.equal(q.offer('a:1', 'A again'), 'waiting');
    assert.equal(q.size, 2);
    assert.equal(q.take(), 'A again', 'still first, with the newest packet');
    assert.equal(q.take(), 'B');
  });

  it('refuses past its bound, and a resend of a waiting request is not counted against it', () => {
    const { q } = make(2);
    q.offer('a:1', 'A');
    q.offer('b:1', 'B');
    assert.equal(q.offer('c:1', 'C'), 'full');
    assert.equal(q.offer('a:1', 'A'), 'waiting');
    assert.equal(q.size, 2);
    q.take();
    assert.equal(q.offer('c:1', 'C'), 'queued');
  });

  it('expires requests that waited too long, oldest first, with one timer', () => {
    const { q, clock, expired } = make(5, 1000);
    q.offer('a:1', 'A');
    clock.advance(300);
    q.offer('b:1', 'B');
    q.offer('b:1', 'B'); // a resend does not restart its clock
    clock.advance(300);
    q.offer('c:1', 'C');
    assert.equal(clock.pending(), 1);
    clock.advance(399);
    assert.deepEqual(expired, []);
    clock.advance(1);
    assert.deepEqual(expired, [['A', 1000]]);
    clock.advance(300);
    assert.deepEqual(expired, [['A', 1000], ['B', 1000]]);
    assert.equal(q.take(), 'C', 'the youngest is still waiting');
    assert.equal(clock.pending(), 0, 'no timer once the queue is empty');
    clock.advance(5000);
    assert.equal(expired.length, 2);
  });

  it('a request taken in time never expires, and clear empties the queue and its timer', () => {
    const { q, clock, expired } = make(5, 1000);
    q.offer('a:1', 'A');
    q.offer('b:1', 'B');
    clock.advance(500);
    assert.equal(q.take(), 'A');
    assert.deepEqual(q.clear(), ['B']);
    assert.equal(clock.pending(), 0);
    clock.advance(5000);
    assert.deepEqual(expired, []);
  });
});
