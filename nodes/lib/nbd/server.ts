/**
 * A read-only NBD server: fixed newstyle handshake, option haggling, and a transmission phase with
 * simple replies. It knows nothing of Node-RED; it serves one or more NbdExports (the ISO image).
 *
 * Memory stays bounded per connection: at most `maxInflight` reads (and `maxInflightBytes`) are
 * outstanding, and the socket is paused while replies are buffered unsent, so a client that asks
 * faster than it reads only fills its own TCP window.
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { readFully, type NbdExport } from './export';
import * as P from './protocol';

export interface NbdServerOptions {
  exports: NbdExport[];
  /** Longest option data accepted; a longer option closes the connection (default 64 KiB). */
  maxOptionLength?: number;
  /** Longest read; longer reads are answered EINVAL (default 32 MiB, advertised as the maximum block size). */
  maxRequestLength?: number;
  /** Reads outstanding per connection before the socket is paused (default 16). */
  maxInflight?: number;
  /** Bytes of reads outstanding per connection before the socket is paused (default 64 MiB). */
  maxInflightBytes?: number;
  /** Shortest interval between two progress events of one client (default 1000 ms). */
  progressIntervalMs?: number;
  /** Time a client may spend before choosing an export (default 30 s). */
  handshakeTimeoutMs?: number;
  /**
   * Connections at once (default 64); further ones are closed at once and reported as a
   * 'refused' event. Each installer holds one, so this bounds what a flood of connections can take.
   */
  maxConnections?: number;
}

export interface NbdClientInfo {
  /** A number unique within this server, to tell simultaneous clients apart. */
  id: number;
  address: string;
  port: number;
}

export interface NbdSessionInfo extends NbdClientInfo {
  export: string;
  size: number;
}

export interface NbdProgress extends NbdSessionInfo {
  bytesRead: number;
  /** bytesRead / size, at most 1 (re-read blocks count again). */
  share: number;
  reads: number;
}

export interface NbdDisconnect extends NbdProgress {
  durationMs: number;
}

export interface NbdClientError extends NbdClientInfo {
  message: string;
}

export interface NbdServerEvents {
  connect: [NbdSessionInfo];
  progress: [NbdProgress];
  disconnect: [NbdDisconnect];
  clientError: [NbdClientError];
  /** A connection over maxConnections, closed at once. */
  refused: [{ address: string; port: number; max: number }];
}

/**
 * A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; events carry the plain address
 * so that they match what DHCP and TFTP report for the same machine.
 */
function plainAddress(address: string | undefined): string {
  return (address ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
}

/** Transmission flags of every export: read-only, flush answered, several connections coherent. */
export const EXPORT_FLAGS = P.NBD_FLAG_HAS_FLAGS | P.NBD_FLAG_READ_ONLY | P.NBD_FLAG_SEND_FLUSH | P.NBD_FLAG_CAN_MULTI_CONN;
const HANDSHAKE_FLAGS = P.NBD_FLAG_FIXED_NEWSTYLE | P.NBD_FLAG_NO_ZEROES;
const KNOWN_CLIENT_FLAGS = P.NBD_FLAG_C_FIXED_NEWSTYLE | P.NBD_FLAG_C_NO_ZEROES;
const PREFERRED_BLOCK = 4096;

type Resolved = Required<Omit<NbdServerOptions, 'exports'>>;

export class NbdServer extends EventEmitter<NbdServerEvents> {
  private readonly server: net.Server;
  private readonly conns = new Set<Connection>();
  private nextId = 1;
  readonly opts: Resolved;
  private closing: Promise<void> | undefined;

  constructor(readonly options: NbdServerOptions) {
    super();
    if (options.exports.length === 0) throw new Error('an NBD server needs at least one export');
    this.opts = {
      maxOptionLength: options.maxOptionLength ?? 64 * 1024,
      maxRequestLength: options.maxRequestLength ?? 32 * 1024 * 1024,
      maxInflight: options.maxInflight ?? 16,
      maxInflightBytes: options.maxInflightBytes ?? 64 * 1024 * 1024,
      progressIntervalMs: options.progressIntervalMs ?? 1000,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 30000,
      maxConnections: typeof options.maxConnections === 'number' && options.maxConnections >= 1 ? Math.floor(options.maxConnections) : 64,
    };
    // Half-open: a client may send DISC and shut its side while our read replies are still due.
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.accept(s));
    // net.Server closes connections over the cap itself; 'drop' tells who was turned away.
    this.server.maxConnections = this.opts.maxConnections;
    this.server.on('drop', (d) => this.emit('refused', { address: plainAddress(d?.remoteAddress), port: d?.remotePort ?? 0, max: this.opts.maxConnections }));
  }

  /** Sessions in the transmission phase (clients that chose an export). */
  get clientCount(): number {
    let n = 0;
    for (const c of this.conns) if (c.session) n++;
    return n;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  listen(port: number, host?: string): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ port, host: host || undefined }, () => {
        this.server.off('error', onError);
        // Errors after listening (none expected) must not crash the process.
        this.server.on('error', () => undefined);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  address(): net.AddressInfo | null {
    return this.server.address() as net.AddressInfo | null;
  }

  /** Stops listening, drops every client, and resolves once all sockets and reads are finished. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const closed = new Promise<void>((resolve) => {
        if (!this.server.listening) return resolve();
        this.server.close(() => resolve());
      });
      await Promise.all([...this.conns].map((c) => c.destroy()));
      await closed;
    })();
    return this.closing;
  }

  findExport(name: string): NbdExport | undefined {
    // The empty name is the default export (nbd-client without -N, `nbdinfo nbd://host`).
    if (name === '') return this.options.exports[0];
    return this.options.exports.find((e) => e.name === name);
  }

  get exports(): readonly NbdExport[] {
    return this.options.exports;
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const conn = new Connection(this, socket, this.nextId++);
    this.conns.add(conn);
    conn.done.then(() => this.conns.delete(conn));
  }
}

type State = 'clientFlags' | 'optionHeader' | 'optionData' | 'request' | 'discard' | 'closing';

/** One client: the handshake, then requests. */
class Connection {
  readonly info: NbdClientInfo;
  session: NbdSessionInfo | undefined;
  readonly done: Promise<void>;

  private chunks: Buffer[] = [];
  private buffered = 0;
  private state: State = 'clientFlags';
  private noZeroes = false;
  private fixed = false;
  private option: P.OptionHeader | undefined;
  private exp: NbdExport | undefined;
  /** Bytes of a refused write's payload still to be thrown away, and that write's request. */
  private discardLeft = 0;
  private discardReq: P.Request | undefined;
  private inflight = 0;
  private inflightBytes = 0;
  private readonly pending = new Set<Promise<void>>();
  private peerEnded = false;
  private finished = false;
  private paused = false;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private progressTimer: NodeJS.Timeout | undefined;
  private lastProgress = 0;
  private bytesRead = 0;
  private reads = 0;
  private startedAt = 0;

  constructor(
    private readonly server: NbdServer,
    private readonly socket: net.Socket,
    id: number,
  ) {
    this.info = { id, address: plainAddress(socket.remoteAddress), port: socket.remotePort ?? 0 };
    this.done = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      this.pump();
    });
    socket.on('end', () => {
      this.peerEnded = true;
      this.maybeFinish();
    });
    socket.on('drain', () => this.pump());
    socket.on('error', (err) => this.fail(err.message));
    socket.on('close', () => this.onClose());
    this.handshakeTimer = setTimeout(() => this.fail('no export chosen in time'), server.opts.handshakeTimeoutMs);
    socket.write(P.encodeGreeting(HANDSHAKE_FLAGS));
  }

  /** Drops the connection now and waits for its socket and outstanding reads. */
  async destroy(): Promise<void> {
    this.state = 'closing';
    this.socket.destroy();
    await this.done;
    await Promise.allSettled([...this.pending]);
  }

  private take(n: number): Buffer | undefined {
    if (this.buffered < n) return undefined;
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length === n) return this.chunks.shift();
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    // The message spans chunks: copy just the bytes it needs.
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - got);
      c.copy(out, got, 0, k);
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
      got += k;
    }
    return out;
  }

  /** Throws away up to `n` buffered bytes without copying them; returns how many. */
  private skip(n: number): number {
    let skipped = 0;
    while (skipped < n && this.chunks.length) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - skipped);
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
      skipped += k;
      this.buffered -= k;
    }
    return skipped;
  }

  private get busy(): boolean {
    const o = this.server.opts;
    return this.inflight >= o.maxInflight || (this.inflight > 0 && this.inflightBytes >= o.maxInflightBytes) || this.socket.writableNeedDrain;
  }

  /** Parses as much buffered input as the state and the in-flight limits allow. */
  private pump(): void {
    try {
      // Also in the option phase: a client that never reads our replies must not grow our buffers.
      while (this.state !== 'closing' && !this.socket.destroyed && !this.busy) {
        if (!this.step()) break;
      }
    } catch (err) {
      this.fail((err as Error).message);
      return;
    }
    const wantPause = this.state !== 'closing' && this.busy;
    if (wantPause && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!wantPause && this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    this.maybeFinish();
  }

  /** One parsing step; false when more input is needed. */
  private step(): boolean {
    switch (this.state) {
      case 'clientFlags': {
        const b = this.take(4);
        if (!b) return false;
        const flags = b.readUInt32BE(0);
        // The spec: a server that does not know a client flag must close the connection.
        if (flags & ~KNOWN_CLIENT_FLAGS) throw new P.NbdProtocolError(`unknown client flags 0x${flags.toString(16)}`);
        this.fixed = (flags & P.NBD_FLAG_C_FIXED_NEWSTYLE) !== 0;
        this.noZeroes = (flags & P.NBD_FLAG_C_NO_ZEROES) !== 0;
        this.state = 'optionHeader';
        return true;
      }
      case 'optionHeader': {
        const b = this.take(P.OPTION_HEADER_LENGTH);
        if (!b) return false;
        const h = P.decodeOptionHeader(b);
        if (h.length > this.server.opts.maxOptionLength) {
          throw new P.NbdProtocolError(`${P.optionName(h.option)} of ${h.length} bytes exceeds the ${this.server.opts.maxOptionLength}-byte limit`);
        }
        this.option = h;
        this.state = 'optionData';
        return true;
      }
      case 'optionData': {
        const h = this.option!;
        const data = h.length === 0 ? Buffer.alloc(0) : this.take(h.length);
        if (!data) return false;
        this.state = 'optionHeader';
        this.handleOption(h.option, data);
        return true;
      }
      case 'request': {
        const b = this.take(P.REQUEST_LENGTH);
        if (!b) return false;
        this.handleRequest(P.decodeRequest(b));
        return true;
      }
      case 'discard': {
        this.discardLeft -= this.skip(this.discardLeft);
        if (this.discardLeft > 0) return false;
        this.state = 'request';
        this.reply(P.NBD_EPERM, this.discardReq!.handle);
        this.discardReq = undefined;
        return true;
      }
      default:
        return false;
    }
  }

  private optReply(option: number, type: number, data?: Buffer): void {
    this.socket.write(P.encodeOptionReply(option, type, data));
  }

  private optError(option: number, type: number, message: string): void {
    this.optReply(option, type, Buffer.from(message, 'utf8'));
  }

  private handleOption(option: number, data: Buffer): void {
    switch (option) {
      case P.NBD_OPT_EXPORT_NAME: {
        const name = P.decodeName(data);
        const exp = this.server.findExport(name);
        // EXPORT_NAME has no error reply: the spec's only refusal is closing the connection.
        if (!exp) throw new P.NbdProtocolError(`unknown export "${name}"`);
        this.socket.write(P.encodeExportNameReply(exp.size, EXPORT_FLAGS, this.noZeroes));
        this.startTransmission(exp);
        return;
      }
      case P.NBD_OPT_ABORT:
        this.optReply(option, P.NBD_REP_ACK);
        this.finish();
        return;
      case P.NBD_OPT_LIST:
        if (data.length !== 0) return this.optError(option, P.NBD_REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
        for (const e of this.server.exports) this.optReply(option, P.NBD_REP_SERVER, P.encodeServerReplyData(e.name, e.description));
        this.optReply(option, P.NBD_REP_ACK);
        return;
      case P.NBD_OPT_INFO:
      case P.NBD_OPT_GO: {
        let req: P.InfoRequest;
        try {
          req = P.decodeInfoRequest(data);
        } catch (err) {
          return this.optError(option, P.NBD_REP_ERR_INVALID, (err as Error).message);
        }
        const exp = this.server.findExport(req.name);
        if (!exp) return this.optError(option, P.NBD_REP_ERR_UNKNOWN, `no export named "${req.name}"`);
        this.optReply(option, P.NBD_REP_INFO, P.encodeInfoExport(exp.size, EXPORT_FLAGS));
        if (req.requests.includes(P.NBD_INFO_BLOCK_SIZE)) {
          const max = this.server.opts.maxRequestLength;
          this.optReply(option, P.NBD_REP_INFO, P.encodeInfoBlockSize({ minimum: 1, preferred: Math.min(PREFERRED_BLOCK, max), maximum: max }));
        }
        if (req.requests.includes(P.NBD_INFO_NAME)) this.optReply(option, P.NBD_REP_INFO, P.encodeInfoName(exp.name));
        this.optReply(option, P.NBD_REP_ACK);
        if (option === P.NBD_OPT_GO) this.startTransmission(exp);
        return;
      }
      default:
        // Without the fixed handshake a client cannot understand an error reply (spec).
        if (!this.fixed) throw new P.NbdProtocolError(`unsupported ${P.optionName(option)} from a non-fixed-newstyle client`);
        // Structured replies, TLS, meta contexts and extended headers are not offered.
        this.optError(option, P.NBD_REP_ERR_UNSUP, `${P.optionName(option)} is not supported`);
    }
  }

  private startTransmission(exp: NbdExport): void {
    clearTimeout(this.handshakeTimer);
    this.exp = exp;
    this.state = 'request';
    this.startedAt = Date.now();
    this.session = { ...this.info, export: exp.name, size: exp.size };
    this.server.emit('connect', { ...this.session });
  }

  private reply(error: number, handle: Buffer): void {
    this.socket.write(P.encodeSimpleReply(error, handle));
  }

  private handleRequest(req: P.Request): void {
    switch (req.type) {
      case P.NBD_CMD_READ:
        return this.read(req);
      case P.NBD_CMD_WRITE:
        // The payload follows the request: throw it away (without buffering it), then refuse.
        this.discardLeft = req.length;
        this.discardReq = req;
        this.state = 'discard';
        return;
      case P.NBD_CMD_DISC:
        // Outstanding reads are still answered; then the connection closes (maybeFinish).
        this.state = 'closing';
        this.maybeFinish();
        return;
      case P.NBD_CMD_FLUSH:
        // Nothing is ever written, so everything is always on stable storage.
        return this.reply(0, req.handle);
      case P.NBD_CMD_TRIM:
      case P.NBD_CMD_WRITE_ZEROES:
        return this.reply(P.NBD_EPERM, req.handle);
      default:
        // CACHE and BLOCK_STATUS are not advertised; anything else is unknown.
        return this.reply(P.NBD_EINVAL, req.handle);
    }
  }

  private read(req: P.Request): void {
    const exp = this.exp!;
    if (req.length > this.server.opts.maxRequestLength || req.offset + req.length > exp.size) {
      this.reply(P.NBD_EINVAL, req.handle);
      return;
    }
    const buf = P.encodeSimpleReply(0, req.handle, req.length);
    this.inflight++;
    this.inflightBytes += req.length;
    const p = readFully(exp, buf, P.SIMPLE_REPLY_LENGTH, req.length, req.offset).then(
      () => {
        if (this.socket.destroyed) return;
        this.socket.write(buf);
        this.bytesRead += req.length;
        this.reads++;
        this.progress();
      },
      (err: Error) => {
        if (this.socket.destroyed) return;
        this.server.emit('clientError', { ...this.info, message: `read failed: ${err.message}` });
        this.reply(P.NBD_EIO, req.handle);
      },
    );
    this.pending.add(p);
    void p.finally(() => {
      this.pending.delete(p);
      this.inflight--;
      this.inflightBytes -= req.length;
      this.pump();
    });
  }

  private progressInfo(): NbdProgress {
    const s = this.session!;
    return { ...s, bytesRead: this.bytesRead, share: s.size > 0 ? Math.min(1, this.bytesRead / s.size) : 1, reads: this.reads };
  }

  /** Emits progress at most once per interval; a read inside the interval schedules a trailing event. */
  private progress(): void {
    if (this.progressTimer) return;
    const wait = this.lastProgress + this.server.opts.progressIntervalMs - Date.now();
    const emit = (): void => {
      this.progressTimer = undefined;
      this.lastProgress = Date.now();
      this.server.emit('progress', this.progressInfo());
    };
    if (wait <= 0) emit();
    else this.progressTimer = setTimeout(emit, wait);
  }

  /**
   * Ends the connection once the client is done (DISC, ABORT, or its EOF once everything it sent
   * has been parsed; a partial message left at EOF is dropped) and every read is answered.
   */
  private maybeFinish(): void {
    if (this.socket.destroyed || this.finished || this.inflight > 0) return;
    if (this.state === 'closing' || (this.peerEnded && !this.busy)) this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.state = 'closing';
    clearTimeout(this.handshakeTimer);
    this.socket.end();
    // A peer that never reads our FIN-bound data must not hold the socket forever.
    setTimeout(() => this.socket.destroy(), 5000).unref();
  }

  private fail(message: string): void {
    if (this.state !== 'closing') {
      this.server.emit('clientError', { ...this.info, message });
    }
    this.state = 'closing';
    clearTimeout(this.handshakeTimer);
    this.socket.destroy();
  }

  private onClose(): void {
    this.state = 'closing';
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.progressTimer);
    this.progressTimer = undefined;
    if (this.session) {
      const last = this.progressInfo();
      this.session = undefined;
      this.server.emit('disconnect', { ...last, durationMs: Date.now() - this.startedAt });
    }
  }
}
