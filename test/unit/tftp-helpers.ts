/**
 * A scripted TFTP client for tests on 127.0.0.1: raw packets in and out, and a complete RFC 7440
 * receiver (`get`) that records what it saw, so tests can check the server's exact behaviour.
 */
import * as dgram from 'node:dgram';
import { decode, encodeAck, encodeRequest, Opcode, type TftpOption, type TftpPacket } from '../../nodes/lib/tftp/codec';

export interface Received {
  msg: Buffer;
  pkt: TftpPacket | null;
  port: number;
}

export class TestClient {
  private readonly queue: Received[] = [];
  private waiter: (() => void) | undefined;
  readonly socket = dgram.createSocket('udp4');

  static async open(): Promise<TestClient> {
    const c = new TestClient();
    c.socket.on('message', (msg, rinfo) => {
      let pkt: TftpPacket | null = null;
      try {
        pkt = decode(msg);
      } catch {
        pkt = null;
      }
      c.queue.push({ msg, pkt, port: rinfo.port });
      c.waiter?.();
    });
    await new Promise<void>((r) => c.socket.bind(0, '127.0.0.1', () => r()));
    return c;
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(buf: Buffer, port: number): void {
    this.socket.send(buf, port, '127.0.0.1');
  }

  /** The next datagram, or null after `timeoutMs` of silence. */
  async recv(timeoutMs = 2000): Promise<Received | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.queue.shift()!;
  }

  /** Everything that arrives within `ms`. */
  async drain(ms: number): Promise<Received[]> {
    const out: Received[] = [];
    const end = Date.now() + ms;
    for (;;) {
      const left = end - Date.now();
      if (left <= 0) return out;
      const r = await this.recv(left);
      if (!r) return out;
      out.push(r);
    }
  }

  close(): Promise<void> {
    return new Promise((r) => this.socket.close(() => r()));
  }
}

export interface GetResult {
  data: Buffer;
  oack: TftpOption[] | null;
  /** DATA packets received, duplicates included. */
  dataPackets: number;
  tid: number;
  error?: { code: number; message: string };
}

/**
 * Downloads `file` as an RFC 7440 receiver: ACKs every `windowsize`-th block and the last one,
 * ACKs the last in-order block on a gap, and resends its last ACK after `timeoutMs` of silence.
 */
export async function get(client: TestClient, serverPort: number, file: string, opts: { mode?: string; options?: TftpOption[]; timeoutMs?: number; maxTimeouts?: number; ackDelayMs?: number } = {}): Promise<GetResult> {
  const timeoutMs = opts.timeoutMs ?? 1000;
  client.send(encodeRequest(Opcode.RRQ, file, opts.mode ?? 'octet', opts.options ?? []), serverPort);
  let blksize = 512;
  let windowsize = 1;
  let oack: TftpOption[] | null = null;
  let tid = 0;
  let expected = 1;
  let inWindow = 0;
  let lastAck: Buffer | null = null;
  let timeouts = 0;
  let dataPackets = 0;
  const chunks: Buffer[] = [];
  const ack = (block: number): void => {
    lastAck = encodeAck(block);
    client.send(lastAck, tid);
  };
  for (;;) {
    const r = await client.recv(timeoutMs);
    if (!r) {
      if (++timeouts > (opts.maxTimeouts ?? 5)) throw new Error(`timed out at block ${expected}`);
      if (lastAck) client.send(lastAck, tid);
      continue;
    }
    if (tid && r.port !== tid) continue;
    const p = r.pkt;
    if (!p) continue;
    if (p.op === Opcode.ERROR) return { data: Buffer.concat(chunks), oack, dataPackets, tid: r.port, error: { code: p.code, message: p.message } };
    if (p.op === Opcode.OACK && expected === 1 && !tid) {
      tid = r.port;
      oack = p.options;
      for (const o of p.options) {
        if (o.name === 'blksize') blksize = Number(o.value);
        if (o.name === 'windowsize') windowsize = Number(o.value);
      }
      ack(0);
      continue;
    }
    if (p.op !== Opcode.DATA) continue;
    tid ||= r.port;
    dataPackets++;
    if (p.block !== (expected & 0xffff)) {
      // Out of order or a duplicate: tell the sender where we are (a gap restarts its window; a
      // repeated block means our ACK was lost).
      ack(expected - 1);
      inWindow = 0;
      continue;
    }
    chunks.push(Buffer.from(p.data));
    expected++;
    inWindow++;
    if (p.data.length < blksize) {
      ack(p.block);
      return { data: Buffer.concat(chunks), oack, dataPackets, tid };
    }
    if (inWindow >= windowsize) {
      // A slow client (tests of progress): it takes this long before each ACK.
      if (opts.ackDelayMs) await sleep(opts.ackDelayMs);
      ack(p.block);
      inWindow = 0;
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
