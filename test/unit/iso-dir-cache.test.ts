/**
 * The directory cache of the ISO reader against crafted images: one directory over the size
 * limit is refused with a clear store error (it used to be parsed whatever it cost), and many
 * large directories stay within the cache's byte budget (it used to keep 2,048 of any size).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { IsoImage } from '../../nodes/lib/iso9660/reader';
import { bufferSource } from '../../nodes/lib/iso9660/source';
import { isStoreError } from '../../nodes/lib/store/types';

const SECTOR = 2048;
const MiB = 1 << 20;

function both32(b: Buffer, at: number, v: number): void {
  b.writeUInt32LE(v, at);
  b.writeUInt32BE(v, at + 4);
}

function both16(b: Buffer, at: number, v: number): void {
  b.writeUInt16LE(v, at);
  b.writeUInt16BE(v, at + 2);
}

/** One directory record (ECMA-119 9.1), plain ISO 9660. */
function record(id: Buffer, block: number, size: number, dir: boolean): Buffer {
  const len = 33 + id.length + (id.length % 2 === 0 ? 1 : 0);
  const r = Buffer.alloc(len);
  r[0] = len;
  both32(r, 2, block);
  both32(r, 10, size);
  r[18] = 120; // 2020-01-01
  r[19] = 1;
  r[20] = 1;
  r[25] = dir ? 2 : 0;
  both16(r, 28, 1);
  r[32] = id.length;
  id.copy(r, 33);
  return r;
}

/** Records laid out in sectors (a record never crosses a sector boundary). */
function extent(recs: Buffer[]): Buffer {
  const out: Buffer[] = [];
  let cur = Buffer.alloc(SECTOR);
  let pos = 0;
  for (const r of recs) {
    if (pos + r.length > SECTOR) {
      out.push(cur);
      cur = Buffer.alloc(SECTOR);
      pos = 0;
    }
    r.copy(cur, pos);
    pos += r.length;
  }
  out.push(cur);
  return Buffer.concat(out);
}

/**
 * A plain ISO 9660 image whose root holds directories D0…Dn-1, directory i holding `files[i]`
 * empty files with the shortest names possible (the most entries per byte: the costliest case).
 */
function craftImage(files: number[]): Buffer {
  const dot = (block: number, size: number): Buffer[] => [record(Buffer.from([0]), block, size, true), record(Buffer.from([1]), block, size, true)];
  const dirs = files.map((n) => extent([...dot(0, 0), ...Array.from({ length: n }, (_, j) => record(Buffer.from(j.toString(36).toUpperCase()), 0, 0, false))]));
  const rootRecs = (blocks: number[]): Buffer[] => [...dot(18, 0), ...dirs.map((d, i) => record(Buffer.from(`D${i}`), blocks[i] ?? 0, d.length, true))];
  let next = 18 + extent(rootRecs([])).length / SECTOR;
  const blocks = dirs.map((d) => {
    const b = next;
    next += d.length / SECTOR;
    return b;
  });
  const root = extent(rootRecs(blocks));
  const pvd = Buffer.alloc(SECTOR);
  pvd[0] = 1;
  pvd.write('CD001', 1, 'latin1');
  pvd[6] = 1;
  pvd.write('CRAFTED'.padEnd(32), 40, 'latin1');
  both32(pvd, 80, next);
  both16(pvd, 128, SECTOR);
  record(Buffer.from([0]), 18, root.length, true).copy(pvd, 156);
  const term = Buffer.alloc(SECTOR);
  term[0] = 255;
  term.write('CD001', 1, 'latin1');
  term[6] = 1;
  return Buffer.concat([Buffer.alloc(16 * SECTOR), pvd, term, root, ...dirs]);
}

/** Entries of the smallest records that fill about `bytes` of directory. */
const entriesFor = (bytes: number): number => Math.floor(bytes / SECTOR) * Math.floor(SECTOR / 38);

function gcFunction(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

describe('ISO directory cache', () => {
  it('refuses a directory over the size limit with a clear store error, and serves the rest', async () => {
    const image = await IsoImage.open(bufferSource(craftImage([10, entriesFor(3 * MiB)])));
    const started = Date.now();
    await assert.rejects(image.resolve(['D1', '0']), (e: Error) => isStoreError(e, 'EBADIMAGE') && /directory \/D1 is \d+ bytes, over the 1048576-byte limit for one directory/.test(e.message));
    assert.ok(Date.now() - started < 1000, 'refused before parsing');
    assert.equal((await image.resolve(['D0', '9'])).node.type, 'file');
  });

  it('keeps parsed directories within its byte budget, and reads evicted ones again', async () => {
    const gc = gcFunction();
    // 12 directories of ~0.9 MiB of the smallest records: ~25,000 entries each, ~10 MiB parsed.
    const n = entriesFor(0.9 * MiB);
    const image = await IsoImage.open(bufferSource(craftImage(Array.from({ length: 12 }, () => n))));
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 12; i++) assert.equal((await image.resolve([`D${i}`, (n - 1).toString(36)])).node.type, 'file');
    gc();
    const grown = (process.memoryUsage().heapUsed - before) / MiB;
    // The budget plus the last directory parsed; without a bound this was ~12 × 10 MiB.
    assert.ok(grown < 40, `the heap grew by ${grown.toFixed(1)} MiB for 12 large directories`);
    assert.ok(image.cacheBytes <= 16 * MiB, `cache reckons ${image.cacheBytes / MiB} MiB`);
    assert.equal((await image.resolve(['D0', '0'])).node.type, 'file', 'an evicted directory is read again');
  });
});
