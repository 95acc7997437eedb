/**
 * Rogue-server guard: before a full DHCP server starts answering, it asks the segment whether
 * another DHCP server is already there (two servers handing out addresses on one segment is the
 * classic way to break a home network). A DISCOVER with the broadcast flag goes out of the chosen
 * interface; any OFFER with our transaction id within the wait means someone else serves.
 */
import * as crypto from 'node:crypto';
import * as dgram from 'node:dgram';
import { createPacket, decode, encode, FLAG_BROADCAST } from './codec';
import { getMessageType, getServerId, MessageType, u8 } from './options';
import { BROADCAST, CLIENT_PORT, SERVER_PORT } from './reply-route';
import type { DhcpTransport } from './message-loop';

/**
 * How long to listen for offers. Servers check an address before offering it (busybox udhcpd
 * ARP-pings for 2 s, ISC dhcpd pings for 1 s, dnsmasq pings too), so a 1 s wait misses them.
 */
export const DEFAULT_PROBE_MS = 3000;

export interface ProbeAnswer {
  /** Option 54 of the offer, or its source address. */
  server: string;
  offered: string;
}

export interface ProbeOptions {
  /** The interface's MAC (chaddr of the probe). */
  mac: string;
  /** Our own address: its answers are not "another server". */
  ownAddress: string;
  timeoutMs?: number;
}

function bindClientPort(): Promise<dgram.Socket | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    s.once('error', () => {
      s.close();
      resolve(null);
    });
    s.bind({ address: '0.0.0.0', port: CLIENT_PORT }, () => resolve(s));
  });
}

/**
 * Sends a probe DISCOVER through `transport` (so it leaves by the chosen interface) and collects
 * offers on port 68. Returns null if port 68 could not be bound (the probe could not run).
 */
export async function probeForServers(transport: DhcpTransport, opts: ProbeOptions): Promise<ProbeAnswer[] | null> {
  const rx = await bindClientPort();
  if (!rx) return null;
  const xid = crypto.randomBytes(4).readUInt32BE(0);
  const found = new Map<string, ProbeAnswer>();
  rx.on('message', (buf, rinfo) => {
    try {
      const p = decode(buf);
      if (p.op !== 2 || p.xid !== xid || getMessageType(p.options) !== MessageType.OFFER) return;
      const server = getServerId(p.options) ?? rinfo.address;
      if (server === opts.ownAddress) return;
      found.set(server, { server, offered: p.yiaddr });
    } catch {
      // not a DHCP reply
    }
  });
  try {
    const mac = Buffer.from(opts.mac.replace(/[^0-9a-fA-F]/g, ''), 'hex');
    const probe = createPacket({ op: 1, xid, flags: FLAG_BROADCAST, chaddr: Buffer.concat([mac, Buffer.alloc(16 - mac.length)]) });
    probe.options.set(53, u8(MessageType.DISCOVER));
    probe.options.set(55, Buffer.from([1, 3, 6, 54]));
    await transport.send(encode(probe), BROADCAST, SERVER_PORT, SERVER_PORT);
    await new Promise((r) => setTimeout(r, opts.timeoutMs ?? DEFAULT_PROBE_MS));
  } finally {
    await new Promise<void>((r) => rx.close(() => r()));
  }
  return [...found.values()];
}
