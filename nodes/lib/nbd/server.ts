/**
 * A read-only NBD server: fixed newstyle handshake, option haggling, and a transmission phase with
 * simple replies. It knows nothing of Node-RED; it serves one or more NbdExports (the ISO image).
 *
 * Memory is bounded by design, whatever the clients send or fail to read:
 * - a reply is read from the file and written in pieces of at most CHUNK bytes, one after the
 *   other as the socket takes them (a 32 MiB read never costs 32 MiB);
 * - the reply bytes a connection holds (being read, waiting, or handed to the socket and not yet
 *   taken by the kernel) are capped per connection, and all connections draw on one ReplyBudget
 *   (a reserve each plus a shared pool);
 * - a connection whose replies do not drain gets no more request parsing (its socket is paused,
 *   so a client that asks faster than it reads only fills its own TCP window);
 * - replies that do not move for stallTimeoutMs drop the connection, and when the server is full
 *   a newcomer takes the slot of a stalled or still-haggling connection.
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { ReplyBudget } from '../reply-budget';
import { PiecePool } from './budget';
import { readFully, type NbdExport } from './export';
import * as P from './protocol';

/**
 * The largest piece of a reply read from the file and written at once. 256 KiB is nbdcopy's
 * request size, and the kernel client asks for no more by default, so ordinary reads are one piece.
 */
export const CHUNK = 256 * 1024;
/** A pooled piece buffer: a header and CHUNK data bytes. Pieces of at least half of it use one. */
const BLOCK = CHUNK + P.SIMPLE_REPLY_LENGTH;
/** Piece buffers kept for reuse (8 MiB: two clients' full pipelines), dropped after 5 s unused. */
const POOL_KEEP = 32;
const POOL_IDLE_MS = 5000;

export interface NbdServerOptions {
  exports: NbdExport[];
  /** Longest option data accepted; a longer option closes the connection (default 64 KiB). */
  maxOptionLength?: number;
  /** Longest read; longer reads are answered EINVAL (default 32 MiB, advertised as the maximum block size). */
  maxRequestLength?: number;
  /** Requests parsed and not yet fully answered, per connection, before its socket is paused (default 16). */
  maxInflight?: number;
  /**
   * Reply bytes one connection may hold: being read, waiting for their turn, or handed to the
   * socket and not yet taken by the kernel (default 4 MiB). Reads are answered in pieces within it.
   */
  connectionReplyBytes?: number;
  /** Reply bytes each connection is guaranteed, outside the shared pool (default 512 KiB). */
  reservedReplyBytes?: number;
  /**
   * Reply bytes of all connections together (default 64 MiB): maxConnections × reservedReplyBytes
   * are the reserves, the rest is the shared pool.
   */
  maxReplyBytes?: number;
  /** Shortest interval between two progress events of one client (default 1000 ms). */
  progressIntervalMs?: number;
  /** Time a client may spend before choosing an export (default 30 s). */
  handshakeTimeoutMs?: number;
  /** A connection whose replies are not taken by its client for this long is dropped (default 60 s). */
  stallTimeoutMs?: number;
  /**
   * When the server is full, a newcomer takes the slot of a connection whose reply has waited
   * this long for the kernel to take it, or that is still haggling options after this long
   * (default 5 s). A piece is at most CHUNK bytes, so a stalled client reads slower than about
   * 50 KiB/s, which no booting machine does; a real client haggles for milliseconds.
   */
  evictableAfterMs?: number;
  /**
   * Connections at once (default 64). A further one takes the slot of a stalled or long-haggling
   * connection if there is one, else it is closed at once and reported as a 'refused' event.
   */
  maxConnections?: number;
  /** Connections at once from one address (default 8; nbdcopy opens up to 4, the kernel client 1). */
  maxConnectionsPerAddress?: number;
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
  /** A connection closed at once: the server ('server') or its address ('address') is at its limit. */
  refused: [{ address: string; port: number; max: number; reason: 'server' | 'address' }];
  /** A connection dropped to make room for a newcomer on a full server. */
  evicted: [NbdClientInfo & { reason: 'stalled' | 'handshake' }];
}

/**
 * A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; events carry the plain address
 * so that they match what DHCP and TFTP report for the same machine.
 */
function plainAddress(address: string | undefined): string {
  return (address ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
}

function positiveInt(v: unknown, dflt: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 1 ? Math.floor(v) : dflt;
}

/** Transmission flags of every export: read-only, flush answered, several connections coherent. */
export const EXPORT_FLAGS = P.NBD_FLAG_HAS_FLAGS | P.NBD_FLAG_READ_ONLY | P.NBD_FLAG_SEND_FLUSH | P.NBD_FLAG_CAN_MULTI_CONN;
const HANDSHAKE_FLAGS = P.NBD_FLAG_FIXED_NEWSTYLE | P.NBD_FLAG_NO_ZEROES;
const KNOWN_CLIENT_FLAGS = P.NBD_FLAG_C_FIXED_NEWSTYLE | P.NBD_FLAG_C_NO_ZEROES;
const PREFERRED_BLOCK = 4096;
const MiB = 1024 * 1024;
/** Idle time before TCP keepalive probes: a machine switched off while attached frees its slot. */
const KEEPALIVE_MS = 60_000;

type Resolved = Required<Omit<NbdServerOptions, 'exports'>>;

export class NbdServer extends EventEmitter<NbdServerEvents> {
  private readonly server: net.Server;
  private readonly conns = new Set<Connection>();
  private nextId = 1;
  readonly opts: Resolved;
  readonly budget: ReplyBudget;
  readonly pool = new PiecePool(BLOCK, POOL_KEEP, POOL_IDLE_MS);
  private closing: Promise<void> | undefined;
  private stallTimer: NodeJS.Timeout | undefined;

  constructor(readonly options: NbdServerOptions) {
    super();
    if (options.exports.length === 0) throw new Error('an NBD server needs at least one export');
    const maxConnections = positiveInt(options.maxConnections, 64);
    const reservedReplyBytes = positiveInt(options.reservedReplyBytes, 512 * 1024);
    this.opts = {
      maxOptionLength: options.maxOptionLength ?? 64 * 1024,
      maxRequestLength: options.maxRequestLength ?? 32 * MiB,
      maxInflight: positiveInt(options.maxInflight, 16),
      reservedReplyBytes,
      connectionReplyBytes: Math.max(reservedReplyBytes, positiveInt(options.connectionReplyBytes, 4 * MiB)),
      maxReplyBytes: positiveInt(options.maxReplyBytes, 64 * MiB),
      progressIntervalMs: options.progressIntervalMs ?? 1000,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 30000,
      stallTimeoutMs: positiveInt(options.stallTimeoutMs, 60000),
      evictableAfterMs: positiveInt(options.evictableAfterMs, 5000),
      maxConnections,
      maxConnectionsPerAddress: positiveInt(options.maxConnectionsPerAddress, 8),
    };
    // Every connection must be able to hold one piece of its own, or it could wait forever.
    if (reservedReplyBytes < CHUNK + P.SIMPLE_REPLY_LENGTH) throw new Error(`reservedReplyBytes must be at least ${CHUNK + P.SIMPLE_REPLY_LENGTH}`);
    const shared = this.opts.maxReplyBytes - maxConnections * reservedReplyBytes;
    if (shared < 0) throw new Error(`maxReplyBytes (${this.opts.maxReplyBytes}) cannot hold the ${reservedReplyBytes}-byte reserve of ${maxConnections} connections`);
    this.budget = new ReplyBudget(reservedReplyBytes, shared);
    // Half-open: a client may send DISC and shut its side while our read replies are still due.
    // No net.Server maxConnections: accept() decides, as it may make room by dropping a stalled connection.
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.accept(s));
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

  /** Reply bytes held by all connections now (at most maxReplyBytes). */
  get replyBytes(): number {
    let n = 0;
    for (const c of this.conns) n += c.held;
    return n;
  }

  listen(port: number, host?: string): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ port, host: host || undefined }, () => {
        this.server.off('error', onError);
        // Errors after listening (none expected) must not crash the process.
        this.server.on('error', () => undefined);
        const every = Math.max(10, Math.min(1000, this.opts.stallTimeoutMs / 4));
        this.stallTimer = setInterval(() => this.dropStalled(), every).unref();
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
      clearInterval(this.stallTimer);
      const closed = new Promise<void>((resolve) => {
        if (!this.server.listening) return resolve();
        this.server.close(() => resolve());
      });
      await Promise.all([...this.conns].map((c) => c.destroy()));
      await closed;
      this.pool.clear();
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

  private dropStalled(): void {
    const now = Date.now();
    for (const c of this.conns) {
      if (c.stalledFor(now) >= this.opts.stallTimeoutMs) c.fail(`replies not read for ${this.opts.stallTimeoutMs / 1000} s`);
    }
  }

  /** The connection to drop for a newcomer: the longest stalled one, else the oldest still haggling. */
  private evictable(live: Connection[], now: number): { conn: Connection; reason: 'stalled' | 'handshake' } | undefined {
    const after = this.opts.evictableAfterMs;
    let best: Connection | undefined;
    for (const c of live) if (c.stalledFor(now) >= after && (!best || c.stalledFor(now) > best.stalledFor(now))) best = c;
    if (best) return { conn: best, reason: 'stalled' };
    for (const c of live) if (!c.session && now - c.createdAt >= after && (!best || c.createdAt < best.createdAt)) best = c;
    return best ? { conn: best, reason: 'handshake' } : undefined;
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const address = plainAddress(socket.remoteAddress);
    const refuse = (reason: 'server' | 'address', max: number): void => {
      socket.destroy();
      this.emit('refused', { address, port: socket.remotePort ?? 0, max, reason });
    };
    const live = [...this.conns].filter((c) => !c.gone);
    if (live.filter((c) => c.info.address === address).length >= this.opts.maxConnectionsPerAddress) {
      return refuse('address', this.opts.maxConnectionsPerAddress);
    }
    if (live.length >= this.opts.maxConnections) {
      const victim = this.evictable(live, Date.now());
      if (!victim) return refuse('server', this.opts.maxConnections);
      this.emit('evicted', { ...victim.conn.info, reason: victim.reason });
      victim.conn.drop();
    }
    const conn = new Connection(this, socket, this.nextId++);
    this.conns.add(conn);
    conn.done.then(() => this.conns.delete(conn));
  }
}

type State = 'clientFlags' | 'optionHeader' | 'optionData' | 'request' | 'discard' | 'closing';

/** A request being answered: a read, or a reply without data (length 0, `error` set). */
interface Job {
  read: boolean;
  handle: Buffer;
  error: number;
  offset: number;
  length: number;
  started: boolean;
  /** Data bytes given to pieces so far. */
  scheduled: number;
  /** Pieces made and not yet written or thrown away. */
  outstanding: number;
  /** A piece's read failed: the reply becomes EIO if its header has not gone out yet. */
  failed: Error | null;
  /** What the header that went out said. */
  sent: 'none' | 'data' | 'error';
}

/** One piece of a reply: the header (first piece) and up to CHUNK data bytes. */
interface Piece {
  job: Job;
  /** The pooled buffer the piece lives in, if it uses one. */
  block: Buffer | null;
  buf: Buffer;
  first: boolean;
  data: number;
  /** Bytes held against the budget: the whole pooled buffer, or the piece's own. */
  size: number;
  state: 'reading' | 'ready' | 'writing' | 'done';
}

const NO_BYTES = Buffer.alloc(0);

/** One client: the handshake, then requests. */
class Connection {
  readonly info: NbdClientInfo;
  session: NbdSessionInfo | undefined;
  readonly done: Promise<void>;
  readonly createdAt = Date.now();
  /** Reply bytes held against the budget. */
  held = 0;

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
  /** Requests being answered, in order; jobs before `nextJob` have all their pieces made. */
  private jobs: Job[] = [];
  private nextJob = 0;
  /** Pieces not yet written, in reply order. */
  private pieces: Piece[] = [];
  /** Pieces handed to the socket whose write has not completed. */
  private readonly writing = new Set<Piece>();
  private lastMove = 0;
  private readonly pending = new Set<Promise<void>>();
  private peerEnded = false;
  private finished = false;
  private closed = false;
  private paused = false;
  private pumping = false;
  private repump = false;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private progressTimer: NodeJS.Timeout | undefined;
  private lastProgress = 0;
  private bytesRead = 0;
  private reads = 0;
  private startedAt = 0;
  private readonly wake = (): void => this.pump();

  constructor(
    private readonly server: NbdServer,
    private readonly socket: net.Socket,
    id: number,
  ) {
    this.info = { id, address: plainAddress(socket.remoteAddress), port: socket.remotePort ?? 0 };
    this.done = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.setKeepAlive(true, KEEPALIVE_MS);
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

  get gone(): boolean {
    return this.closed || this.socket.destroyed;
  }

  /** How long a reply piece has waited for the kernel to take it (0 when none is waiting). */
  stalledFor(now: number): number {
    return this.writing.size > 0 && !this.gone ? now - this.lastMove : 0;
  }

  /** Drops the connection now and waits for its socket and outstanding reads. */
  async destroy(): Promise<void> {
    this.drop();
    await this.done;
    await Promise.allSettled([...this.pending]);
  }

  /** Drops the connection without reporting an error. */
  drop(): void {
    this.state = 'closing';
    this.socket.destroy();
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

  /**
   * No more requests are parsed while replies wait: too many requests open, the socket not
   * draining (also in the option phase), or a reply waiting for reply memory.
   */
  private get busy(): boolean {
    return this.jobs.length >= this.server.opts.maxInflight || this.socket.writableNeedDrain || this.nextJob < this.jobs.length;
  }

  /** Writes what is ready, reads what the budget allows, then parses requests while not busy. */
  private pump(): void {
    // Re-entered from a budget wake-up or a write callback: the running loop picks the work up.
    if (this.pumping) {
      this.repump = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.repump = false;
        this.pumpOnce();
      } while (this.repump && !this.gone);
    } finally {
      this.pumping = false;
    }
  }

  private pumpOnce(): void {
    try {
      for (;;) {
        this.flush();
        this.schedule();
        if (this.state === 'closing' || this.gone || this.busy) break;
        if (!this.step()) break;
      }
    } catch (err) {
      this.fail((err as Error).message);
      return;
    }
    if (this.gone) return;
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

  /** Queues a reply; it goes out after every reply queued before it (a read's pieces are contiguous). */
  private enqueue(read: boolean, handle: Buffer, error: number, offset = 0, length = 0): void {
    this.jobs.push({ read, handle, error, offset, length, started: false, scheduled: 0, outstanding: 0, failed: null, sent: 'none' });
    this.schedule();
  }

  private reply(error: number, handle: Buffer): void {
    this.enqueue(false, handle, error);
  }

  private handleRequest(req: P.Request): void {
    switch (req.type) {
      case P.NBD_CMD_READ:
        if (req.length > this.server.opts.maxRequestLength || req.offset + req.length > this.exp!.size) return this.reply(P.NBD_EINVAL, req.handle);
        return this.enqueue(true, req.handle, 0, req.offset, req.length);
      case P.NBD_CMD_WRITE:
        // The payload follows the request: throw it away (without buffering it), then refuse.
        this.discardLeft = req.length;
        this.discardReq = req;
        this.state = 'discard';
        return;
      case P.NBD_CMD_DISC:
        // Outstanding reads are still answered; then the connection closes (maybeFinish).
        this.state = 'closing';
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

  /** Makes pieces of the queued replies, in order, as far as this connection's share of reply memory allows. */
  private schedule(): void {
    const o = this.server.opts;
    while (!this.gone) {
      const job = this.jobs[this.nextJob];
      if (!job) return;
      if (job.failed || (job.started && job.scheduled === job.length)) {
        this.nextJob++;
        continue;
      }
      const first = !job.started;
      const data = Math.min(CHUNK, job.length - job.scheduled);
      const own = data + (first ? P.SIMPLE_REPLY_LENGTH : 0);
      const pooled = data >= CHUNK / 2;
      const size = pooled ? BLOCK : own;
      if (this.held + size > o.connectionReplyBytes) return;
      if (!this.server.budget.take(this.held, size)) {
        this.server.budget.wait(this.wake);
        return;
      }
      this.held += size;
      const position = job.offset + job.scheduled;
      const block = pooled ? this.server.pool.get() : null;
      const buf = block ? block.subarray(0, own) : Buffer.allocUnsafe(own);
      if (first) P.writeSimpleReplyHeader(buf, job.error, job.handle);
      const piece: Piece = { job, block, buf, first, data, size, state: data > 0 ? 'reading' : 'ready' };
      job.started = true;
      job.scheduled += data;
      job.outstanding++;
      this.pieces.push(piece);
      if (data > 0) this.readPiece(piece, position);
    }
  }

  private readPiece(piece: Piece, position: number): void {
    const p = readFully(this.exp!, piece.buf, piece.first ? P.SIMPLE_REPLY_LENGTH : 0, piece.data, position).then(
      () => undefined,
      (err: Error) => {
        if (piece.job.failed) return;
        piece.job.failed = err;
        if (!this.gone) this.server.emit('clientError', { ...this.info, message: `read failed: ${err.message}` });
      },
    );
    this.pending.add(p);
    void p.finally(() => {
      this.pending.delete(p);
      piece.state = 'ready';
      if (this.gone) this.release(piece);
      else this.pump();
    });
  }

  /** Hands the ready pieces at the head of the queue to the socket, in order. */
  private flush(): void {
    while (!this.gone && this.pieces[0]?.state === 'ready') {
      const piece = this.pieces.shift()!;
      const job = piece.job;
      job.outstanding--;
      if (!job.failed) {
        if (piece.first) job.sent = job.error ? 'error' : 'data';
        this.write(piece, piece.buf);
        this.bytesRead += piece.data;
      } else if (job.sent === 'none') {
        // Its header has not gone out (this is the first piece): the reply becomes an error.
        piece.buf.writeUInt32BE(P.NBD_EIO, 4);
        job.sent = 'error';
        this.write(piece, piece.buf.subarray(0, P.SIMPLE_REPLY_LENGTH));
      } else if (job.sent === 'data') {
        // A simple reply cannot take back data already sent: the spec's answer is to disconnect.
        this.release(piece);
        this.fail(`read failed after part of a ${job.length}-byte reply was sent`);
        return;
      } else {
        // Data of a reply that became an error.
        this.release(piece);
      }
      if (job === this.jobs[0] && job.outstanding === 0 && (job.failed || job.scheduled === job.length)) {
        this.jobs.shift();
        this.nextJob = Math.max(0, this.nextJob - 1);
        if (job.read && job.sent === 'data') {
          this.reads++;
          this.progress();
        }
      }
    }
  }

  private write(piece: Piece, buf: Buffer): void {
    piece.state = 'writing';
    piece.buf = NO_BYTES; // the socket holds the bytes until the kernel takes them
    if (this.writing.size === 0) this.lastMove = Date.now();
    this.writing.add(piece);
    this.socket.write(buf, (err) => {
      this.lastMove = Date.now();
      // A failed write's buffer is not reused: the socket may not be done with it.
      this.release(piece, !err);
      if (!this.gone) this.pump();
    });
  }

  /** Gives a piece's bytes back to the budget (once), and its buffer to the pool if nothing uses it. */
  private release(piece: Piece, reuse = true): void {
    if (piece.state === 'done') return;
    if (piece.block && reuse) this.server.pool.put(piece.block);
    piece.state = 'done';
    piece.block = null;
    piece.buf = NO_BYTES;
    this.writing.delete(piece);
    this.server.budget.give(this.held, piece.size);
    this.held -= piece.size;
  }

  private progressInfo(): NbdProgress {
    const s = this.session!;
    return { ...s, bytesRead: this.bytesRead, share: s.size > 0 ? Math.min(1, this.bytesRead / s.size) : 1, reads: this.reads };
  }

  /** Emits progress at most once per interval; a read inside the interval schedules a trailing event. */
  private progress(): void {
    if (this.progressTimer || !this.session) return;
    const wait = this.lastProgress + this.server.opts.progressIntervalMs - Date.now();
    const emit = (): void => {
      this.progressTimer = undefined;
      this.lastProgress = Date.now();
      if (this.session) this.server.emit('progress', this.progressInfo());
    };
    if (wait <= 0) emit();
    else this.progressTimer = setTimeout(emit, wait);
  }

  /**
   * Ends the connection once the client is done (DISC, ABORT, or its EOF once everything it sent
   * has been parsed; a partial message left at EOF is dropped) and every reply is handed to the socket.
   */
  private maybeFinish(): void {
    if (this.gone || this.finished || this.jobs.length > 0) return;
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

  fail(message: string): void {
    if (this.state !== 'closing') {
      this.server.emit('clientError', { ...this.info, message });
    }
    this.drop();
  }

  private onClose(): void {
    this.closed = true;
    this.state = 'closing';
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.progressTimer);
    this.progressTimer = undefined;
    this.server.budget.cancel(this.wake);
    // Everything not still being read from the file goes back now; reads give theirs back as they end.
    for (const p of this.pieces) if (p.state !== 'reading') this.release(p);
    // Writes may still be in the socket's hands: their buffers are left to the garbage collector.
    for (const p of [...this.writing]) this.release(p, false);
    this.pieces = [];
    this.jobs = [];
    this.nextJob = 0;
    this.chunks = [];
    this.buffered = 0;
    if (this.session) {
      const last = this.progressInfo();
      this.session = undefined;
      this.server.emit('disconnect', { ...last, durationMs: Date.now() - this.startedAt });
    }
  }
}
