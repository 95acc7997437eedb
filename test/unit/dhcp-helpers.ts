/** Shared by the DHCP unit tests: a fake transport and request builders. */
import { EventEmitter } from 'node:events';
import { createPacket, decode, encode, FLAG_BROADCAST, type DhcpPacket } from '../../nodes/lib/dhcp/codec';
import { ipToBuf } from '../../nodes/lib/dhcp/ip';
import type { DhcpTransport, IncomingMessage } from '../../nodes/lib/dhcp/message-loop';

export interface Sent {
  packet: DhcpPacket;
  raw: Buffer;
  address: string;
  port: number;
  fromLocalPort: number;
}

export class FakeTransport extends EventEmitter implements DhcpTransport {
  readonly sent: Sent[] = [];
  private waiters: (() => void)[] = [];
  closed = false;

  deliver(m: Partial<IncomingMessage> & { buf: Buffer }): void {
    this.emit('message', { address: '0.0.0.0', port: 68, localPort: 67, ...m });
  }

  async send(buf: Buffer, address: string, port: number, fromLocalPort: number): Promise<void> {
    this.sent.push({ packet: decode(buf), raw: buf, address, port, fromLocalPort });
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when `n` replies have been sent in total, or rejects after `ms`. */
  waitSent(n: number, ms = 2000): Promise<Sent[]> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`only ${this.sent.length} of ${n} replies sent`)), ms);
      const check = (): void => {
        if (this.sent.length >= n) {
          clearTimeout(t);
          resolve(this.sent);
        } else this.waiters.push(check);
      };
      check();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

export interface ReqOpts {
  type: number;
  mac?: string;
  xid?: number;
  ciaddr?: string;
  giaddr?: string;
  flags?: number;
  requested?: string;
  serverId?: string;
  vendorClass?: string;
  arch?: number;
  userClass?: string;
  hostname?: string;
  uuid?: Buffer;
  clientId?: Buffer;
  relayInfo?: Buffer;
}

export function request(o: ReqOpts): Buffer {
  const mac = Buffer.from((o.mac ?? '52:54:00:00:00:01').replace(/:/g, ''), 'hex');
  const p = createPacket({
    op: 1,
    xid: o.xid ?? 0x1234,
    ciaddr: o.ciaddr ?? '0.0.0.0',
    giaddr: o.giaddr ?? '0.0.0.0',
    flags: o.flags ?? FLAG_BROADCAST,
    hops: o.giaddr ? 1 : 0,
    chaddr: Buffer.concat([mac, Buffer.alloc(16 - mac.length)]),
  });
  p.options.set(53, Buffer.from([o.type]));
  if (o.requested) p.options.set(50, ipToBuf(o.requested));
  if (o.serverId) p.options.set(54, ipToBuf(o.serverId));
  if (o.vendorClass) p.options.set(60, Buffer.from(o.vendorClass));
  if (o.arch !== undefined) p.options.set(93, Buffer.from([o.arch >> 8, o.arch & 255]));
  if (o.userClass) p.options.set(77, Buffer.from(o.userClass));
  if (o.hostname) p.options.set(12, Buffer.from(o.hostname));
  if (o.uuid) p.options.set(97, o.uuid);
  if (o.clientId) p.options.set(61, o.clientId);
  if (o.relayInfo) p.options.set(82, o.relayInfo);
  return encode(p);
}

export const tick = (ms = 20): Promise<void> => new Promise((r) => setTimeout(r, ms));
