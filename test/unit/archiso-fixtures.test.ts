/**
 * The three archiso-shaped fixture images (test/fixtures/build.sh) read through the ISO store:
 * the detector finds each layout and proposes the DHCP settings that the fixtures' own
 * end-to-end boots use, and the root filesystem reads back with the manifest's checksum.
 * Also: the fixtures' syslinux menus are still archiso's files, byte for byte.
 */
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { detectArchiso } from '../../nodes/lib/store/archiso';
import { openStore } from '../../nodes/lib/store/open-store';
import { ensureFixtures, fixturePath } from '../fixtures/fixtures';

describe('archiso fixtures through the ISO store', () => {
  const manifest = ensureFixtures();
  for (const [name, iso] of Object.entries(manifest.isos)) {
    it(`${name}: detects the layout and the boot settings pxelinux needs`, async () => {
      const store = await openStore(fixturePath(iso.file));
      try {
        const info = await detectArchiso(store);
        assert.equal(info.detected, true);
        assert.deepEqual(info.missing, []);
        assert.deepEqual(info.dhcp, { bootFile: iso.dhcp.bootFile, configFile: iso.dhcp.option209, pathPrefix: iso.dhcp.option210 });
        assert.equal(`/${info.files.kernel}`, iso.kernel);
        assert.equal(`/${info.files.airootfs}`, iso.airootfs);
        const hash = crypto.createHash('sha256');
        for await (const chunk of await store.createReadStream(info.files.airootfs!)) hash.update(chunk as Buffer);
        assert.equal(hash.digest('hex'), manifest.marker.sha256);
      } finally {
        await store.close();
      }
    });
  }
});

describe('fixture menus are archiso releng files, unedited', () => {
  const dir = path.join(__dirname, '..', 'fixtures', 'syslinux');
  const rows = fs
    .readFileSync(path.join(dir, 'UPSTREAM'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'))
    .map((l) => l.trim().split(/\s+/));
  /** git's blob id: sha1 of "blob <size>\0" + content. */
  const blobId = (b: Buffer): string => crypto.createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

  it('UPSTREAM lists every file of the three eras and nothing else', () => {
    const listed = rows.map((r) => r[0]).sort();
    const present = ['current', '2021', 'wiki'].flatMap((era) => fs.readdirSync(path.join(dir, era)).map((f) => `${era}/${f}`)).sort();
    assert.deepEqual(listed, present);
  });

  for (const [file, tag, commit, upstreamPath, blob] of rows) {
    it(`${file} = archiso ${tag}:${upstreamPath}`, () => {
      assert.match(commit, /^[0-9a-f]{40}$/);
      assert.equal(blobId(fs.readFileSync(path.join(dir, file))), blob, `${file} differs from archiso's ${upstreamPath} at ${tag} (${commit})`);
    });
  }

  it('no PXE menu of any era sets a default entry or a timeout', () => {
    for (const era of ['current', '2021']) {
      for (const f of ['archiso_head.cfg', 'archiso_pxe.cfg', 'archiso_pxe-linux.cfg', 'archiso_tail.cfg']) {
        assert.doesNotMatch(fs.readFileSync(path.join(dir, era, f), 'utf8'), /^\s*(DEFAULT|TIMEOUT|MENU DEFAULT)\b/im, `${era}/${f}`);
      }
    }
    for (const f of ['archiso_head.cfg', 'archiso_pxe.cfg', 'archiso_tail.cfg']) {
      assert.doesNotMatch(fs.readFileSync(path.join(dir, 'wiki', f), 'utf8'), /^\s*(DEFAULT|TIMEOUT|MENU DEFAULT)\b/im, `wiki/${f}`);
    }
  });
});
