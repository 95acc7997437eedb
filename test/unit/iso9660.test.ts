import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stripVersion, ucs2be } from '../../nodes/lib/iso9660/bytes';
import { readDescriptors } from '../../nodes/lib/iso9660/descriptors';
import { parseDirectory } from '../../nodes/lib/iso9660/records';
import { bufferSource } from '../../nodes/lib/iso9660/source';
import { collectSusp, detectSusp, interpretRockRidge, parseSuspArea, S_IFLNK } from '../../nodes/lib/iso9660/susp';
import { isStoreError } from '../../nodes/lib/store/types';

/** One SUSP entry: signature, length, version 1, data. */
function entry(sig: string, data: number[] | Buffer): Buffer {
  const d = Buffer.from(data);
  return Buffer.concat([Buffer.from(sig, 'latin1'), Buffer.from([4 + d.length, 1]), d]);
}
const both32 = (v: number) => {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(v, 0);
  b.writeUInt32BE(v, 4);
  return b;
};
const nm = (flags: number, text: string) => entry('NM', Buffer.concat([Buffer.from([flags]), Buffer.from(text)]));
/** SL component records: [flags, text]. */
const sl = (flags: number, comps: [number, string][]) =>
  entry('SL', Buffer.concat([Buffer.from([flags]), ...comps.map(([f, t]) => Buffer.concat([Buffer.from([f, Buffer.byteLength(t)]), Buffer.from(t)]))]));

describe('ISO 9660 names', () => {
  it('strips versions and the trailing dot of level 1-3 names', () => {
    assert.equal(stripVersion('SYSLINUX.CFG;1'), 'SYSLINUX.CFG');
    assert.equal(stripVersion('README.;1'), 'README');
    assert.equal(stripVersion('DIR'), 'DIR');
    assert.equal(stripVersion('A.B.C;12'), 'A.B.C');
  });

  it('decodes Joliet UCS-2 big-endian, surrogate pairs included', () => {
    const be = (s: string) => Buffer.from(s, 'utf16le').swap16();
    assert.equal(ucs2be(be('vmlinuz-linux;1')), 'vmlinuz-linux;1');
    assert.equal(ucs2be(be('Grüße 😀')), 'Grüße 😀');
    assert.equal(ucs2be(Buffer.concat([be('ab'), Buffer.from([0x00])])), 'ab'); // odd byte dropped
  });
});

describe('volume descriptors', () => {
  function image(svdEscape: string | undefined): Buffer {
    const img = Buffer.alloc(20 * 2048);
    const vd = (i: number, type: number) => {
      const at = (16 + i) * 2048;
      img[at] = type;
      img.write('CD001', at + 1, 'latin1');
      img[at + 6] = 1;
      img.writeUInt16LE(2048, at + 128);
      img.writeUInt32LE(20, at + 80);
      return at;
    };
    img.write('PRIMARY', vd(0, 1) + 40, 'latin1');
    if (svdEscape) {
      const at = vd(1, 2);
      img.write(svdEscape, at + 88, 'latin1');
      Buffer.from('JOLIET', 'utf16le').swap16().copy(img, at + 40);
    }
    vd(2, 255);
    return img;
  }

  it('recognises Joliet by its escape sequences %/@, %/C and %/E', async () => {
    for (const esc of ['%/@', '%/C', '%/E']) {
      const set = await readDescriptors(bufferSource(image(esc)));
      assert.equal(set.primary.volumeId, 'PRIMARY');
      assert.equal(set.joliet?.volumeId, 'JOLIET', esc);
    }
    assert.equal((await readDescriptors(bufferSource(image('%/F')))).joliet, undefined);
    assert.equal((await readDescriptors(bufferSource(image(undefined)))).joliet, undefined);
  });
});

describe('directory records', () => {
  it('skips zero padding to the next sector and refuses lengths past the extent', () => {
    const rec = (id: string) => {
      const r = Buffer.alloc(34 + (id.length % 2 === 0 ? id.length : id.length - 1) + 0);
      r[0] = r.length;
      r[32] = id.length;
      r.write(id, 33, 'latin1');
      return r;
    };
    const dir = Buffer.alloc(4096);
    rec('A;1').copy(dir, 0);
    rec('B;1').copy(dir, 2048);
    assert.deepEqual(
      parseDirectory(dir, 0).map((r) => r.id.toString()),
      ['A;1', 'B;1'],
    );
    dir[2048] = 200;
    dir[2048 + 32] = 3;
    assert.equal(parseDirectory(dir, 0).length, 2); // fits inside the sector
    assert.throws(() => parseDirectory(dir.subarray(0, 2100), 0), (e) => isStoreError(e, 'EBADIMAGE') && /runs past/.test(e.message));
  });
});

describe('SUSP and Rock Ridge', () => {
  it('finds SP and its skip length only at the start of the area', () => {
    assert.equal(detectSusp(entry('SP', [0xbe, 0xef, 3])), 3);
    assert.equal(detectSusp(entry('SP', [0xbe, 0xee, 0])), undefined);
    assert.equal(detectSusp(Buffer.concat([entry('PX', Buffer.alloc(8)), entry('SP', [0xbe, 0xef, 0])])), undefined);
  });

  it('joins NM parts flagged CONTINUE, and reads PX modes', () => {
    const mode = both32(S_IFLNK | 0o777);
    const rr = interpretRockRidge(parseSuspArea(Buffer.concat([nm(1, 'very-long-'), nm(1, 'file-'), nm(0, 'name.txt'), entry('PX', Buffer.concat([mode, Buffer.alloc(24)]))]), 0).entries, 0);
    assert.equal(rr.name, 'very-long-file-name.txt');
    assert.equal(rr.mode, S_IFLNK | 0o777);
  });

  it('parses SL components: ROOT, PARENT, CURRENT, and CONTINUE within and across entries', () => {
    const abs = interpretRockRidge(parseSuspArea(sl(0, [[0x08, ''], [0, 'arch'], [0, 'boot']]), 0).entries, 0).symlink;
    assert.deepEqual(abs, { absolute: true, parts: ['arch', 'boot'] });
    const rel = interpretRockRidge(parseSuspArea(sl(0, [[0x04, ''], [0x02, ''], [0x01, 'sys'], [0, 'linux']]), 0).entries, 0).symlink;
    assert.deepEqual(rel, { absolute: false, parts: ['..', '.', 'syslinux'] });
    // A component split over two SL entries (the first flagged CONTINUE).
    const split = interpretRockRidge(parseSuspArea(Buffer.concat([sl(1, [[0, 'a'], [1, 'lo']]), sl(0, [[0, 'ng']])]), 0).entries, 0).symlink;
    assert.deepEqual(split, { absolute: false, parts: ['a', 'long'] });
    assert.throws(() => interpretRockRidge(parseSuspArea(sl(0, [[0x20, '']]), 0).entries, 0), (e) => isStoreError(e, 'EBADIMAGE'));
    const overrun = entry('SL', [0, 0, 9, 0x41]);
    assert.throws(() => interpretRockRidge(parseSuspArea(overrun, 0).entries, 0), (e) => isStoreError(e, 'EBADIMAGE') && /overruns/.test(e.message));
  });

  it('follows CE continuation areas, and stops loops and oversized areas', async () => {
    const img = Buffer.alloc(8 * 2048);
    const ce = (block: number, offset: number, length: number) => entry('CE', Buffer.concat([both32(block), both32(offset), both32(length)]));
    const more = Buffer.concat([nm(0, 'continued'), entry('ST', [])]);
    more.copy(img, 3 * 2048 + 100);
    const first = Buffer.concat([nm(1, 'name-'), ce(3, 100, more.length)]);
    const entries = await collectSusp(bufferSource(img), first, 0, 0);
    assert.equal(interpretRockRidge(entries, 0).name, 'name-continued');

    ce(5, 0, 28).copy(img, 5 * 2048); // points at itself
    await assert.rejects(collectSusp(bufferSource(img), ce(5, 0, 28), 0, 0), (e) => isStoreError(e, 'EBADIMAGE') && /loop/.test(e.message));
    await assert.rejects(collectSusp(bufferSource(img), ce(1, 0, 1 << 30), 0, 0), (e) => isStoreError(e, 'EBADIMAGE') && /implausible/.test(e.message));
    await assert.rejects(collectSusp(bufferSource(img), ce(7, 0, 4096), 0, 0), (e) => isStoreError(e, 'EBADIMAGE') && /past the end/.test(e.message));
    assert.throws(() => parseSuspArea(Buffer.from([0x4e, 0x4d, 60, 1, 0]), 0), (e) => isStoreError(e, 'EBADIMAGE'));
  });
});
