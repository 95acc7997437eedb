import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_PATH_LENGTH, normalizePath } from '../../nodes/lib/store/path';
import { isStoreError } from '../../nodes/lib/store/types';

describe('store path rules', () => {
  it('normalises what real clients send', () => {
    assert.equal(normalizePath('/arch/boot/x86_64/vmlinuz-linux'), 'arch/boot/x86_64/vmlinuz-linux');
    assert.equal(normalizePath('arch\\boot\\syslinux\\lpxelinux.0'), 'arch/boot/syslinux/lpxelinux.0');
    assert.equal(normalizePath('/arch//boot/syslinux/ldlinux.c32'), 'arch/boot/syslinux/ldlinux.c32');
    assert.equal(normalizePath('./boot/./syslinux/'), 'boot/syslinux');
    assert.equal(normalizePath('boot/x/../syslinux'), 'boot/syslinux');
    assert.equal(normalizePath('/'), '');
    assert.equal(normalizePath(''), '');
  });

  it('refuses .. that leaves the root, NUL bytes and over-long paths', () => {
    for (const bad of ['..', '../etc/passwd', '/a/../../etc', 'a\\..\\..\\x', 'boot\0.cfg', 'x'.repeat(MAX_PATH_LENGTH + 1), 'a/' + 'y'.repeat(256)]) {
      assert.throws(() => normalizePath(bad), (e: unknown) => isStoreError(e, 'EINVAL'), JSON.stringify(bad.slice(0, 40)));
    }
  });
});
