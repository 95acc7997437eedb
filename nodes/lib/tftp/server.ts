/**
 * The TFTP server: a socket on port 69 that takes read requests and starts each transfer on its
 * own ephemeral, connected socket (its TID). It refuses writes, answers missing files with
 * error 1, leaves path rules to the store, enforces transfer limits, and reports every transfer
 * as typed events. close() resolves only once every socket and file it opened is closed.
 */
import * as dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import * as os from 'node:os';
import { BusyPoller } from './busy-poll';
import { decode, encodeError, ErrorCode, Opcode, peekOpcode, TftpDecodeError, type RequestPacket } from './codec';
import { AdmissionQueue } from './admission';
import { clampLimits, type NegotiatedOptions, type NegotiationLimits } from './options';
import { transferSocketIo } from './transfer-socket';
import { PROGRESS_INTERVAL_MS, TransferRunner, type JobEvent, type JobResult, type Peer, type TransferJob } from './runner';
import { WorkerPool, type WorkerStoreSpec } from './worker-pool';
import type { FileStore } from '../store/types';

export type { Peer } from './runner';

export interface TftpServerOptions {
  store: FileStore;
  /** Address to listen on (default 0.0.0.0; an IPv6 address listens on IPv6). */
  address?: string;
  /** UDP port (default 69). 0 picks a free port, for tests. */
  port?: number;
  /** Largest blksize granted (default 1468: a full Ethernet frame). */
  maxBlksize?: number;
  /** Largest windowsize granted (default 64). */
  maxWindowsize?: number;
  /** Transfers at once; further requests wait for a slot (default 100). */
  maxTransfers?: number;
  /**
   * Requests waiting for a transfer slot at once (default 4 × maxTransfers); one more is refused
   * with an ERROR. A waiting request holds its packet (≤ 512 bytes) and nothing else.
   */
  maxWaiting?: number;
  /**
   * Longest a request waits for a slot before it is refused with an ERROR, ms (default 20000:
   * below the shortest common client retry budget, tftp-hpa's 25 s, so the client still listens
   * when the ERROR comes; a PXE ROM retries for about 35 s).
   */
  maxWaitMs?: number;
  /** Transfers at once from one client address (default 8). */
  maxPerClient?: number;
  /** Upper bound of the adaptive retransmit timeout, ms (default 1000). */
  retransmitMs?: number;
  /** Lower bound of the adaptive retransmit timeout, ms (default 100). */
  minRetransmitMs?: number;
  /** Consecutive timeouts before a transfer is abandoned (default 8). */
  maxRetries?: number;
  /** Read-ahead per transfer, bytes (default 64 KiB). */
  readAheadBytes?: number;
  /**
   * After each send, poll for the answer this long instead of sleeping, ms (default 0: off). It
   * buys a little windowsize-1 throughput on an idle core with a whole core's CPU: while clients
   * are slower than the server (a room of PXE ROMs) the loop spins between every ACK, and on a Pi
   * CPU per byte is what runs out (issue 19).
   */
  busyPollMs?: number;
  /**
   * Transfer worker threads. With N > 0 the transfers run on N worker_threads, each with its own
   * copy of the store opened from `workerStore` (required then): many concurrent transfers use
   * every core instead of one (a single thread tops out near one core of send syscalls). 0 runs
   * every transfer on this thread. Default: one per core, up to 4, when `workerStore` is given
   * and there is more than one core; else 0.
   */
  workers?: number;
  /** How workers open the store; must name what `store` serves. */
  workerStore?: WorkerStoreSpec;
  /** Least time between two progress events of one transfer, ms (default 250; 0: none). */
  progressIntervalMs?: number;
  /** With workers: transfers this thread still runs itself before handing more out (default 2). */
  localTransfers?: number;
  /**
   * Transfer sockets through the native UDP addon when it was built at install (IPv4 only):
   * datagrams reach JavaScript in batches, several times less CPU per packet. Default true;
   * false (or no addon) uses Node's dgram. See `nativeIo` on the server for what is in use.
   */
  nativeIo?: boolean;
}

interface EventBase {
  /** Sequence number of the request, unique per server. */
  id: number;
  client: Peer;
  /** The file name as the client sent it. */
  file: string;
  mode: string;
  /** File size in bytes (octet mode), when known. */
  size?: number;
  /** What the client asked for, option by option. */
  requested: Record<string, string>;
}

export interface StartEvent extends EventBase {
  type: 'start';
  options: NegotiatedOptions;
}

export interface DoneEvent extends EventBase {
  type: 'done';
  options: NegotiatedOptions;
  bytesSent: number;
  durationMs: number;
  packetsSent: number;
  retransmits: number;
}

export interface ErrorEvent extends EventBase {
  type: 'error';
  /** 'request': refused before any data (missing file, write, limits); 'transfer': failed midway. */
  stage: 'request' | 'transfer';
  /** Who ended it: the client sent an ERROR, or the server refused or gave up. */
  by: 'client' | 'server';
  /** TFTP error code sent or received (undefined when the request was dropped unanswered). */
  code?: number;
  message: string;
  /** Routine, log at debug level: a missing file (pxelinux probes many paths per boot). */
  quiet: boolean;
  /** Refused because the server was busy: every transfer slot taken and the wait queue full or its wait over. */
  busy?: boolean;
  options?: NegotiatedOptions;
  bytesSent: number;
  durationMs: number;
}

/** The client ended right after the OACK (a PXE ROM asking tsize): normal, not a failure. */
export interface DeclinedEvent extends EventBase {
  type: 'declined';
  options: NegotiatedOptions;
  code?: number;
  message: string;
  durationMs: number;
}

export type TftpEvent = StartEvent | DoneEvent | ErrorEvent | DeclinedEvent;

/**
 * A transfer under way: what the client has acknowledged so far. At most one per
 * `progressIntervalMs` per transfer, only while bytes move, never before 'start' or after its end;
 * a transfer shorter than the interval has none.
 */
export interface ProgressEvent extends EventBase {
  type: 'progress';
  bytesSent: number;
  /** Since the request came. */
  durationMs: number;
}

export interface TftpServerEvents {
  transfer: (event: TftpEvent) => void;
  /** Progress of running transfers (a separate event: 'transfer' stays one start and one end). */
  progress: (event: ProgressEvent) => void;
  /** A problem of the listening socket after it started (it keeps serving). */
  warning: (err: Error) => void;
}

interface Slot {
  id: number;
  key: string;
  peer: Peer;
  req: RequestPacket;
  /** The request as received, to tell a resend from a next request. */
  raw: Buffer;
  /** The client accepted the OACK, or data started. */
  started: boolean;
  /** A next request from the same port that came before this transfer's end was known. */
  queued?: { msg: Buffer; rinfo: dgram.RemoteInfo };
  startedAt: number;
  /** File size as reported at start (octet mode). */
  size?: number;
  /** Resolves when the slot's socket and file are closed. */
  closed: Promise<void>;
}

/** Waiting requests per transfer slot, by default (maxWaiting). */
const WAITING_PER_SLOT = 4;

/** A read request waiting for a transfer slot. */
interface Pending {
  key: string;
  peer: Peer;
  req: RequestPacket;
  raw: Buffer;
}

const DEFAULTS = {
  address: '0.0.0.0',
  port: 69,
  maxTransfers: 100,
  maxPerClient: 8,
  maxWaiting: 0, // 0: WAITING_PER_SLOT × maxTransfers
  maxWaitMs: 20_000,
  retransmitMs: 1000,
  minRetransmitMs: 100,
  maxRetries: 8,
  readAheadBytes: 64 * 1024,
  busyPollMs: 0,
};

/** Below this much memory the TFTP node starts no transfer workers by default. */
export const WORKERS_MIN_MEMORY = 2 * 1024 ** 3;

/**
 * Transfer workers started when the node's Threads setting is empty: one per core up to 4, none on
 * one core, and none under 2 GiB of memory — each worker is a V8 isolate with its own store
 * (~13 MiB), and a 1 GiB Pi must serve 10 boots in under 150 MiB beside the user's other flows
 * (bench:pi-memory: 133 MiB without workers, 187 MiB with 4).
 */
export function defaultTransferWorkers(cores: number, totalMemory: number): number {
  return cores > 1 && totalMemory >= WORKERS_MIN_MEMORY ? Math.min(4, cores) : 0;
}

function positive(n: number | undefined, fallback: number): number {
  return typeof n === 'number' && Number.isFinite(n) && n >= 1 ? Math.floor(n) : fallback;
}

export class TftpServer {
  private readonly emitter = new EventEmitter();
  private readonly limits: NegotiationLimits;
  private readonly cfg: typeof DEFAULTS;
  private socket: dgram.Socket | undefined;
  /** Transfers by client address:port, until their outcome is known. */
  private readonly slots = new Map<string, Slot>();
  /** Every transfer until its socket and file are closed (what close() waits for). */
  private readonly open = new Set<Slot>();
  /** Transfers and waiting requests by client address (maxPerClient counts both). */
  private readonly perClient = new Map<string, number>();
  /** Requests waiting for a transfer slot, bounded by maxWaiting and maxWaitMs. */
  private readonly waiting: AdmissionQueue<Pending>;
  private nextId = 1;
  private closing = false;
  private listening = false;
  private closePromise: Promise<void> | undefined;
  /** Shared by the transfers of this thread: one event loop, one poll budget. */
  readonly poller: BusyPoller;
  /** Runs transfers on this thread (when there are no workers). */
  private readonly runner: TransferRunner;
  private readonly pool: WorkerPool | undefined;
  /** Jobs running on this thread's runner. */
  private localJobs = 0;
  private readonly localTransfers: number;
  private readonly nativeIo: boolean;

  constructor(private readonly opts: TftpServerOptions) {
    this.limits = clampLimits({ maxBlksize: opts.maxBlksize, maxWindowsize: opts.maxWindowsize });
    const retransmitMs = positive(opts.retransmitMs, DEFAULTS.retransmitMs);
    this.cfg = {
      address: opts.address || DEFAULTS.address,
      port: typeof opts.port === 'number' && opts.port >= 0 && opts.port < 65536 ? Math.floor(opts.port) : DEFAULTS.port,
      maxTransfers: positive(opts.maxTransfers, DEFAULTS.maxTransfers),
      maxPerClient: positive(opts.maxPerClient, DEFAULTS.maxPerClient),
      // 0 is a valid choice here: no waiting, a busy server refuses at once.
      maxWaiting:
        typeof opts.maxWaiting === 'number' && Number.isFinite(opts.maxWaiting) && opts.maxWaiting >= 0
          ? Math.floor(opts.maxWaiting)
          : WAITING_PER_SLOT * positive(opts.maxTransfers, DEFAULTS.maxTransfers),
      maxWaitMs: positive(opts.maxWaitMs, DEFAULTS.maxWaitMs),
      retransmitMs,
      minRetransmitMs: Math.min(retransmitMs, positive(opts.minRetransmitMs, DEFAULTS.minRetransmitMs)),
      maxRetries: positive(opts.maxRetries, DEFAULTS.maxRetries),
      readAheadBytes: positive(opts.readAheadBytes, DEFAULTS.readAheadBytes),
      busyPollMs: typeof opts.busyPollMs === 'number' && opts.busyPollMs >= 0 ? Math.min(opts.busyPollMs, 10) : DEFAULTS.busyPollMs,
    };
    this.poller = new BusyPoller(this.cfg.busyPollMs);
    this.waiting = new AdmissionQueue<Pending>({
      maxWaiting: this.cfg.maxWaiting,
      maxWaitMs: this.cfg.maxWaitMs,
      onExpired: (p, waitedMs) => {
        this.unclaim(p.peer.address);
        const s = (waitedMs / 1000).toFixed(1);
        this.refuse(p.peer, p.req, ErrorCode.NOT_DEFINED, `no transfer slot free within ${s} s (limit ${this.cfg.maxTransfers}): refused`, false, `Server busy: no transfer slot free within ${s} s, try again later`, this.nextId++, true);
      },
    });
    const runnerCfg = {
      address: this.cfg.address,
      limits: this.limits,
      minRetransmitMs: this.cfg.minRetransmitMs,
      retransmitMs: this.cfg.retransmitMs,
      maxRetries: this.cfg.maxRetries,
      readAheadBytes: this.cfg.readAheadBytes,
      nativeIo: opts.nativeIo !== false,
      progressIntervalMs: typeof opts.progressIntervalMs === 'number' && opts.progressIntervalMs >= 0 ? opts.progressIntervalMs : PROGRESS_INTERVAL_MS,
    };
    this.nativeIo = runnerCfg.nativeIo;
    this.runner = new TransferRunner(opts.store, runnerCfg, this.poller);
    this.localTransfers = typeof opts.localTransfers === 'number' && opts.localTransfers >= 0 ? Math.floor(opts.localTransfers) : 2;
    const fallback = opts.workerStore ? defaultTransferWorkers(os.availableParallelism(), os.totalmem()) : 0;
    const workers = typeof opts.workers === 'number' && Number.isFinite(opts.workers) ? Math.max(0, Math.min(64, Math.floor(opts.workers))) : fallback;
    if (workers > 0) {
      if (!opts.workerStore) throw new Error('workers need workerStore: how each worker opens the store');
      this.pool = new WorkerPool(workers, { runner: runnerCfg, busyPollMs: this.cfg.busyPollMs, store: opts.workerStore });
    }
  }

  on<K extends keyof TftpServerEvents>(event: K, listener: TftpServerEvents[K]): this {
    this.emitter.on(event, listener);
    return this;
  }

  off<K extends keyof TftpServerEvents>(event: K, listener: TftpServerEvents[K]): this {
    this.emitter.off(event, listener);
    return this;
  }

  private emit(event: TftpEvent | ProgressEvent): void {
    try {
      this.emitter.emit(event.type === 'progress' ? 'progress' : 'transfer', event);
    } catch (err) {
      // A listener's bug must not leave a transfer half-ended (its socket and file open, close()
      // waiting forever): it is reported as a warning instead.
      try {
        this.emitter.emit('warning', err instanceof Error ? err : new Error(String(err)));
      } catch {
        // a warning listener that throws too: nothing more to tell
      }
    }
  }

  /** Transfers currently running (requests being set up included). */
  get activeTransfers(): number {
    return this.slots.size;
  }

  /** Requests waiting for a transfer slot. */
  get waitingRequests(): number {
    return this.waiting.size;
  }

  /** Transfers whose socket or file is still open (a finished one may still be closing, in a worker). */
  get openTransfers(): number {
    return this.open.size;
  }

  /** What transfer sockets use: the native addon, or dgram and why (for a log line). */
  get socketIo(): { kind: 'native' | 'dgram'; reason?: string } {
    return transferSocketIo(this.cfg.address, this.nativeIo);
  }

  /** The bound address and port once listening. */
  get address(): Peer | undefined {
    const a = this.socket?.address();
    return a ? { address: a.address, port: a.port } : undefined;
  }

  private get socketType(): 'udp4' | 'udp6' {
    return this.cfg.address.includes(':') ? 'udp6' : 'udp4';
  }

  /**
   * Starts the workers if any (rejects if one cannot open the store), then binds the request
   * socket. Rejects with the bind error (code EADDRINUSE, EACCES, ...).
   */
  async listen(): Promise<Peer> {
    if (this.socket || this.listening) throw new Error('already listening');
    if (this.closing) throw new Error('server is closed');
    this.listening = true;
    if (this.pool) {
      try {
        await this.pool.start();
      } catch (err) {
        // Workers that did start must not outlive the failure.
        await this.pool.close();
        throw err;
      }
    }
    if (this.closing) throw new Error('server is closed');
    const socket = dgram.createSocket({ type: this.socketType });
    this.socket = socket;
    return new Promise<Peer>((resolve, reject) => {
      const onError = (err: Error): void => {
        // Bind failed: the socket is unusable and must still be closed to free its handle.
        this.socket = undefined;
        this.listening = false;
        socket.close();
        reject(err);
      };
      socket.once('error', onError);
      socket.bind({ address: this.cfg.address, port: this.cfg.port, exclusive: true }, () => {
        socket.off('error', onError);
        socket.on('error', (err) => this.emitter.emit('warning', err));
        socket.on('message', (msg, rinfo) => this.onRequest(msg, rinfo));
        resolve(this.address!);
      });
    });
  }

  /** Stops listening, ends every transfer, and resolves when all sockets and files are closed. */
  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  private async doClose(): Promise<void> {
    this.closing = true;
    this.poller.stop();
    const socket = this.socket;
    this.socket = undefined;
    const waits: Promise<void>[] = [];
    // Waiting clients are told, as running transfers are (abortAll); port 69 closes once the
    // ERRORs are out (a send completes after a tick; closing first would drop them).
    const told = this.waiting.clear().map((p) => new Promise<void>((resolve) => (socket ? socket.send(encodeError(ErrorCode.NOT_DEFINED, 'server shutting down'), p.peer.port, p.peer.address, () => resolve()) : resolve())));
    if (socket) waits.push(Promise.all(told).then(() => new Promise<void>((resolve) => socket.close(() => resolve()))));
    this.runner.abortAll('server shutting down');
    for (const slot of this.open) waits.push(slot.closed);
    // The pool aborts the workers' transfers and resolves once their threads have exited.
    if (this.pool) waits.push(this.pool.close());
    await Promise.all(waits);
  }

  private reply(peer: Peer, code: number, message: string): void {
    // Refusals go out from port 69 itself: no socket is spent on them, and clients take an
    // ERROR from any port as the answer to their request.
    this.socket?.send(encodeError(code, message), peer.port, peer.address);
  }

  private base(id: number, peer: Peer, req: RequestPacket): EventBase {
    const requested: Record<string, string> = {};
    for (const o of req.options) requested[o.name] ??= o.value;
    return { id, client: peer, file: req.filename, mode: req.mode, requested };
  }

  private refuse(peer: Peer, req: RequestPacket, code: number | undefined, message: string, quiet = false, clientMessage = message, id = this.nextId++, busy = false): void {
    if (code !== undefined) this.reply(peer, code, clientMessage);
    this.emit({ ...this.base(id, peer, req), type: 'error', stage: 'request', by: 'server', code, message, quiet, bytesSent: 0, durationMs: 0, ...(busy ? { busy } : {}) });
  }

  private onRequest(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closing || rinfo.port === 0) return;
    const op = peekOpcode(msg);
    // DATA/ACK/ERROR sent to port 69 belong to no transfer; answering them would only add noise.
    if (op !== Opcode.RRQ && op !== Opcode.WRQ) return;
    const peer: Peer = { address: rinfo.address, port: rinfo.port };
    let req: RequestPacket;
    try {
      req = decode(msg) as RequestPacket;
    } catch (err) {
      const why = err instanceof TftpDecodeError ? err.message : String(err);
      this.reply(peer, ErrorCode.ILLEGAL_OPERATION, `malformed request: ${why}`);
      const bad: RequestPacket = { op: op as RequestPacket['op'], filename: '', mode: '', options: [] };
      this.emit({ ...this.base(this.nextId++, peer, bad), type: 'error', stage: 'request', by: 'server', code: ErrorCode.ILLEGAL_OPERATION, message: `malformed request: ${why}`, quiet: false, bytesSent: 0, durationMs: 0 });
      return;
    }
    if (req.op === Opcode.WRQ) {
      this.refuse(peer, req, ErrorCode.ACCESS_VIOLATION, 'write refused: this server is read-only', false, 'Access violation: writes are not allowed');
      return;
    }
    if (req.mode !== 'octet' && req.mode !== 'netascii') {
      this.refuse(peer, req, ErrorCode.ILLEGAL_OPERATION, `unsupported transfer mode "${req.mode}"`);
      return;
    }
    const key = `${peer.address}:${peer.port}`;
    const known = this.slots.get(key);
    if (known) {
      // A client that resends its request while we set up answers to the transfer in progress:
      // ignored (a resent RRQ is byte-identical). Any other request from the same port is the
      // client's next one: after its last ACK, or after it declined our OACK (a PXE ROM's tsize
      // probe, then the real request). A worker reports the end a moment after it happened, so
      // the request waits for it instead of being lost. Once an OACK was acknowledged even an
      // identical request is a new one.
      if (!msg.equals(known.raw) || (known.started && known.req.options.length > 0)) known.queued = { msg, rinfo };
      return;
    }
    const pending: Pending = { key, peer, req, raw: msg };
    // A client resending while it waits for a slot: still the one request, in its place in line.
    if (this.waiting.has(key)) {
      this.waiting.offer(key, pending);
      return;
    }
    // Over the per-client limit the request is dropped unanswered: a PXE ROM resends it and is
    // served once one of its own transfers ends, where an ERROR would abort its boot.
    const n = this.perClient.get(peer.address) ?? 0;
    if (n >= this.cfg.maxPerClient) {
      this.refuse(peer, req, undefined, `too many transfers from ${peer.address} (limit ${this.cfg.maxPerClient}): request dropped`);
      return;
    }
    // Every slot taken (or others already waiting: first come, first served): wait in line.
    if (this.slots.size >= this.cfg.maxTransfers || this.waiting.size > 0) {
      if (this.waiting.offer(key, pending) === 'full') {
        const message = `too many transfers (limit ${this.cfg.maxTransfers}) and ${this.cfg.maxWaiting} requests waiting: refused`;
        this.refuse(peer, req, ErrorCode.NOT_DEFINED, message, false, 'Server busy: all transfer slots taken, try again later', this.nextId++, true);
        return;
      }
      this.perClient.set(peer.address, n + 1);
      return;
    }
    this.perClient.set(peer.address, n + 1);
    this.begin(pending);
  }

  /** Starts a transfer for a request within the limits (already counted in perClient). */
  private begin({ key, peer, req, raw }: Pending): void {
    let release!: () => void;
    const slot: Slot = {
      id: this.nextId++,
      key,
      peer,
      req,
      raw,
      started: false,
      startedAt: Date.now(),
      closed: new Promise<void>((r) => (release = r)),
    };
    this.slots.set(key, slot);
    this.open.add(slot);
    void this.run(slot).finally(() => {
      this.forget(slot);
      this.open.delete(slot);
      release();
    });
  }

  /**
   * Takes a transfer out of the limits and the duplicate check as soon as its outcome is known:
   * a client may send its next request from the same port right after its last ACK.
   */
  private forget(slot: Slot): void {
    if (this.slots.get(slot.key) !== slot) return;
    this.slots.delete(slot.key);
    this.unclaim(slot.peer.address);
    const next = slot.queued;
    slot.queued = undefined;
    if (next) this.onRequest(next.msg, next.rinfo);
    this.admit();
  }

  /** Starts waiting requests, oldest first, while slots are free. */
  private admit(): void {
    while (!this.closing && this.slots.size < this.cfg.maxTransfers) {
      const p = this.waiting.take();
      if (!p) return;
      this.begin(p);
    }
  }

  private unclaim(address: string): void {
    const left = (this.perClient.get(address) ?? 1) - 1;
    if (left > 0) this.perClient.set(address, left);
    else this.perClient.delete(address);
  }

  /** Hands the job to a worker or runs it here; resolves when its socket and file are closed. */
  private run(slot: Slot): Promise<void> {
    const report = (ev: JobEvent): void => this.onJob(slot, ev);
    const job: TransferJob = { id: slot.id, peer: slot.peer, req: slot.req };
    // A few transfers run here even with workers: a lone transfer (the common PXE boot) then
    // skips the hop to a worker and has this thread's poller to itself; the rest go to workers.
    if (this.pool && this.localJobs >= this.localTransfers) return this.pool.run(job, report);
    this.localJobs++;
    return this.runner.run(job, report).finally(() => this.localJobs--);
  }

  /** A job's event, from this thread's runner or a worker's: the one place it becomes a TftpEvent. */
  private onJob(slot: Slot, ev: JobEvent): void {
    const { peer, req } = slot;
    switch (ev.type) {
      case 'refused':
        this.forget(slot);
        if (ev.code === 'ENOENT' || ev.code === 'ENOTDIR' || ev.code === 'EISDIR') {
          this.refuse(peer, req, ErrorCode.FILE_NOT_FOUND, ev.message, true, 'File not found', slot.id);
        } else if (ev.code === 'EINVAL' || ev.code === 'EACCES') {
          this.refuse(peer, req, ErrorCode.ACCESS_VIOLATION, `refused: ${ev.message}`, false, 'Access violation', slot.id);
        } else {
          this.refuse(peer, req, ErrorCode.NOT_DEFINED, `cannot open ${req.filename}: ${ev.message}`, false, 'cannot read file', slot.id);
        }
        break;
      case 'failed':
        this.forget(slot);
        this.reply(peer, ErrorCode.NOT_DEFINED, 'server error');
        this.emit({ ...this.base(slot.id, peer, req), type: 'error', stage: 'request', by: 'server', code: ErrorCode.NOT_DEFINED, message: ev.message, quiet: false, bytesSent: 0, durationMs: Date.now() - slot.startedAt });
        break;
      case 'started':
        slot.started = true;
        slot.size = ev.size;
        this.emit({ ...this.base(slot.id, peer, req), size: ev.size, type: 'start', options: ev.options });
        break;
      case 'progress':
        // A report that crossed the end (from a worker) is dropped: the end is already out.
        if (!slot.started || this.slots.get(slot.key) !== slot || this.closing) return;
        this.emit({ ...this.base(slot.id, peer, req), size: slot.size, type: 'progress', bytesSent: ev.bytes, durationMs: Date.now() - slot.startedAt });
        break;
      case 'ended':
        this.forget(slot);
        this.report(slot, ev.result);
        break;
    }
  }

  private report(slot: Slot, r: JobResult): void {
    const base = { ...this.base(slot.id, slot.peer, slot.req), size: r.size };
    const durationMs = Date.now() - slot.startedAt;
    const { options, outcome } = r;
    switch (outcome.kind) {
      case 'done':
        this.emit({ ...base, type: 'done', options, bytesSent: r.bytesAcked, durationMs, packetsSent: r.packetsSent, retransmits: r.retransmits });
        break;
      case 'declined':
        this.emit({ ...base, type: 'declined', options, code: outcome.code, message: outcome.message, durationMs });
        break;
      case 'error':
        this.emit({ ...base, type: 'error', stage: 'transfer', by: outcome.by, code: outcome.code, message: outcome.message, quiet: false, options, bytesSent: r.bytesAcked, durationMs });
        break;
    }
  }
}
