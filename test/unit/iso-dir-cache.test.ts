/**
 * The directory cache of the ISO reader against crafted images: one directory over the size
 * limit is refused with a clear store error (it used to be parsed whatever it cost), and many
 * large directories stay within the cache's byte budget (it used to keep 2,048 of any size).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { IsoImage, MAX_CACHED_BYTES } from '../../nodes/lib/iso9660/reader';
import { bufferSource } from '../../nodes/lib/iso9660/source';
import { isStoreError } from '../../nodes/lib/store/types';
import { craftedName, craftImage, entriesFor } from '../helpers/crafted-iso';

const MiB = 1 << 20;

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
    // 12 directories of ~0.9 MiB of the smallest records: ~25,000 entries each, ~7 MiB parsed.
    const n = entriesFor(0.9 * MiB);
    const image = await IsoImage.open(bufferSource(craftImage(Array.from({ length: 12 }, () => n))));
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 12; i++) assert.equal((await image.resolve([`D${i}`, craftedName(n - 1)])).node.type, 'file');
    gc();
    const grown = (process.memoryUsage().heapUsed - before) / MiB;
    // The budget plus the last directory parsed; without a bound this was ~12 × 10 MiB.
    assert.ok(grown < 40, `the heap grew by ${grown.toFixed(1)} MiB for 12 large directories`);
    // The budget, or the last directory alone when it is larger.
    assert.ok(image.cacheBytes <= Math.max(MAX_CACHED_BYTES, 8 * MiB), `cache reckons ${image.cacheBytes / MiB} MiB`);
    assert.equal((await image.resolve(['D0', '0'])).node.type, 'file', 'an evicted directory is read again');
  });
});
