import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bindErrorMessage, nftRuleset, nftTableName } from '../../nodes/lib/dhcp/socket';

describe('DHCP socket helpers', () => {
  it('names one nftables table per interface, with only identifier characters', () => {
    assert.equal(nftTableName('eth0'), 'pxeflow_dhcp_eth0');
    assert.equal(nftTableName('br-lan.10'), 'pxeflow_dhcp_br_2dlan_2e10');
    assert.notEqual(nftTableName('a-b'), nftTableName('a.b'));
  });

  it('rewrites only port 67 of the chosen interface, in the input hook, replacing a stale table', () => {
    const r = nftRuleset('enp1s0', 40123);
    const lines = r.split('\n');
    // Create-then-delete makes the script idempotent when a crash left the table behind.
    assert.equal(lines[0], 'table ip pxeflow_dhcp_enp1s0 {}');
    assert.equal(lines[1], 'delete table ip pxeflow_dhcp_enp1s0');
    assert.match(r, /type filter hook input priority 10; policy accept;/);
    assert.match(r, /iifname "enp1s0" udp dport 67 udp dport set 40123/);
    assert.doesNotMatch(r, /prerouting/);
  });

  it('explains bind failures with the fix', () => {
    const err = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });
    assert.match(bindErrorMessage(err('EACCES'), '0.0.0.0:67'), /setcap cap_net_bind_service=\+ep/);
    assert.match(bindErrorMessage(err('EADDRINUSE'), '0.0.0.0:67'), /in use/);
    assert.match(bindErrorMessage(err('EADDRNOTAVAIL'), '10.0.0.1:67'), /not on this machine/);
  });
});
