import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createPacket, FLAG_BROADCAST } from '../../nodes/lib/dhcp/codec';
import { MessageType } from '../../nodes/lib/dhcp/options';
import { replyRoute } from '../../nodes/lib/dhcp/reply-route';

const bcastSrc = { address: '0.0.0.0', port: 68, localPort: 67 };

describe('DHCP reply route (RFC 2131 §4.1)', () => {
  it('sends to the relay on port 67 when giaddr is set, and makes the relay broadcast NAKs', () => {
    const req = createPacket({ op: 1, giaddr: '10.9.0.1', ciaddr: '10.9.0.50' });
    const reply = createPacket();
    assert.deepEqual(replyRoute(req, reply, MessageType.OFFER, { address: '10.9.0.1', port: 67, localPort: 67 }), {
      address: '10.9.0.1',
      port: 67,
      broadcast: false,
      reason: 'relay',
    });
    assert.equal(reply.flags & FLAG_BROADCAST, 0);
    replyRoute(req, reply, MessageType.NAK, bcastSrc);
    assert.equal(reply.flags & FLAG_BROADCAST, FLAG_BROADCAST);
  });

  it('broadcasts NAKs without a relay, even to a client with ciaddr', () => {
    const req = createPacket({ op: 1, ciaddr: '10.0.0.5' });
    assert.equal(replyRoute(req, createPacket(), MessageType.NAK, bcastSrc).address, '255.255.255.255');
  });

  it('unicasts to ciaddr:68 for renewals and INFORM', () => {
    const req = createPacket({ op: 1, ciaddr: '10.0.0.5', flags: FLAG_BROADCAST });
    const r = replyRoute(req, createPacket(), MessageType.ACK, { address: '10.0.0.5', port: 68, localPort: 67 });
    assert.deepEqual([r.address, r.port, r.reason], ['10.0.0.5', 68, 'ciaddr']);
  });

  it('broadcasts when the client asks for it or has no address to unicast to', () => {
    const flagged = createPacket({ op: 1, flags: FLAG_BROADCAST });
    assert.equal(replyRoute(flagged, createPacket(), MessageType.OFFER, bcastSrc).reason, 'broadcast-flag');
    const plain = createPacket({ op: 1 });
    const r = replyRoute(plain, createPacket({ yiaddr: '10.0.0.7' }), MessageType.OFFER, bcastSrc);
    assert.deepEqual([r.address, r.port, r.broadcast, r.reason], ['255.255.255.255', 68, true, 'no-unicast']);
  });

  it('answers a port-4011 PXE request to where it came from', () => {
    const req = createPacket({ op: 1, ciaddr: '192.168.1.44' });
    const r = replyRoute(req, createPacket(), MessageType.ACK, { address: '192.168.1.44', port: 68, localPort: 4011 });
    assert.deepEqual([r.address, r.port, r.reason], ['192.168.1.44', 68, 'pxe-source']);
  });
});
