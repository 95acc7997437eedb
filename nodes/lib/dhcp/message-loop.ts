/**
 * The DHCP message loop, independent of sockets: decode → describe the client → the mode's
 * responder (proxy or full) → route (reply-route.ts) → encode → send, reporting an event for every
 * message received and sent. Malformed packets are counted and dropped, never thrown.
 */
import { EventEmitter } from 'node:events';
import { describeClient } from './client';
import { BOOTREQUEST, decode, DhcpDecodeError, DhcpEncodeError, encode } from './codec';
import type { DhcpEvent } from './events';
import { getMaxMessageSize } from './options';
import type { Responder } from './reply';
import { replyRoute, type ReplyRoute } from './reply-route';

export interface IncomingMessage {
  buf: Buffer;
  address: string;
  port: number;
  /** Local port it arrived on: 67, or 4011 for PXE boot-server requests. */
  localPort: number;
}

/** The sockets as the message loop sees them (socket.ts, or a fake in unit tests). */
export interface DhcpTransport extends EventEmitter {
  on(event: 'message', cb: (m: IncomingMessage) => void): this;
  on(event: 'error', cb: (err: Error) => void): this;
  send(buf: Buffer, address: string, port: number, fromLocalPort: number): Promise<void>;
  close(): Promise<void>;
}

export interface MessageLoopStats {
  received: number;
  malformed: number;
  ignored: number;
  sent: number;
  sendErrors: number;
}

/**
 * Replies go out no bigger than this unless the client says it takes more (option 57): every
 * client must accept a 576-byte datagram (RFC 2131 §2, RFC 2132 §9.10), not necessarily more.
 * Longer replies overload the file/sname fields (option 52) to fit.
 */
const DEFAULT_REPLY_DATAGRAM = 576;
/** Never bigger than an Ethernet frame, whatever option 57 says. */
const MAX_REPLY_DATAGRAM = 1500;
/** Hop limit for relayed requests (RFC 1542 §4.1.1 recommends 16 at most). */
const MAX_HOPS = 16;

export interface DhcpMessageLoopEvents {
  event: [e: DhcpEvent, route: ReplyRoute | undefined];
  error: [err: Error];
  malformed: [err: Error, from: string];
}

export class DhcpMessageLoop extends EventEmitter<DhcpMessageLoopEvents> {
  readonly stats: MessageLoopStats = { received: 0, malformed: 0, ignored: 0, sent: 0, sendErrors: 0 };
  private inflight = new Set<Promise<void>>();
  private closed = false;

  constructor(
    private readonly transport: DhcpTransport,
    private responder: Responder,
  ) {
    super();
    transport.on('message', (m) => {
      if (this.closed) return;
      const p = this.process(m).catch((err: Error) => {
        this.emit('error', err);
      });
      this.inflight.add(p);
      void p.finally(() => this.inflight.delete(p));
    });
    transport.on('error', (err) => this.emit('error', err));
  }

  /** Swaps the responder (configuration change at run time). */
  setResponder(r: Responder): void {
    this.responder = r;
  }

  private async process(m: IncomingMessage): Promise<void> {
    this.stats.received++;
    let req;
    try {
      req = decode(m.buf);
    } catch (err) {
      if (!(err instanceof DhcpDecodeError)) throw err;
      this.stats.malformed++;
      this.emit('malformed', err, `${m.address}:${m.port}`);
      return;
    }
    if (req.op !== BOOTREQUEST || req.hops > MAX_HOPS || req.hlen === 0) {
      this.stats.ignored++;
      return;
    }
    const client = describeClient(req);
    const result = await this.responder.handle(req, client, m.localPort);
    if (this.closed) return;
    let route: ReplyRoute | undefined;
    if (result.reply) {
      route = replyRoute(req, result.reply, result.replyType, m);
      const asked = getMaxMessageSize(req.options);
      let buf: Buffer;
      try {
        buf = encode(result.reply, { maxMessageSize: Math.min(asked ?? DEFAULT_REPLY_DATAGRAM, MAX_REPLY_DATAGRAM) });
      } catch (err) {
        // The client set no limit and the reply does not fit 576 bytes even overloaded: a bigger
        // datagram (most clients take it) rather than none.
        if (!(err instanceof DhcpEncodeError) || asked !== null) throw err;
        buf = encode(result.reply, { maxMessageSize: MAX_REPLY_DATAGRAM });
      }
      try {
        await this.transport.send(buf, route.address, route.port, m.localPort);
        this.stats.sent++;
      } catch (err) {
        this.stats.sendErrors++;
        this.emit('error', new Error(`sending ${result.events.at(-1)?.type ?? 'reply'} to ${route.address}:${route.port}: ${(err as Error).message}`));
        return;
      }
    } else if (result.events.some((e) => e.reason)) this.stats.ignored++;
    for (const e of result.events) this.emit('event', e, e === result.events.at(-1) ? route : undefined);
  }

  /** Stops answering and waits for requests in progress (their lease writes) to finish. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.inflight]);
    await this.transport.close();
  }
}
