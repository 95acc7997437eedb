import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { chooseBackend, findBinary, type Tools } from '../../nodes/lib/nat/detect';
import { NatError } from '../../nodes/lib/nat/errors';
import { createRunner, failure, runChecked, validatePrefix } from '../../nodes/lib/nat/exec';
import { commandForwarding, procForwarding } from '../../nodes/lib/nat/sysctl';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-nat-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('nat exec', () => {
  it('runs without a shell: metacharacters are plain arguments', async () => {
    const r = await createRunner().run('/bin/echo', ['$(id)', ';', '*']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, '$(id) ; *\n');
  });
  it('feeds stdin and puts the prefix in front', async () => {
    const r = await createRunner(['/usr/bin/env', 'PXE_X=1']).run('/bin/sh', ['-c', 'cat; echo $PXE_X'], { input: 'hello\n' });
    assert.equal(r.stdout, 'hello\n1\n');
  });
  it('times out', async () => {
    const t0 = Date.now();
    await assert.rejects(createRunner().run('/bin/sleep', ['5'], { timeoutMs: 200 }), (e: NatError) => e.code === 'ETIMEDOUT');
    assert.ok(Date.now() - t0 < 3000);
  });
  it('reports a missing binary', async () => {
    await assert.rejects(createRunner().run('/nonexistent/nft', []), (e: NatError) => e.code === 'ENOENT' && /not found/.test(e.message));
  });
  it('classifies failures; permission problems carry the fix', async () => {
    const perm = failure('nft', { code: 1, signal: null, stdout: '', stderr: 'Error: Could not process rule: Operation not permitted\n' });
    assert.equal(perm.code, 'EPERM');
    assert.match(perm.message, /CAP_NET_ADMIN/);
    const legacy = failure('iptables-legacy-save', { code: 3, signal: null, stdout: '', stderr: "iptables-legacy-save v1.8.9 (legacy): Cannot initialize: Permission denied (you must be root)\n" });
    assert.equal(legacy.code, 'EPERM');
    const other = failure('nft', { code: 1, signal: null, stdout: '', stderr: 'Error: syntax error\n' });
    assert.equal(other.code, 'EFAIL');
    assert.match(other.message, /syntax error/);
    await assert.rejects(runChecked(createRunner(), 'false', '/bin/false', []), (e: NatError) => e.code === 'EFAIL');
  });
  it('validates the prefix from settings', () => {
    assert.deepEqual(validatePrefix(undefined), []);
    assert.deepEqual(validatePrefix(['/usr/bin/sudo', '-n']), ['/usr/bin/sudo', '-n']);
    assert.throws(() => validatePrefix('sudo'), /array of strings/);
    assert.throws(() => validatePrefix(['sudo']), /absolute path/);
    assert.throws(() => validatePrefix(['/usr/bin/sudo', '']), /array of strings/);
  });
});

describe('nat ip_forward access (on a stand-in file)', () => {
  it('direct and through commands', async () => {
    const f = path.join(tmp, 'ip_forward');
    fs.writeFileSync(f, '0\n');
    const direct = procForwarding(f);
    assert.equal(await direct.read(), '0');
    await direct.write('1');
    assert.equal(fs.readFileSync(f, 'utf8'), '1\n');
    const viaCmd = commandForwarding(createRunner(), '/bin/cat', '/usr/bin/tee', f);
    assert.equal(await viaCmd.read(), '1');
    await viaCmd.write('0');
    assert.equal(await direct.read(), '0');
    fs.writeFileSync(f, 'junk\n');
    await assert.rejects(direct.read(), /unexpected/);
    await assert.rejects(procForwarding(path.join(tmp, 'nodir', 'x')).write('1'), (e: NatError) => e.code === 'EFAIL');
  });
});

describe('nat backend detection', () => {
  const none: Tools = { nftables: null, 'iptables-nft': null, 'iptables-legacy': null };
  it('finds binaries by absolute path', () => {
    fs.writeFileSync(path.join(tmp, 'nft'), '#!/bin/sh\n', { mode: 0o755 });
    fs.writeFileSync(path.join(tmp, 'notexec'), '', { mode: 0o644 });
    assert.equal(findBinary('nft', [path.join(tmp, 'x'), tmp]), path.join(tmp, 'nft'));
    assert.equal(findBinary('notexec', [tmp]), null);
  });
  it('auto prefers nftables, then iptables-nft, then legacy; a forced one must exist', () => {
    const ipt = { save: '/s', restore: '/r' };
    assert.equal(chooseBackend('auto', { ...none, nftables: '/nft', 'iptables-nft': ipt }), 'nftables');
    assert.equal(chooseBackend('auto', { ...none, 'iptables-nft': ipt, 'iptables-legacy': ipt }), 'iptables-nft');
    assert.equal(chooseBackend('auto', { ...none, 'iptables-legacy': ipt }), 'iptables-legacy');
    assert.equal(chooseBackend('iptables-legacy', { ...none, nftables: '/nft', 'iptables-legacy': ipt }), 'iptables-legacy');
    assert.throws(() => chooseBackend('auto', none), (e: NatError) => e.code === 'ENOENT' && /nftables/.test(e.message));
    assert.throws(() => chooseBackend('iptables-nft', { ...none, nftables: '/nft' }), (e: NatError) => e.code === 'ENOENT' && /iptables/.test(e.message));
  });
});
