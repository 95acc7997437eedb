import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReplyBudget } from '../../nodes/lib/reply-budget';

describe('nbd reply budget', () => {
  it('a connection always gets its reserve; beyond it, the shared pool decides', () => {
    const b = new ReplyBudget(100, 50);
    assert.ok(b.take(0, 100)); // all reserve
    assert.equal(b.sharedAvailable, 50);
    assert.ok(b.take(100, 30)); // 30 shared
    assert.equal(b.sharedAvailable, 20);
    assert.ok(!b.take(130, 30), 'only 20 shared bytes are left');
    assert.equal(b.sharedAvailable, 20, 'a refused take takes nothing');
    // Another connection's reserve is untouched by the first one's borrowing.
    assert.ok(b.take(0, 100));
    assert.ok(b.take(90, 30)); // 10 reserve + 20 shared
    assert.equal(b.sharedAvailable, 0);
  });

  it('giving back returns the shared part first and wakes waiters once', () => {
    const b = new ReplyBudget(100, 50);
    assert.ok(b.take(0, 150));
    let woken = 0;
    const w = (): void => void woken++;
    b.wait(w);
    b.wait(w);
    b.give(150, 20); // 20 shared back
    assert.equal(b.sharedAvailable, 20);
    assert.equal(woken, 1);
    b.give(130, 30); // 30 shared back
    assert.equal(woken, 1, 'a waiter is woken once per wait');
    assert.equal(b.sharedAvailable, 50);
    b.wait(w);
    b.give(100, 100); // reserve only: nothing for the pool, no wake-up
    assert.equal(woken, 1);
    b.cancel(w);
  });
});
