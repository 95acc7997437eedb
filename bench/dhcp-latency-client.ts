/**
 * REQUEST→ACK latency at a fixed rate, for `bench/dhcp.ts` (perfdhcp gives only min/avg/max).
 * Runs in the client namespace as a relay agent would (giaddr = our address, from port 67):
 * DISCOVER, then on OFFER a REQUEST naming the server; each REQUEST→ACK time is recorded.
 * argv[2] JSON: { local, server, rate, seconds }; every exchange is a new client. Prints one JSON line with percentiles.
 */
import * as dgram from 'node:dgram';
import { createPacket, decode, encode } from '../nodes/lib/dhcp/codec';
import { ipToBuf } from '../nodes/lib/dhcp/ip';
import { getMessageType, MessageType } from '../nodes/lib/dhcp/options';

const a = JSON.parse(process.argv[2] ?? '{}') as { local: string; server: string; rate: number; seconds: number };
const total = Math.round(a.rate * a.seconds);
const requestSent = new Map<number, bigint>();
const latencies: number[] = [];
let offers = 0;
let naks = 0;

function packet(type: number, n: number, requested?: string): Buffer {
  const mac = Buffer.from([0x02, 0x99, (n >> 16) & 255, (n >> 8) & 255, n & 255, 0x01]);
  const p = createPacket({ op: 1, xid: n + 1, giaddr: a.local, hops: 1, chaddr: Buffer.concat([mac, Buffer.alloc(10)]) });
  p.options.set(53, Buffer.from([type]));
  if (requested) {
    p.options.set(50, ipToBuf(requested));
    p.options.set(54, ipToBuf(a.server));
  }
  return encode(p);
}

const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
sock.on('message', (buf) => {
  let p;
  try {
    p = decode(buf);
  } catch {
    return;
  }
  const t = getMessageType(p.options);
  const n = p.xid - 1;
  if (t === MessageType.OFFER) {
    offers++;
    requestSent.set(p.xid, process.hrtime.bigint());
    sock.send(packet(MessageType.REQUEST, n, p.yiaddr), 67, a.server);
  } else if (t === MessageType.ACK) {
    const s = requestSent.get(p.xid);
    if (s !== undefined) {
      latencies.push(Number(process.hrtime.bigint() - s) / 1e6);
      requestSent.delete(p.xid);
    }
  } else if (t === MessageType.NAK) naks++;
});

sock.bind({ address: a.local, port: 67 }, () => {
  const start = process.hrtime.bigint();
  let sent = 0;
  // Paced by the clock, not by timer counts, so the offered rate holds even with timer jitter.
  const tick = (): void => {
    const due = Math.min(total, Math.floor((Number(process.hrtime.bigint() - start) / 1e9) * a.rate));
    while (sent < due) {
      sock.send(packet(MessageType.DISCOVER, sent), 67, a.server);
      sent++;
    }
    if (sent < total) setTimeout(tick, 2);
    else setTimeout(finish, 1000);
  };
  tick();
});

function finish(): void {
  latencies.sort((x, y) => x - y);
  const pct = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  process.stdout.write(
    JSON.stringify({ sent: total, offers, acks: latencies.length, naks, p50: pct(0.5), p99: pct(0.99), max: latencies.at(-1) ?? NaN }) + '\n',
  );
  sock.close();
}
