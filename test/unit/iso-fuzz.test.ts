import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IsoImage, type IsoNode } from '../../nodes/lib/iso9660/reader';
import { bufferSource } from '../../nodes/lib/iso9660/source';
import { IsoStore } from '../../nodes/lib/store/iso-store';
import { StoreError } from '../../nodes/lib/store/types';
import { readStream, tempDir, writeTree, xorrisoImage, genisoImage } from '../helpers/iso-images';

/** A small deterministic PRNG (mulberry32), so a failure can be replayed from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LOOKUPS = ['/', 'boot/syslinux/syslinux.cfg', 'BOOT/SYSLINUX/LDLINUX.C32', 'link', 'loop', 'deep/a/b/c/d/e/f/g/h/i/x.txt', 'many/f050'];

/** Everything a server might do with an image; any failure must be a StoreError. */
async function exercise(image: IsoImage): Promise<number> {
  let visited = 0;
  const buf = Buffer.alloc(8192);
  const walk = async (node: IsoNode, segs: string[], depth: number): Promise<void> => {
    if (depth > 12 || visited > 500) return; // a corrupt image may make directories cycle
    for (const child of await image.list(node, `/${segs.join('/')}`)) {
      visited++;
      if (child.type === 'dir') await walk(child, [...segs, child.name], depth + 1).catch(expectStoreError);
      else if (child.type === 'file' && !child.bad) {
        await image.read(child, buf, 0, buf.length, 0).catch(expectStoreError);
        await image.read(child, buf, 0, 100, Math.max(0, child.size - 50)).catch(expectStoreError);
      }
    }
  };
  for (const p of LOOKUPS) await image.resolve(p.split('/').filter(Boolean)).catch(expectStoreError);
  await walk(image.root, [], 0).catch(expectStoreError);
  return visited;
}

/** Where every directory record of the primary tree starts, found without the reader under test. */
function allRecordStarts(img: Buffer): number[] {
  const out: number[] = [];
  const seen = new Set<number>();
  const visit = (lba: number, size: number) => {
    if (seen.has(lba)) return;
    seen.add(lba);
    for (let s = lba * 2048; s < lba * 2048 + size; s += 2048) {
      for (let at = s; at < s + 2048 && img[at] !== 0; at += img[at]) {
        out.push(at);
        const isSub = img[at + 25] & 2 && !(img[at + 32] === 1 && img[at + 33] <= 1);
        if (isSub) visit(img.readUInt32LE(at + 2), img.readUInt32LE(at + 10));
      }
    }
  };
  visit(img.readUInt32LE(32768 + 156 + 2), img.readUInt32LE(32768 + 156 + 10));
  return out;
}

function expectStoreError(err: unknown): void {
  if (!(err instanceof StoreError)) throw err;
}

describe('fuzzed images', () => {
  let dir: string;
  const bases: Buffer[] = [];
  const recordStarts = new Map<Buffer, number[]>();

  before(() => {
    dir = tempDir('iso-fuzz');
    const src = path.join(dir, 'src');
    const tree: Parameters<typeof writeTree>[1] = {
      'boot/syslinux/syslinux.cfg': 'DEFAULT arch\n',
      'boot/syslinux/ldlinux.c32': Buffer.alloc(3000, 7),
      'deep/a/b/c/d/e/f/g/h/i/x.txt': 'x',
      [`${'n'.repeat(180)}.txt`]: 'long',
      link: { link: 'boot/syslinux' },
      loop: { link: 'loop' },
    };
    for (let i = 0; i < 60; i++) tree[`many/f${String(i).padStart(3, '0')}`] = Buffer.alloc(i * 10, i);
    writeTree(src, tree);
    bases.push(fs.readFileSync(xorrisoImage(src, path.join(dir, 'a.iso'))));
    bases.push(fs.readFileSync(genisoImage(src, path.join(dir, 'j.iso'), ['-J'])));
    bases.push(fs.readFileSync(genisoImage(src, path.join(dir, 'r.iso'), ['-R'])));
    for (const b of bases) recordStarts.set(b, allRecordStarts(b));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('survive 300 mutations: every lookup and read works or throws StoreError', { timeout: 60_000 }, async () => {
    const rand = rng(0x150);
    const started = Date.now();
    let opened = 0;
    let failedOpen = 0;
    for (let i = 0; i < 300; i++) {
      const base = bases[i % bases.length];
      const img = Buffer.from(base);
      const kind = Math.floor(rand() * 6);
      // Mutate where the metadata lives: descriptors, path tables, directories, CE areas.
      const metaEnd = Math.min(img.length, 64 * 2048);
      if (kind === 0) {
        for (let k = 1 + Math.floor(rand() * 8); k > 0; k--) img[16 * 2048 + Math.floor(rand() * (metaEnd - 16 * 2048))] = Math.floor(rand() * 256);
      } else if (kind === 1) {
        // Length-ish bytes set to extremes.
        for (let k = 1 + Math.floor(rand() * 4); k > 0; k--) img[16 * 2048 + Math.floor(rand() * (metaEnd - 16 * 2048))] = rand() < 0.5 ? 0 : 0xff;
      } else if (kind === 2) {
        // A whole run of random bytes.
        const at = 16 * 2048 + Math.floor(rand() * (metaEnd - 16 * 2048));
        for (let k = 0; k < 64 && at + k < img.length; k++) img[at + k] = Math.floor(rand() * 256);
      } else if (kind >= 4) {
        // A directory record field (length, identifier length, extent, size, flags) made extreme.
        const starts = recordStarts.get(base)!;
        for (let k = 1 + Math.floor(rand() * 3); k > 0; k--) {
          const at = starts[Math.floor(rand() * starts.length)];
          const field = [0, 1, 2, 10, 25, 32][Math.floor(rand() * 6)];
          const values = [0, 1, 33, 34, 0x7f, 0x80, 0x82, 0xff, Math.floor(rand() * 256)];
          img[at + field] = values[Math.floor(rand() * values.length)];
          if (field === 2 || field === 10) img.writeUInt32LE(Math.floor(rand() * 2 ** 32), at + field);
        }
      }
      const sized = kind === 3 ? img.subarray(0, Math.floor(rand() * img.length)) : img;
      let image: IsoImage;
      try {
        image = await IsoImage.open(bufferSource(sized));
      } catch (err) {
        expectStoreError(err);
        failedOpen++;
        continue;
      }
      opened++;
      await exercise(image).catch((err: unknown) => {
        expectStoreError(err);
        return 0;
      });
    }
    assert.ok(opened > 100, `most mutants still open (${opened} opened, ${failedOpen} refused)`);
    assert.ok(Date.now() - started < 50_000);
  });

  it('survive random images with a valid-looking descriptor', async () => {
    const rand = rng(7);
    for (let i = 0; i < 40; i++) {
      const img = Buffer.alloc(64 * 2048 + Math.floor(rand() * 100_000));
      for (let k = 0; k < img.length; k++) img[k] = Math.floor(rand() * 256);
      // Primary descriptor header and a block size the reader accepts, everything else random.
      img[32768] = 1;
      img.write('CD001', 32769, 'latin1');
      img.writeUInt16LE(2048, 32768 + 128);
      img.writeUInt32LE(Math.floor(rand() * 60), 32768 + 80);
      img.writeUInt32LE(17 + Math.floor(rand() * 40), 32768 + 156 + 2);
      img[32768 + 156] = 34;
      img[32768 + 156 + 25] = 2;
      img[32768 + 156 + 32] = 1;
      try {
        await exercise(await IsoImage.open(bufferSource(img)));
      } catch (err) {
        expectStoreError(err);
      }
    }
  });

  it('survive mutants through the store on disk', async () => {
    const rand = rng(99);
    for (let i = 0; i < 20; i++) {
      const img = Buffer.from(bases[i % bases.length]);
      for (let k = 0; k < 6; k++) img[16 * 2048 + Math.floor(rand() * 40 * 2048)] = Math.floor(rand() * 256);
      const file = path.join(dir, `m${i}.iso`);
      fs.writeFileSync(file, img);
      const store = new IsoStore(file);
      for (const p of LOOKUPS) {
        try {
          await store.stat(p);
          await store.list(p).catch(expectStoreError);
          await readStream(await store.createReadStream(p));
        } catch (err) {
          expectStoreError(err);
        }
      }
      await store.close();
    }
  });
});
