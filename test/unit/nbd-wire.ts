/**
 * A scripted NBD client for the tests: raw socket, exact bytes, so a test can send what a real
 * client never would (unknown options, oversized lengths, writes, vanishing mid-read).
 */
import * as net from 'node:net';
import * as P from '../../nodes/lib/nbd/protocol';

export class WireClient {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: (() => void) | undefined;
  ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      this.waiter?.();
    });
    socket.on('end', () => {
      this.ended = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('close', () => {
      this.ended = true;
      this.waiter?.();
    });
  }

  static connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<WireClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host, localAddress }, () => {
        s.off('error', reject);
        resolve(new WireClient(s));
      });
      s.once('error', reject);
    });
  }

  /** Exactly n bytes, or rejects if the server closes first or nothing comes within timeoutMs. */
  async read(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buffered < n) {
      if (this.ended) throw new Error(`connection closed with ${this.buffered}/${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes (have ${this.buffered})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          this.waiter = undefined;
          resolve();
        };
      });
    }
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.buffered = all.length - n;
    return all.subarray(0, n);
  }

  write(b: Buffer): void {
    this.socket.write(b);
  }

  /** Reads the greeting and answers with `clientFlags`; returns the server's handshake flags. */
  async handshake(clientFlags = P.NBD_FLAG_C_FIXED_NEWSTYLE | P.NBD_FLAG_C_NO_ZEROES): Promise<number> {
    const { flags } = P.decodeGreeting(await this.read(18));
    this.write(P.encodeClientFlags(clientFlags));
    return flags;
  }

  async optionReply(): Promise<P.OptionReplyHeader & { data: Buffer }> {
    const h = P.decodeOptionReplyHeader(await this.read(P.OPTION_REPLY_HEADER_LENGTH));
    return { ...h, data: await this.read(h.length) };
  }

  /** Sends NBD_OPT_GO (or INFO) and collects replies up to the final ACK or error. */
  async go(name: string, requests: number[] = [], option = P.NBD_OPT_GO): Promise<{ infos: P.InfoReply[]; final: P.OptionReplyHeader & { data: Buffer } }> {
    this.write(P.encodeOption(option, P.encodeInfoRequest({ name, requests })));
    const infos: P.InfoReply[] = [];
    for (;;) {
      const r = await this.optionReply();
      if (r.type === P.NBD_REP_INFO) infos.push(P.decodeInfoReply(r.data));
      else return { infos, final: r };
    }
  }

  private nextHandle = 1;
  request(type: number, offset: number, length: number, flags = 0): Buffer {
    const handle = Buffer.alloc(8);
    handle.writeBigUInt64BE(BigInt(this.nextHandle++));
    this.write(P.encodeRequest({ type, flags, handle, offset, length }));
    return handle;
  }

  async simpleReply(): Promise<{ error: number; handle: Buffer }> {
    return P.decodeSimpleReply(await this.read(P.SIMPLE_REPLY_LENGTH));
  }

  /** Waits until the server closes its side (rejects after timeoutMs). */
  async waitEnd(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('server did not close the connection');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}
