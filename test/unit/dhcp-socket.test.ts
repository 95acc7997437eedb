import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { describe, it } from 'node:test';
import { bindErrorMessage, DhcpSockets, nftRuleset, nftTableName, type SocketSystem } from '../../nodes/lib/dhcp/socket';

/**
 * A system without privileges or nft: every bind is a loopback socket on an ephemeral port (no
 * DHCP port, no real interface), except the ports in `busy`, which fail as if in use; nft scripts
 * are recorded.
 */
function fakeSystem(busy: number[], nftFails = false) {
  const scripts: string[] = [];
  const sockets: dgram.Socket[] = [];
  const closed = new Set<dgram.Socket>();
  const sys: SocketSystem = {
    bind: (address, port) =>
      new Promise((resolve, reject) => {
        if (busy.includes(port)) {
          reject(new Error(bindErrorMessage(Object.assign(new Error('bind EADDRINUSE'), { code: 'EADDRINUSE' }), `${address}:${port}`)));
          return;
        }
        const s = dgram.createSocket('udp4');
        s.on('close', () => closed.add(s));
        sockets.push(s);
        s.bind(0, '127.0.0.1', () => resolve(s));
      }),
    nftBinary: () => '/usr/sbin/nft',
    runNft: async (_nft, script) => {
      scripts.push(script);
      if (nftFails) throw new Error('nft: Operation not permitted');
    },
  };
  return { sys, scripts, sockets, closed };
}

const ADDR = { iface: 'eth9', address: '10.40.0.1', prefix: 24, mac: '52:54:00:00:00:01' };

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

  it('removes the nftables table it applied when a later step of opening fails (port 4011 in use)', async () => {
    const f = fakeSystem([4011]);
    await assert.rejects(DhcpSockets.open({ iface: 'eth9', pxePort: true, isolation: 'auto', address: ADDR }, f.sys), /4011.*in use/);
    assert.equal(f.scripts.length, 2);
    assert.match(f.scripts[0]!, /udp dport set \d+/);
    assert.equal(f.scripts[1], 'delete table ip pxeflow_dhcp_eth9\n', 'no table left diverting port 67');
    assert.equal(f.sockets.length, 2);
    assert.equal(f.closed.size, 2, 'sockets closed');
  });

  it('leaves nft alone when opening fails without the table applied, and removes it on close', async () => {
    // nft refused: filter isolation, then 4011 fails: nothing to delete.
    const refused = fakeSystem([4011], true);
    await assert.rejects(DhcpSockets.open({ iface: 'eth9', pxePort: true, isolation: 'auto', address: ADDR }, refused.sys), /in use/);
    assert.equal(refused.scripts.length, 1);
    // Opened fine: the table stays until close().
    const ok = fakeSystem([]);
    const socks = await DhcpSockets.open({ iface: 'eth9', pxePort: true, isolation: 'auto', address: ADDR }, ok.sys);
    assert.equal(socks.isolation, 'nftables');
    assert.equal(ok.scripts.length, 1);
    await socks.close();
    assert.deepEqual(ok.scripts.slice(1), ['delete table ip pxeflow_dhcp_eth9\n']);
    assert.equal(ok.closed.size, ok.sockets.length);
  });
});
