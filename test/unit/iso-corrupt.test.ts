import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IsoStore } from '../../nodes/lib/store/iso-store';
import { isStoreError, StoreError } from '../../nodes/lib/store/types';
import { readStream, sampleTree, tempDir, writeTree, xorrisoImage } from '../helpers/iso-images';

const SECTOR = 2048;

function setBoth32(buf: Buffer, at: number, v: number): void {
  buf.writeUInt32LE(v, at);
  buf.writeUInt32BE(v, at + 4);
}

interface Rec {
  at: number;
  len: number;
}

/** The records of a directory extent, found independently of the reader under test. */
function records(img: Buffer, lba: number, size: number): Rec[] {
  const out: Rec[] = [];
  for (let s = lba * SECTOR; s < lba * SECTOR + size; s += SECTOR) {
    for (let at = s; at < s + SECTOR && img[at] !== 0; at += img[at]) out.push({ at, len: img[at] });
  }
  return out;
}

const rootDir = (img: Buffer) => ({ lba: img.readUInt32LE(32768 + 156 + 2), size: img.readUInt32LE(32768 + 156 + 10) });

/** The root record whose Rock Ridge name is `name`. */
function recordNamed(img: Buffer, name: string): Rec {
  const { lba, size } = rootDir(img);
  const nm = Buffer.concat([Buffer.from('NM'), Buffer.from([5 + name.length, 1, 0]), Buffer.from(name)]);
  const r = records(img, lba, size).find((rec) => img.subarray(rec.at, rec.at + rec.len).includes(nm));
  assert.ok(r, `record ${name} found`);
  return r;
}

/** The offset of a SUSP entry inside a record. */
function entryIn(img: Buffer, rec: Rec, sig: string): number {
  const i = img.subarray(rec.at, rec.at + rec.len).indexOf(Buffer.from(sig));
  assert.ok(i > 33, `${sig} entry found`);
  return rec.at + i;
}

describe('corrupt and foreign images', () => {
  let dir: string;
  let good: Buffer;
  let n = 0;

  before(() => {
    dir = tempDir('iso-corrupt');
    writeTree(path.join(dir, 'src'), sampleTree());
    good = fs.readFileSync(xorrisoImage(path.join(dir, 'src'), path.join(dir, 'good.iso')));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Writes a variant of the good image and opens a store on it (without init). */
  function variant(mutate: (img: Buffer) => Buffer | void): IsoStore {
    const img = Buffer.from(good);
    const file = path.join(dir, `v${n++}.iso`);
    fs.writeFileSync(file, mutate(img) ?? img);
    return new IsoStore(file);
  }

  const bad = (pattern: RegExp) => (e: unknown) => {
    assert.ok(isStoreError(e, 'EBADIMAGE'), `EBADIMAGE expected, got ${String(e)}`);
    assert.match((e as StoreError).message, pattern);
    return true;
  };

  it('refuses truncated images, naming the problem', async () => {
    await assert.rejects(variant((img) => img.subarray(0, 1000)).init(), bad(/too small/));
    await assert.rejects(variant((img) => img.subarray(0, 40_000)).init(), bad(/truncated/));
    await assert.rejects(variant((img) => img.subarray(0, img.length >> 1)).init(), bad(/truncated: the volume is \d+ bytes but the file has only/));
  });

  it('refuses files that are not ISO images', async () => {
    await assert.rejects(variant(() => crypto.randomBytes(200_000)).init(), bad(/not an ISO 9660 image: no "CD001"/));
    await assert.rejects(variant(() => Buffer.alloc(0)).init(), bad(/too small/));
    // A volume descriptor set with no primary descriptor (the PVD retyped as a boot record).
    await assert.rejects(variant((img) => void (img[32768] = 0)).init(), bad(/no primary volume descriptor/));
    await assert.rejects(variant((img) => void img.writeUInt16LE(512, 32768 + 128)).init(), bad(/block size 512/));
  });

  it('treats zero bytes at a sector end as padding, not as the end of the directory', async () => {
    const store = variant(() => undefined);
    const manyRec = recordNamed(good, 'many');
    const lba = good.readUInt32LE(manyRec.at + 2);
    const size = good.readUInt32LE(manyRec.at + 10);
    assert.ok(size > SECTOR, 'the directory spans several sectors');
    const recs = records(good, lba, size);
    const firstSectorEnd = recs.filter((r) => r.at < (lba + 1) * SECTOR).at(-1)!;
    assert.ok(firstSectorEnd.at + firstSectorEnd.len < (lba + 1) * SECTOR, 'the first sector ends in padding');
    assert.equal((await store.list('many')).length, 120);
    await store.close();
  });

  it('reports records with impossible lengths as corrupt', async () => {
    const target = recordNamed(good, 'MixedCase.TXT');
    const short = variant((img) => void (img[target.at] = 10));
    await assert.rejects(short.list('/'), bad(/corrupt directory record at byte \d+: length 10 is below/));
    await assert.rejects(short.stat('boot/syslinux/syslinux.cfg'), bad(/corrupt directory record/));
    await short.close();

    const idLen = variant((img) => void (img[target.at + 32] = 250));
    await assert.rejects(idLen.list('/'), bad(/identifier length 250 does not fit/));
    await idLen.close();

    // The last record of a sector made to run past the sector's end.
    const { lba, size } = rootDir(good);
    const last = records(good, lba, size).filter((r) => r.at < (lba + 1) * SECTOR).at(-1)!;
    const over = (lba + 1) * SECTOR - last.at + 2;
    assert.ok(over <= 255 && over > last.len);
    const cross = variant((img) => void (img[last.at] = over));
    await assert.rejects(cross.list('/'), bad(/runs past the end of its sector/));
    await cross.close();
  });

  it('reports a Rock Ridge continuation (CE) loop', async () => {
    const store = variant((img) => {
      const rec = recordNamed(img, 'MixedCase.TXT');
      const px = entryIn(img, rec, 'PX');
      const pxLen = img[px + 2];
      // Replace PX by a CE to sector 1 (unused system area), and fill the rest with an unknown entry.
      const ce = (at: number) => {
        img.write('CE', at, 'latin1');
        img[at + 2] = 28;
        img[at + 3] = 1;
        setBoth32(img, at + 4, 1);
        setBoth32(img, at + 12, 0);
        setBoth32(img, at + 20, 28);
      };
      ce(px);
      img.write('ZZ', px + 28, 'latin1');
      img[px + 30] = pxLen - 28;
      img[px + 31] = 1;
      ce(SECTOR); // sector 1 continues at sector 1: a loop
    });
    await assert.rejects(store.list('/'), bad(/continuation \(CE\) loop/));
    await store.close();
  });

  it('reports a symlink loop and a file whose data lies past the end of the image', async () => {
    const store = variant((img) => setBoth32(img, recordNamed(img, 'MixedCase.TXT').at + 2, 0x00ffffff));
    await assert.rejects(store.stat('loopA'), bad(/too many levels of symbolic links/));
    await assert.rejects(store.stat('MixedCase.TXT'), bad(/MixedCase\.TXT: data at byte \d+ \(5 bytes\) lies past the end of the image/));
    await assert.rejects(store.open('mixedcase.txt'), bad(/past the end/));
    // The rest of the image still serves; the broken entry is left out of the listing.
    const names = (await store.list('/')).map((e) => e.name);
    assert.ok(!names.includes('MixedCase.TXT') && names.includes('boot'));
    assert.ok((await readStream(await store.createReadStream('boot/syslinux/syslinux.cfg'))).toString().startsWith('DEFAULT'));
    await store.close();
  });

  it('reports huge directory sizes without allocating them', async () => {
    const store = variant((img) => setBoth32(img, recordNamed(img, 'many').at + 10, 0xfffff800));
    await assert.rejects(store.stat('many/file-001.bin'), bad(/many: data at byte \d+ \(4294965248 bytes\) lies past the end/));
    await store.close();
  });

  it('reports a multi-extent chain that ends early', async () => {
    const store = variant((img) => {
      const rec = recordNamed(img, 'MixedCase.TXT');
      img[rec.at + 25] |= 0x80; // says "more extents follow", but the next record is another file
    });
    await assert.rejects(store.list('/'), bad(/multi-extent file at byte \d+ is missing its continuation/));
    await store.close();
    // The same on the last record of a directory: nothing follows at all.
    const last = variant((img) => {
      const many = recordNamed(img, 'many');
      const recs = records(img, img.readUInt32LE(many.at + 2), img.readUInt32LE(many.at + 10));
      img[recs.at(-1)!.at + 25] |= 0x80;
    });
    await assert.rejects(last.list('many'), bad(/multi-extent file at byte \d+ is missing its continuation/));
    await last.close();
  });
});
