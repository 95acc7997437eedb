import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { contentTypeFor } from '../../nodes/lib/http/content-type';
import { ProgressTracker } from '../../nodes/lib/http/progress';

describe('http progress tracker', () => {
  it('reports each step once, in order, ending with exactly one 100', () => {
    let t = 0;
    const p = new ProgressTracker(1000, { step: 10, minIntervalMs: 0, now: () => t++ });
    const seen: number[] = [];
    for (let b = 0; b <= 1000; b += 7) {
      const r = p.update(b);
      if (r !== null) seen.push(r);
    }
    const last = p.update(1000) ?? p.finish();
    if (last !== null) seen.push(last);
    assert.deepEqual(seen, [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    assert.equal(p.finish(), null);
  });

  it('holds reports to the rate limit and reports a skipped step at the next chance', () => {
    let now = 0;
    const p = new ProgressTracker(100, { step: 10, minIntervalMs: 250, now: () => now });
    assert.equal(p.update(10), 10);
    now = 100;
    assert.equal(p.update(25), null); // 20 crossed, too soon
    now = 260;
    assert.equal(p.update(31), 30); // reported rounded down to its step
    now = 300;
    assert.equal(p.update(100), 100); // the end is never held back
    assert.equal(p.finish(), null);
  });

  it('treats an empty transfer as complete and clamps odd steps', () => {
    assert.equal(new ProgressTracker(0).finish(), 100);
    assert.equal(new ProgressTracker(0).update(0), 100);
    const p = new ProgressTracker(100, { step: 500, minIntervalMs: 0 });
    assert.equal(p.update(99), null);
    assert.equal(p.update(100), 100);
    const q = new ProgressTracker(100, { step: Number.NaN, minIntervalMs: -5 });
    assert.equal(q.update(10), 10);
  });

  it('never reports more often than allowed, never goes backwards (bounded fuzz)', () => {
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    for (let round = 0; round < 200; round++) {
      const total = 1 + rnd(1 << 20);
      let now = 0;
      const p = new ProgressTracker(total, { step: 1 + rnd(50), minIntervalMs: 250, now: () => now });
      let bytes = 0;
      let lastPct = 0;
      let lastTime = -Infinity;
      while (bytes < total) {
        bytes = Math.min(total, bytes + 1 + rnd(total / 7 + 1));
        now += rnd(200);
        const r = p.update(bytes);
        if (r !== null) {
          assert.ok(r > lastPct, `${r} after ${lastPct}`);
          if (r < 100) assert.ok(now - lastTime >= 250);
          lastPct = r;
          lastTime = now;
        }
      }
      // Reaching the total always reports 100, whatever the rate limit.
      assert.equal(lastPct, 100);
      assert.equal(p.finish(), null);
    }
  });
});

describe('http content types', () => {
  it('knows what PXE clients fetch and defaults to octet-stream', () => {
    assert.equal(contentTypeFor('arch/x86_64/airootfs.sfs'), 'application/octet-stream');
    assert.equal(contentTypeFor('boot.IPXE'), 'text/plain; charset=utf-8');
    assert.equal(contentTypeFor('syslinux/archiso.cfg'), 'text/plain; charset=utf-8');
    assert.equal(contentTypeFor('archlinux.iso'), 'application/x-iso9660-image');
    assert.equal(contentTypeFor('EFI/BOOT/BOOTx64.EFI'), 'application/efi');
    assert.equal(contentTypeFor('vmlinuz-linux'), 'application/octet-stream');
    assert.equal(contentTypeFor('.hidden'), 'application/octet-stream');
    assert.equal(contentTypeFor('a.dir/noext'), 'application/octet-stream');
  });
});
