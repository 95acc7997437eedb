/**
 * The three archiso-shaped fixture images (test/fixtures/build.sh) read through the ISO store:
 * the detector finds each layout and proposes the DHCP settings that the fixtures' own
 * end-to-end boots use, and the root filesystem reads back with the manifest's checksum.
 */
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
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
