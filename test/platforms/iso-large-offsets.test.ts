/**
 * The ISO store past 4 GiB: files whose extents lie beyond 2^32 bytes of a (sparse) image read
 * back byte for byte, through the block reads TFTP/NBD use and the streams HTTP uses — including a
 * read that crosses the 4 GiB boundary. On 32-bit ARM (armhf) this is where a 32-bit offset would
 * wrap; scripts/platforms/arm.sh runs it there, and `npm test` runs it here.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../../nodes/lib/store/open-store';
import type { FileStore } from '../../nodes/lib/store/types';
import { craftImage } from '../helpers/crafted-iso';

const SECTOR = 2048;
const GiB = 2 ** 30;
// CROSS starts one sector before 4 GiB and runs 3 sectors past it; FAR starts at 6 GiB.
const files = { 'CROSS.BIN': { block: 4 * GiB / SECTOR - 1, data: randomBytes(4 * SECTOR) }, 'FAR.BIN': { block: 6 * GiB / SECTOR, data: randomBytes(3 * SECTOR + 17) } };

/** craftImage's image with each file's directory record moved to `block`, the data written there. */
function writeSparseImage(file: string): number {
  const img = craftImage([], Object.fromEntries(Object.entries(files).map(([n, f]) => [n, Buffer.alloc(f.data.length)])));
  let end = 0;
  for (const [name, f] of Object.entries(files)) {
    const at = img.indexOf(Buffer.from(name, 'latin1'));
    assert.ok(at > 33, `record of ${name}`);
    const rec = at - 33;
    img.writeUInt32LE(f.block, rec + 2);
    img.writeUInt32BE(f.block, rec + 6);
    end = Math.max(end, f.block + Math.ceil(f.data.length / SECTOR));
  }
  const pvd = 16 * SECTOR;
  img.writeUInt32LE(end, pvd + 80);
  img.writeUInt32BE(end, pvd + 84);
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, img, 0, img.length, 0);
    for (const f of Object.values(files)) fs.writeSync(fd, f.data, 0, f.data.length, f.block * SECTOR);
    fs.ftruncateSync(fd, end * SECTOR);
  } finally {
    fs.closeSync(fd);
  }
  return end * SECTOR;
}

async function collect(s: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe('ISO store: extents past 4 GiB in a sparse image', () => {
  let dir: string;
  let store: FileStore;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-large-'));
    const image = path.join(dir, 'large.iso');
    const size = writeSparseImage(image);
    assert.ok(fs.statSync(image).size === size && size > 6 * GiB);
    store = await openStore(image);
    assert.equal(store.kind, 'iso');
  });
  after(async () => {
    await store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('lists the files with their sizes', async () => {
    const listed = new Map((await store.list('')).map((s) => [s.name.toUpperCase(), s.size]));
    assert.deepEqual([...listed.keys()].sort(), Object.keys(files).sort());
    for (const [name, f] of Object.entries(files)) assert.equal((await store.stat(name)).size, f.data.length);
  });

  it('block reads (TFTP, NBD) return the bytes at 64-bit offsets, across the 4 GiB boundary', async () => {
    for (const [name, f] of Object.entries(files)) {
      const h = await store.open(name);
      try {
        const whole = Buffer.alloc(f.data.length);
        assert.equal(await h.read(whole, 0, whole.length, 0), f.data.length);
        assert.ok(whole.equals(f.data), `${name} whole`);
        // 100 bytes either side of the file's second sector: for CROSS that is byte 2^32 of the image.
        const piece = Buffer.alloc(200);
        assert.equal(await h.read(piece, 0, 200, SECTOR - 100), 200);
        assert.ok(piece.equals(f.data.subarray(SECTOR - 100, SECTOR + 100)), `${name} piece`);
        assert.equal(await h.read(piece, 0, 200, f.data.length), 0, 'read at end of file');
      } finally {
        await h.close();
      }
    }
  });

  it('streams (HTTP ranges) return the same bytes', async () => {
    for (const [name, f] of Object.entries(files)) {
      assert.ok((await collect(await store.createReadStream(name))).equals(f.data), `${name} stream`);
      const part = await collect(await store.createReadStream(name, { start: SECTOR - 5, end: SECTOR + 4, highWaterMark: 4 }));
      assert.ok(part.equals(f.data.subarray(SECTOR - 5, SECTOR + 5)), `${name} range`);
    }
  });
});
