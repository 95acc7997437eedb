import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NatError } from '../../nodes/lib/nat/errors';
import { describePlan, makePlan, ownerTag, parseInterface, parsePort, parseRuleComment, parseSubnet, ruleComment } from '../../nodes/lib/nat/plan';

const einval = (re: RegExp) => (err: unknown) => err instanceof NatError && err.code === 'EINVAL' && re.test(err.message);

describe('nat plan: subnet', () => {
  it('accepts network addresses with a prefix', () => {
    assert.deepEqual(parseSubnet('192.168.77.0/24'), { network: '192.168.77.0', prefix: 24, cidr: '192.168.77.0/24' });
    assert.deepEqual(parseSubnet(' 10.0.0.0/8 '), { network: '10.0.0.0', prefix: 8, cidr: '10.0.0.0/8' });
    assert.equal(parseSubnet('10.1.2.3/32').cidr, '10.1.2.3/32');
    assert.equal(parseSubnet('172.16.4.0/22').cidr, '172.16.4.0/22');
  });
  it('refuses host addresses and suggests the network', () => {
    assert.throws(() => parseSubnet('192.168.77.5/24'), einval(/host bits set: did you mean 192\.168\.77\.0\/24/));
    assert.throws(() => parseSubnet('172.16.5.0/22'), einval(/172\.16\.4\.0\/22/));
  });
  it('refuses what is not a subnet', () => {
    for (const bad of ['', '192.168.77.0', '192.168.77.0/33', '192.168.77.0/0', '256.1.1.0/24', '1.2.3/24', '01.2.3.0/24', 'a.b.c.d/8', '1.2.3.0/24;x', '::1/128']) {
      assert.throws(() => parseSubnet(bad), einval(/subnet/), bad);
    }
    assert.throws(() => parseSubnet(undefined), einval(/required/));
    assert.throws(() => parseSubnet(42), einval(/required/));
  });
});

describe('nat plan: interface, ports, flags', () => {
  it('interface names', () => {
    assert.equal(parseInterface('eth0'), 'eth0');
    assert.equal(parseInterface(' wlan0 '), 'wlan0');
    assert.equal(parseInterface(''), null);
    assert.equal(parseInterface(undefined), null);
    for (const bad of ['eth0"; drop', 'a b', 'x/y', 'averyveryverylongname', '..', 'et h']) assert.throws(() => parseInterface(bad), einval(/interface/), bad);
    assert.throws(() => parseInterface(3), einval(/interface/));
  });
  it('ports', () => {
    assert.equal(parsePort(80, 'p'), 80);
    assert.equal(parsePort('8080', 'p'), 8080);
    for (const bad of [0, 65536, 1.5, '', 'x', null, -1]) assert.throws(() => parsePort(bad, 'p'), einval(/port/), String(bad));
  });
  it('makePlan applies defaults and validates everything', () => {
    const p = makePlan('abc123', { subnet: '192.168.77.0/24', outInterface: 'eth0' });
    assert.deepEqual(p, { owner: 'abc123', subnet: parseSubnet('192.168.77.0/24'), outInterface: 'eth0', redirect: null, forward: true });
    const r = makePlan('abc123', { subnet: '192.168.77.0/24', redirect: 'true', redirectTo: '8080', forward: false });
    assert.deepEqual(r.redirect, { fromPort: 80, toPort: 8080 });
    assert.equal(r.forward, false);
    assert.throws(() => makePlan('abc123', { subnet: '192.168.77.0/24', redirect: true }), einval(/redirect to port/));
    assert.throws(() => makePlan('abc123', { subnet: '192.168.77.0/24', redirect: true, redirectFrom: 80, redirectTo: 80 }), einval(/same port/));
    assert.throws(() => makePlan('bad id!', { subnet: '192.168.77.0/24' }), einval(/owner/));
    assert.throws(() => makePlan('abc', { subnet: '192.168.77.0/24', forward: 'yes' }), einval(/true or false/));
  });
  it('describes the plan', () => {
    const lines = describePlan(makePlan('a', { subnet: '10.5.0.0/16', redirect: true, redirectTo: 8080 }));
    assert.deepEqual(lines, [
      'masquerade 10.5.0.0/16 leaving via any interface',
      'redirect tcp port 80 to 8080 for 10.5.0.0/16 (local addresses only)',
      'net.ipv4.ip_forward = 1',
    ]);
  });
});

describe('nat plan: comments and tags', () => {
  it('round-trips the ownership comment with the recorded ip_forward', () => {
    for (const prior of ['0', '1', null] as const) {
      const c = ruleComment('f00d.beef', prior);
      assert.doesNotMatch(c, /\s/);
      assert.deepEqual(parseRuleComment(c), { owner: 'f00d.beef', priorForward: prior, mark: null });
      assert.deepEqual(parseRuleComment(`"${c}"`), { owner: 'f00d.beef', priorForward: prior, mark: null });
      const mark = { pid: 4242, start: '123456789', pidns: '4026531836' };
      const marked = ruleComment('f00d.beef', prior, mark);
      assert.equal(marked, `pxe-flow:nat:f00d.beef:ipfwd=${prior ?? '-'}:by=4242.123456789.4026531836`);
      assert.deepEqual(parseRuleComment(marked), { owner: 'f00d.beef', priorForward: prior, mark });
    }
    // The longest owner with the longest mark fits nft's 128-character comments.
    assert.ok(ruleComment('x'.repeat(64), '0', { pid: 4194304, start: '9'.repeat(12), pidns: '4'.repeat(10) }).length <= 128);
    assert.equal(parseRuleComment('user rule'), null);
    assert.equal(parseRuleComment('pxe-flow:nat:x:ipfwd=2'), null);
    assert.equal(parseRuleComment('pxe-flow:nat:x:ipfwd=1:by=12'), null);
  });
  it('tags are short, stable and distinct', () => {
    assert.equal(ownerTag('abc'), ownerTag('abc'));
    assert.notEqual(ownerTag('abc'), ownerTag('abd'));
    assert.match(ownerTag('abc'), /^[0-9a-f]{8}$/);
  });
});
