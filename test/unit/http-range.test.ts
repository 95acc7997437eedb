import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { contentRange, ifRangeMatches, parseRange } from '../../nodes/lib/http/range';

describe('http range', () => {
  it('parses single ranges: start, middle, open end, suffix, clipped end', () => {
    assert.deepEqual(parseRange('bytes=0-99', 1000), { type: 'range', start: 0, end: 99 });
    assert.deepEqual(parseRange('bytes=500-599', 1000), { type: 'range', start: 500, end: 599 });
    assert.deepEqual(parseRange('bytes=900-', 1000), { type: 'range', start: 900, end: 999 });
    assert.deepEqual(parseRange('bytes=-100', 1000), { type: 'range', start: 900, end: 999 });
    assert.deepEqual(parseRange('bytes=-5000', 1000), { type: 'range', start: 0, end: 999 });
    assert.deepEqual(parseRange('bytes=990-5000', 1000), { type: 'range', start: 990, end: 999 });
    assert.deepEqual(parseRange('Bytes = 1-1', 10), { type: 'range', start: 1, end: 1 });
    assert.deepEqual(parseRange('bytes= 2-3 ,', 10), { type: 'range', start: 2, end: 3 });
  });

  it('reports ranges that miss the file as unsatisfiable', () => {
    assert.deepEqual(parseRange('bytes=1000-', 1000), { type: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=5000-6000', 1000), { type: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=-0', 1000), { type: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=0-', 0), { type: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=-10', 0), { type: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=99999999999999999999999-', 1000), { type: 'unsatisfiable' });
  });

  it('ignores malformed headers and other units (whole file)', () => {
    for (const h of [undefined, '', 'bytes', 'bytes=', 'bytes=-', 'bytes=a-b', 'bytes=5-1', 'items=0-1', 'bytes=0-1;x', 'bytes=1.5-2', 'bytes=0-1,x', 'x'.repeat(2000)]) {
      assert.deepEqual(parseRange(h, 1000), { type: 'none' }, String(h));
    }
  });

  it('answers several ranges with the whole file', () => {
    assert.deepEqual(parseRange('bytes=0-1,5-6', 1000), { type: 'multiple' });
    assert.deepEqual(parseRange('bytes=0-1, -5', 1000), { type: 'multiple' });
  });

  it('keeps every parsed range inside the file (bounded fuzz)', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const parts = ['bytes', '=', '-', ',', ' ', '0', '1', '9', '42', '1000', '', 'x'];
    for (let i = 0; i < 5000; i++) {
      const size = rnd(3) === 0 ? 0 : rnd(2000);
      let h = '';
      for (let j = rnd(8); j >= 0; j--) h += parts[rnd(parts.length)];
      const r = parseRange(h, size);
      if (r.type === 'range') {
        assert.ok(r.start >= 0 && r.start <= r.end && r.end < size, `${h} size ${size} → ${JSON.stringify(r)}`);
      }
    }
  });

  it('applies If-Range only on an exact strong ETag or the exact Last-Modified date', () => {
    const mtime = new Date('2024-05-01T10:20:30.456Z');
    const etag = '"3e8-18f3391c8d8"';
    assert.equal(ifRangeMatches(undefined, etag, mtime), true);
    assert.equal(ifRangeMatches(etag, etag, mtime), true);
    assert.equal(ifRangeMatches('"other"', etag, mtime), false);
    assert.equal(ifRangeMatches(`W/${etag}`, etag, mtime), false);
    assert.equal(ifRangeMatches(mtime.toUTCString(), etag, mtime), true);
    assert.equal(ifRangeMatches(new Date(mtime.getTime() + 2000).toUTCString(), etag, mtime), false);
    assert.equal(ifRangeMatches('not a date', etag, mtime), false);
  });

  it('formats Content-Range', () => {
    assert.equal(contentRange(0, 99, 1000), 'bytes 0-99/1000');
  });
});
