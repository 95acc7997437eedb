import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BootRules } from '../../nodes/lib/dhcp/boot-rules';
import { describeClient } from '../../nodes/lib/dhcp/client';
import { decode, encode } from '../../nodes/lib/dhcp/codec';
import { FullResponder } from '../../nodes/lib/dhcp/full';
import { MemoryLeaseLog } from '../../nodes/lib/dhcp/lease-store';
import { MessageType as T } from '../../nodes/lib/dhcp/options';
import { AddressPool } from '../../nodes/lib/dhcp/address-pool';
import { DhcpMessageLoop } from '../../nodes/lib/dhcp/message-loop';
import { FakeTransport, request } from './dhcp-helpers';

const MAC = '52:54:00:00:0e:01';

/** A request from MAC with a client identifier of `len` bytes (type 0, then `fill`). */
function withClientId(len: number, fill = 0x41, type: number = T.DISCOVER) {
  const p = decode(request({ type, mac: MAC }));
  p.options.set(61, Buffer.concat([Buffer.from([0]), Buffer.alloc(len - 1, fill)]));
  return p;
}

describe('DHCP client identity', () => {
  it('uses a client identifier of up to 255 bytes as the lease key', () => {
    for (const len of [2, 7, 255]) {
      const c = describeClient(withClientId(len));
      assert.equal(c.key, `id:${withClientId(len).options.get(61)!.toString('hex')}`);
    }
  });

  it('ignores a longer (RFC 3396-concatenated) client identifier and falls back to the MAC', () => {
    for (const len of [256, 1000, 60_000]) {
      const c = describeClient(withClientId(len));
      assert.equal(c.key, `hw:1:${MAC}`, `${len}-byte client-id`);
    }
  });

  it('a client sending ever-changing oversized client identifiers holds one offer, not one per identifier', async () => {
    const log = new MemoryLeaseLog();
    const pool = new AddressPool([{ network: '10.40.0.0/24', rangeStart: '10.40.0.100', rangeEnd: '10.40.0.150' }], [], log.state, { serverIps: ['10.40.0.1'] });
    const responder = new FullResponder({ serverIp: '10.40.0.1', pool, log, rules: new BootRules([]), leaseTime: 600, authoritative: true });
    const t = new FakeTransport();
    const server = new DhcpMessageLoop(t, responder);
    server.on('error', (e) => assert.fail(e));
    for (let i = 0; i < 3; i++) {
      const p = withClientId(600, 0x41 + i);
      p.xid = i;
      t.deliver({ buf: encode(p, { maxMessageSize: 1500 }) });
    }
    const offers = await t.waitSent(3);
    assert.deepEqual(new Set(offers.map((o) => o.packet.yiaddr)), new Set(['10.40.0.100']));
  });
});
