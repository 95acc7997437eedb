import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BufferPool } from '../../nodes/lib/http/buffer-pool';

describe('http buffer pool', () => {
  it('reuses buffers and never allocates past its budget', () => {
    const pool = new BufferPool(1024, 2);
    const a = pool.tryAcquire()!;
    const b = pool.tryAcquire()!;
    assert.equal(a.length, 1024);
    assert.equal(pool.tryAcquire(), null);
    assert.equal(pool.allocated, 2);
    pool.release(a);
    assert.equal(pool.tryAcquire(), a);
    pool.release(a);
    pool.release(b);
    pool.release(b); // twice: no effect
    assert.equal(pool.inUse, 0);
    assert.equal(pool.allocated, 2);
  });

  it('holds each owner to its share, in use and written off together', () => {
    const pool = new BufferPool(16, 8, 10_000, { maxPerOwner: 2, maxWrittenOff: 8 });
    const a1 = pool.tryAcquire('10.0.0.1')!;
    const a2 = pool.tryAcquire('10.0.0.1')!;
    assert.equal(pool.tryAcquire('10.0.0.1'), null);
    assert.ok(pool.tryAcquire('10.0.0.2'), 'another address still gets one');
    assert.equal(pool.writeOff(a1), true);
    assert.equal(pool.heldBy('10.0.0.1'), 2);
    assert.equal(pool.tryAcquire('10.0.0.1'), null, 'a written-off buffer still counts against its owner');
    pool.release(a1); // its write ended
    assert.equal(pool.heldBy('10.0.0.1'), 1);
    assert.ok(pool.tryAcquire('10.0.0.1'));
    pool.release(a2);
  });

  it('writes off pinned buffers out of the budget, up to its own limit', () => {
    const pool = new BufferPool(16, 2, 10_000, { maxWrittenOff: 1 });
    const a = pool.tryAcquire('x')!;
    const b = pool.tryAcquire('y')!;
    assert.equal(pool.tryAcquire('z'), null);
    assert.equal(pool.writeOff(a), true);
    assert.equal(pool.writtenOff, 1);
    assert.equal(pool.inUse, 1);
    const c = pool.tryAcquire('z');
    assert.ok(c, 'the budget replaced the written-off buffer');
    assert.notEqual(c, a);
    assert.equal(pool.writeOff(b), false, 'the written-off budget is spent');
    pool.release(a);
    assert.equal(pool.writtenOff, 0);
    pool.release(b);
    pool.release(c!);
    assert.equal(pool.inUse, 0);
    assert.equal(pool.allocated, 2, 'the written-off buffer was forgotten, not returned');
  });

  it('gives idle buffers back after a while', async () => {
    const pool = new BufferPool(16, 4, 20);
    const a = pool.tryAcquire()!;
    pool.release(a);
    assert.equal(pool.allocated, 1);
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(pool.allocated, 0);
  });
});
