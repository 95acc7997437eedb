import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BufferPool } from '../../nodes/lib/http/buffer-pool';

describe('http buffer pool', () => {
  it('reuses buffers and never allocates past its budget', async () => {
    const pool = new BufferPool(1024, 2);
    const a = (await pool.acquire())!;
    const b = (await pool.acquire())!;
    assert.equal(a.length, 1024);
    assert.equal(pool.tryAcquire(), null);
    assert.equal(pool.allocated, 2);
    pool.release(a);
    assert.equal(await pool.acquire(), a);
    pool.release(a);
    pool.release(b);
    assert.equal(pool.inUse, 0);
    assert.equal(pool.allocated, 2);
  });

  it('hands released buffers to waiters in order, and a withdrawn request gets none', async () => {
    const pool = new BufferPool(16, 1);
    const first = (await pool.acquire())!;
    const order: string[] = [];
    const ac = new AbortController();
    const w1 = pool.acquire().then((b) => (order.push('w1'), b));
    const w2 = pool.acquire(ac.signal).then((b) => (order.push(`w2:${b}`), b));
    const w3 = pool.acquire().then((b) => (order.push('w3'), b));
    ac.abort();
    assert.equal(await w2, null);
    pool.release(first);
    const got1 = await w1;
    assert.equal(got1, first);
    pool.release(got1!);
    assert.equal(await w3, first);
    assert.deepEqual(order, ['w2:null', 'w1', 'w3']);
    pool.release(first);
    assert.equal(pool.inUse, 0);
    assert.equal(await pool.acquire(AbortSignal.abort()), null);
  });

  it('gives idle buffers back after a while', async () => {
    const pool = new BufferPool(16, 4, 20);
    const a = (await pool.acquire())!;
    pool.release(a);
    assert.equal(pool.allocated, 1);
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(pool.allocated, 0);
  });
});
