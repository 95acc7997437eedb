/**
 * A scripted DHCP client for the lab (run inside a namespace): sends one request and prints every
 * reply as a JSON line, or sends a bounded stream of hostile packets. Plays a PXE ROM (DISCOVER
 * with option 60/93, REQUEST to port 4011) or a relay agent (giaddr, from port 67).
 *
 * argv[2] JSON: { type: 1|3|8, mac, xid?, arch?, vendorClass?, userClass?, giaddr?, ciaddr?,
 *   requested?, serverId?, to: address, toPort: 67|4011, bindAddress?: '0.0.0.0', bindPort?: 68,
 *   waitMs?: 2000, fuzz?: number }
 */
import * as dgram from 'node:dgram';
import { createPacket, decode, encode, FLAG_BROADCAST } from '../../nodes/lib/dhcp/codec';
import { ipToBuf } from '../../nodes/lib/dhcp/ip';
import { getMessageType, getPxeVendorOptions, getServerId, getString } from '../../nodes/lib/dhcp/options';

interface Args {
  type?: number;
  mac: string;
  xid?: number;
  arch?: number;
  vendorClass?: string;
  userClass?: string;
  giaddr?: string;
  ciaddr?: string;
  requested?: string;
  serverId?: string;
  to: string;
  toPort: number;
  bindAddress?: string;
  bindPort?: number;
  waitMs?: number;
  fuzz?: number;
}

const a = JSON.parse(process.argv[2] ?? '{}') as Args;
const out = (o: unknown): void => {
  process.stdout.write(JSON.stringify(o) + '\n');
};

function buildRequest(): Buffer {
  const mac = Buffer.from(a.mac.replace(/:/g, ''), 'hex');
  const p = createPacket({
    op: 1,
    xid: a.xid ?? Math.floor(Math.random() * 0xffffffff),
    flags: a.ciaddr ? 0 : FLAG_BROADCAST,
    ciaddr: a.ciaddr ?? '0.0.0.0',
    giaddr: a.giaddr ?? '0.0.0.0',
    hops: a.giaddr ? 1 : 0,
    chaddr: Buffer.concat([mac, Buffer.alloc(16 - mac.length)]),
  });
  p.options.set(53, Buffer.from([a.type ?? 1]));
  if (a.requested) p.options.set(50, ipToBuf(a.requested));
  if (a.serverId) p.options.set(54, ipToBuf(a.serverId));
  p.options.set(55, Buffer.from([1, 3, 6, 43, 60, 66, 67, 97, 209, 210]));
  if (a.vendorClass) p.options.set(60, Buffer.from(a.vendorClass));
  if (a.arch !== undefined) {
    p.options.set(93, Buffer.from([a.arch >> 8, a.arch & 255]));
    p.options.set(94, Buffer.from([1, 2, 1]));
    p.options.set(97, Buffer.from([0, ...mac, ...Buffer.alloc(10, 0x42)]));
  }
  if (a.userClass) p.options.set(77, Buffer.from(a.userClass));
  return encode(p);
}

function fuzzPacket(base: Buffer, rnd: () => number): Buffer {
  const kind = rnd() % 4;
  if (kind === 0) return Buffer.from(Array.from({ length: rnd() % 600 }, () => rnd() & 255));
  const b = Buffer.from(base.subarray(0, 236 + (rnd() % (base.length - 235))));
  for (let i = 0; i < 1 + (rnd() % 8); i++) b[rnd() % b.length] = rnd() & 255;
  if (kind === 2 && b.length > 243) {
    // An overload option pointing at fields that claim to overload again, and huge lengths.
    b.writeUInt32BE(0x63825363, 236);
    Buffer.from([53, 1, 1, 52, 1, 3, 55, 255]).copy(b, 240);
    b.fill(52, 44, 236);
  }
  return b;
}

const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
sock.on('message', (buf, rinfo) => {
  try {
    const p = decode(buf);
    if (p.op !== 2) return;
    const pxe = getPxeVendorOptions(p.options);
    out({
      reply: {
        type: getMessageType(p.options),
        xid: p.xid,
        yiaddr: p.yiaddr,
        siaddr: p.siaddr,
        giaddr: p.giaddr,
        file: p.file,
        serverId: getServerId(p.options),
        vendorClass: getString(p.options, 60),
        bootfile67: getString(p.options, 67),
        tftp66: getString(p.options, 66),
        opt209: getString(p.options, 209),
        opt210: getString(p.options, 210),
        discoveryControl: pxe?.discoveryControl ?? null,
        uuid: p.options.get(97)?.toString('hex') ?? null,
        from: `${rinfo.address}:${rinfo.port}`,
      },
    });
  } catch (e) {
    out({ undecodable: (e as Error).message });
  }
});
sock.bind({ address: a.bindAddress ?? '0.0.0.0', port: a.bindPort ?? 68 }, () => {
  sock.setBroadcast(true);
  const req = buildRequest();
  if (a.fuzz) {
    let seed = 99;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    let sent = 0;
    const burst = (): void => {
      for (let i = 0; i < 50 && sent < a.fuzz!; i++, sent++) sock.send(fuzzPacket(req, rnd), a.toPort, a.to);
      if (sent < a.fuzz!) setTimeout(burst, 5);
      else setTimeout(() => sock.close(() => out({ fuzzed: sent })), 200);
    };
    burst();
    return;
  }
  sock.send(req, a.toPort, a.to, (err) => {
    if (err) out({ sendError: err.message });
    out({ sent: true });
  });
  setTimeout(() => sock.close(() => out({ done: true })), a.waitMs ?? 2000);
});
