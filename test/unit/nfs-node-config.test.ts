import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_EXPORTS, parseExportPaths, parsePort, parsePortmapMode } from '../../nodes/lib/nfs/node-config';

describe('pxe-nfs node settings', () => {
  it('export paths: the defaults when empty, what archiso mounts first', () => {
    assert.deepEqual(parseExportPaths(''), ['/run/archiso/bootmnt', '/']);
    assert.deepEqual(parseExportPaths(undefined), [...DEFAULT_EXPORTS]);
  });

  it('export paths: trims, drops trailing slashes and duplicates', () => {
    assert.deepEqual(parseExportPaths(' /run/archiso/bootmnt/ , /srv/arch,/run/archiso/bootmnt, /'), ['/run/archiso/bootmnt', '/srv/arch', '/']);
    assert.deepEqual(parseExportPaths('//'), ['/']);
  });

  it('export paths: refuses relative paths, dot segments, NUL and too many', () => {
    assert.equal(parseExportPaths('run/archiso'), undefined);
    assert.equal(parseExportPaths('/run/../etc'), undefined);
    assert.equal(parseExportPaths('/run/./x'), undefined);
    assert.equal(parseExportPaths('/a\0b'), undefined);
    assert.equal(parseExportPaths('/' + 'x'.repeat(1024)), undefined);
    assert.equal(parseExportPaths(Array.from({ length: 17 }, (_, i) => `/e${i}`).join(',')), undefined);
  });

  it('ports and portmapper mode', () => {
    assert.equal(parsePort('', 2049), 2049);
    assert.equal(parsePort('20048', 2049), 20048);
    assert.equal(parsePort('0', 2049), undefined);
    assert.equal(parsePort('70000', 2049), undefined);
    assert.equal(parsePort('2049x', 2049), undefined);
    assert.equal(parsePortmapMode('rpcbind'), 'rpcbind');
    assert.equal(parsePortmapMode('off'), 'off');
    assert.equal(parsePortmapMode('bogus'), 'auto');
    assert.equal(parsePortmapMode(undefined), 'auto');
  });
});
