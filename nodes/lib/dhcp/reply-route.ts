/**
 * Where a server reply goes (RFC 2131 §4.1, "the server sends … to"), decided in one place so
 * that the proxy and the full server cannot disagree — the approach of danderson/netboot's
 * dhcp4/conn.go.
 *
 *  1. giaddr set: to the relay agent, port 67 (server port); for a NAK the broadcast bit is set
 *     so the relay broadcasts it on the client's segment.
 *  2. NAK without relay: always broadcast (the client's address is the thing being refused).
 *  3. ciaddr set (renewing, rebinding, INFORM): unicast to ciaddr, port 68.
 *  4. broadcast bit set, or nothing to unicast to: broadcast 255.255.255.255:68.
 *  5. otherwise RFC 2131 says unicast to chaddr/yiaddr. That needs an ARP entry added by hand
 *     (dnsmasq uses SIOCSARP), which Node cannot do; the RFC allows broadcasting instead when
 *     unicast is not possible, so we broadcast.
 *
 * A request that reached us on the PXE boot-server port (4011) is answered to the address and
 * port it came from (PXE 2.1 §2.2.6: the client has an address by then).
 */
import type { DhcpPacket } from './codec';
import { FLAG_BROADCAST } from './codec';
import { MessageType } from './options';

export const SERVER_PORT = 67;
export const CLIENT_PORT = 68;
export const PXE_PORT = 4011;
export const BROADCAST = '255.255.255.255';
const ZERO = '0.0.0.0';

export interface ReplyRoute {
  address: string;
  port: number;
  broadcast: boolean;
  /** Why this destination, for logs and tests. */
  reason: 'relay' | 'pxe-source' | 'nak-broadcast' | 'ciaddr' | 'broadcast-flag' | 'no-unicast';
}

export interface RequestSource {
  address: string;
  port: number;
  /** The local port the request arrived on (67 or 4011). */
  localPort: number;
}

/**
 * Decides the destination of `reply` (already built from `request`). Also sets the reply's
 * broadcast flag when a relay must broadcast it (NAK through a relay).
 */
export function replyRoute(request: DhcpPacket, reply: DhcpPacket, replyType: number, src: RequestSource): ReplyRoute {
  if (request.giaddr !== ZERO) {
    if (replyType === MessageType.NAK) reply.flags |= FLAG_BROADCAST;
    return { address: request.giaddr, port: SERVER_PORT, broadcast: false, reason: 'relay' };
  }
  if (src.localPort === PXE_PORT && src.address !== ZERO) {
    return { address: src.address, port: src.port, broadcast: false, reason: 'pxe-source' };
  }
  if (replyType === MessageType.NAK) {
    return { address: BROADCAST, port: CLIENT_PORT, broadcast: true, reason: 'nak-broadcast' };
  }
  if (request.ciaddr !== ZERO) {
    return { address: request.ciaddr, port: CLIENT_PORT, broadcast: false, reason: 'ciaddr' };
  }
  if (request.flags & FLAG_BROADCAST) {
    return { address: BROADCAST, port: CLIENT_PORT, broadcast: true, reason: 'broadcast-flag' };
  }
  return { address: BROADCAST, port: CLIENT_PORT, broadcast: true, reason: 'no-unicast' };
}
