/**
 * A read-only NFS v3 server over a FileStore: the NFS program, MOUNT, and a portmapper of its own
 * (or a registration with the system's rpcbind), each on UDP and TCP. It knows nothing of
 * Node-RED. See README.md in this folder for one request's path through it.
 *
 * Memory bounds (all replies count, READ data included):
 * - per TCP connection: at most `maxInflightPerConnection` calls running (16), and no new call is
 *   parsed while the bytes of its replies reserved or queued unsent reach
 *   `maxQueuedBytesPerConnection` (4 MiB): the socket is paused, so a client that sends READs and
 *   never reads the replies fills its own TCP window, not our heap. A call's reply bound (a READ's
 *   count, at most rtmax = 1 MiB) is reserved before the call runs, so one connection holds at
 *   most 4 MiB + 1 MiB + a little.
 * - over all connections: a ReplyBudget of reserved + queued reply bytes. Each connection has a
 *   reserve of its own (`reservedReplyBytes`, one largest reply: 1 MiB + 4 KiB), so it can always
 *   have one call running whatever other clients hold; beyond it, it borrows from one shared pool
 *   (`sharedReplyBytes`, 32 MiB), and a call waits (in order, per connection) while the pool is
 *   short. All together: at most maxConnections × reservedReplyBytes + sharedReplyBytes (64 ×
 *   1 MiB + 4 KiB + 32 MiB ≈ 96.3 MiB by default), plus small already-built refusals. A connection
 *   whose queued replies make no progress for `stallTimeoutMs` (60 s) is closed, which returns
 *   what it holds.
 * - incoming: a TCP record over `maxCallBytes` (256 KiB; we advertise wtmax 64 KiB and never
 *   accept writes) closes the connection before anything is allocated for it.
 * - UDP: at most `maxUdpInflight` (64) calls at once per socket, replies ≤ 65,507 bytes (READ
 *   ≤ 32 KiB of data); datagrams beyond that, or that do not decode, are dropped and counted.
 * - at most `maxConnections` TCP connections over all ports (64); more are closed at once.
 * - open files: FileCache (64); read progress: ReadTracker (128 client+file pairs, ≤ 32 KiB
 *   each); handle index: HandleIndex (200,000 paths); mounts: MountProgram (1024).
 */
import * as dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import type { FileStore } from '../store/types';
import { ReplyAccount, ReplyBudget } from '../reply-budget';
import { ReadTracker, type ReadProgress } from './coverage';
import { dispatch, replyBound, type ConnectionSession, type RpcContext, type RpcProgram } from './dispatch';
import { FileCache } from './file-cache';
import { HandleIndex, type HandleIndexOptions } from './handles';
import { MountProgram } from './mount';
import { Nfs3Program, TCP_RTMAX } from './nfs3';
import { IPPROTO_TCP, IPPROTO_UDP, MOUNT_PROG, NFS_PROG, NFS_V3, PMAP_PROG } from './nfs3-const';
import { PMAP_VERS, pmapGetport, pmapSet, pmapUnset, PortmapProgram, type PortMapping } from './portmap';
import { ReplyPool } from './reply-pool';
import { messageOf, parseCall, RecordDecoder, RecordError, setRecordMark, type RpcCall } from './rpc';

export interface NfsServerOptions {
  store: FileStore;
  /** Paths clients mount; all name the store root (default ['/run/archiso/bootmnt', '/']). */
  exportPaths?: string[];
  /** TCP connections at once over all ports (default 64); more are closed at once + 'refused'. */
  maxConnections?: number;
  /** Least time between two 'read' events of one client+file (default 1000 ms). */
  progressIntervalMs?: number;
  /** Calls running at once on one TCP connection (default 16). */
  maxInflightPerConnection?: number;
  /** Reply bytes reserved or unsent on one connection before it stops being read (default 4 MiB). */
  maxQueuedBytesPerConnection?: number;
  /**
   * Reply bytes reserved or unsent that each TCP connection may always hold, whatever the others
   * hold (default and least: one largest reply, TCP_MAX_REPLY = 1 MiB + 4 KiB).
   */
  reservedReplyBytes?: number;
  /** Reply bytes that connections past their reserve borrow from, all together (default 32 MiB). */
  sharedReplyBytes?: number;
  /** Largest TCP record (call) accepted (default 256 KiB). */
  maxCallBytes?: number;
  /** A TCP connection with nothing running or queued is closed after this long (default 6 min, as Linux nfsd). */
  idleTimeoutMs?: number;
  /** A TCP connection whose queued replies do not move for this long is closed (default 60 s). */
  stallTimeoutMs?: number;
  /** Calls running at once per UDP socket; more datagrams are dropped (default 64). */
  maxUdpInflight?: number;
  /** Bounds of the file handle index (see HandleIndex). */
  handleIndex?: HandleIndexOptions;
  /** Open files kept between reads (default 64). */
  maxOpenFiles?: number;
}

export interface NfsListenOptions {
  /** '' / undefined = 0.0.0.0 */
  address?: string;
  /** default 2049; 0 = any free port */
  nfsPort?: number;
  /** default 20048; 0 = any free port */
  mountPort?: number;
  /** default 111 */
  portmapPort?: number;
  /**
   * default 'auto': serve the portmapper ourselves on portmapPort (UDP+TCP); if that port is in
   * use (or may not be bound: EACCES), register NFS/MOUNT (v1–v3) over UDP and TCP with the
   * rpcbind/portmapper at 127.0.0.1:portmapPort and unregister on close.
   */
  portmap?: 'auto' | 'own' | 'rpcbind' | 'off';
}

export interface NfsListening {
  address: string;
  nfsPort: number;
  mountPort: number;
  portmap: { mode: 'own' | 'rpcbind' | 'off'; port: number | null };
}

export interface NfsClientInfo {
  address: string;
  port: number;
}

export interface NfsMountEvent extends NfsClientInfo {
  path: string;
}

export interface NfsReadProgress extends ReadProgress {
  address: string;
  /** Store path, no leading slash. */
  path: string;
  /** Distinct bytes of this file this client has read, ≤ size. */
  bytes: number;
  size: number;
  /** bytes / size, 1 for 0-byte files. */
  share: number;
  /** Every byte read at least once. */
  done: boolean;
}

export interface NfsServerEvents {
  mount: [NfsMountEvent];
  umount: [NfsMountEvent];
  read: [NfsReadProgress];
  clientError: [NfsClientInfo & { message: string }];
  refused: [NfsClientInfo & { max: number }];
}

export interface NfsServerStats {
  /** Reply bytes reserved or queued unsent now, over all TCP connections. */
  replyBytes: number;
  /** The most ever reserved or queued at once. */
  replyBytesPeak: number;
  /** Connections whose calls wait for shared reply bytes now. */
  budgetWaiters: number;
  /** UDP datagrams dropped (undecodable, or over maxUdpInflight). */
  droppedDatagrams: number;
  /** TCP records that were not answerable calls (dropped). */
  droppedRecords: number;
  connections: number;
  openFiles: number;
  indexedPaths: number;
  storeWalks: number;
  /** READs answered from a read ahead (sequential one-at-a-time readers). */
  readAheadHits: number;
}

/** IPv4 clients of a dual-stack socket show as ::ffff:a.b.c.d; events carry the plain address. */
function plainAddress(address: string | undefined): string {
  return (address ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
}

/** The largest UDP payload over IPv4. */
const UDP_MAX_REPLY = 65507;
/** The largest TCP reply: a READ of rtmax plus headers. */
export const TCP_MAX_REPLY = TCP_RTMAX + 4096;

type Resolved = Required<Omit<NfsServerOptions, 'store' | 'exportPaths' | 'handleIndex'>>;

interface Endpoint {
  role: string;
  port: number;
  tcp: net.Server;
  udp: dgram.Socket;
  programs: Map<number, RpcProgram>;
  udpInflight: number;
}

function positive(v: number | undefined, dflt: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 1 ? Math.floor(v) : dflt;
}

function withPort(err: unknown, port: number): Error {
  const e = err as NodeJS.ErrnoException & { port?: number };
  if (e && typeof e === 'object' && e.port === undefined) e.port = port;
  return e;
}

/** Whether something accepts TCP connections on 127.0.0.1:port (is a registration stale?). */
function tcpAlive(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    const done = (alive: boolean): void => {
      s.destroy();
      resolve(alive);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export class NfsServer extends EventEmitter<NfsServerEvents> {
  readonly store: FileStore;
  readonly opts: Resolved;
  readonly handles: HandleIndex;
  readonly files: FileCache;
  readonly budget: ReplyBudget;
  /**
   * READ reply buffers, reused once written. Up to the shared pool's size (32 MiB) is kept idle (for
   * 10 s): with many readers, buffers the pool could not take back were left to the garbage
   * collector, which frees them late (server RSS grew ~150 MiB with 20 readers).
   */
  readonly pool: ReplyPool;
  private readonly tracker: ReadTracker;
  private readonly nfs: Nfs3Program;
  private readonly mount: MountProgram;
  private readonly portmap = new PortmapProgram();
  private endpoints: Endpoint[] = [];
  private readonly conns = new Set<Connection>();
  private readonly udpPending = new Set<Promise<void>>();
  private registered: { prog: number; vers: number }[] = [];
  private rpcbindPort = 0;
  private state: 'idle' | 'binding' | 'listening' | 'closed' = 'idle';
  private binding: Promise<unknown> | undefined;
  private closing: Promise<void> | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private dropped = 0;
  droppedRecords = 0;

  constructor(options: NfsServerOptions) {
    super();
    if (!options || !options.store) throw new Error('an NFS server needs a store');
    this.store = options.store;
    this.opts = {
      maxConnections: positive(options.maxConnections, 64),
      progressIntervalMs: typeof options.progressIntervalMs === 'number' && options.progressIntervalMs >= 0 ? options.progressIntervalMs : 1000,
      maxInflightPerConnection: positive(options.maxInflightPerConnection, 16),
      maxQueuedBytesPerConnection: positive(options.maxQueuedBytesPerConnection, 4 * 1024 * 1024),
      reservedReplyBytes: Math.max(TCP_MAX_REPLY, positive(options.reservedReplyBytes, TCP_MAX_REPLY)),
      sharedReplyBytes: positive(options.sharedReplyBytes, 32 * 1024 * 1024),
      maxCallBytes: positive(options.maxCallBytes, 256 * 1024),
      idleTimeoutMs: positive(options.idleTimeoutMs, 6 * 60_000),
      stallTimeoutMs: positive(options.stallTimeoutMs, 60_000),
      maxUdpInflight: positive(options.maxUdpInflight, 64),
      maxOpenFiles: positive(options.maxOpenFiles, 64),
    };
    this.handles = new HandleIndex(this.store, options.handleIndex);
    this.files = new FileCache(this.store, { max: this.opts.maxOpenFiles });
    this.budget = new ReplyBudget(this.opts.reservedReplyBytes, this.opts.sharedReplyBytes);
    this.pool = new ReplyPool(this.opts.sharedReplyBytes);
    this.tracker = new ReadTracker(this.opts.progressIntervalMs, (p) => this.notify('read', p));
    this.nfs = new Nfs3Program({
      store: this.store,
      handles: this.handles,
      files: this.files,
      pool: this.pool,
      onRead: (ctx, path, offset, length, size) => this.tracker.record(ctx.address, path, offset, length, size),
    });
    this.mount = new MountProgram({
      store: this.store,
      handles: this.handles,
      exportPaths: options.exportPaths,
      onMount: (m) => {
        this.tracker.resetClient(m.address); // a new mount is a new boot: progress starts over
        this.notify('mount', m);
      },
      onUmount: (m) => this.notify('umount', m),
    });
  }

  get mountCount(): number {
    return this.mount.mountCount;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** The exports as served (normalised). */
  get exports(): string[] {
    return [...this.mount.exports];
  }

  get stats(): NfsServerStats {
    return {
      replyBytes: this.budget.used,
      replyBytesPeak: this.budget.peak,
      budgetWaiters: this.budget.waiting,
      droppedDatagrams: this.dropped,
      droppedRecords: this.droppedRecords,
      connections: this.conns.size,
      openFiles: this.files.openCount,
      indexedPaths: this.handles.size,
      storeWalks: this.handles.walks,
      readAheadHits: this.nfs.readAheadHits,
    };
  }

  /** Binds every port; on any failure closes what was opened and rejects with the original error. */
  listen(o: NfsListenOptions = {}): Promise<NfsListening> {
    if (this.state !== 'idle') return Promise.reject(new Error(this.state === 'closed' ? 'the NFS server is closed' : 'the NFS server is already listening'));
    this.state = 'binding';
    const p = this.doListen(o).then(
      (l) => {
        this.state = 'listening';
        return l;
      },
      async (err) => {
        await this.releaseNetwork();
        if (this.state === 'binding') this.state = 'idle';
        throw err;
      },
    );
    this.binding = p.catch(() => undefined);
    return p;
  }

  private async doListen(o: NfsListenOptions): Promise<NfsListening> {
    const host = o.address || '0.0.0.0';
    const mode = o.portmap ?? 'auto';
    const nfsEp = await this.bindEndpoint('nfs', host, o.nfsPort ?? 2049, [this.nfs]);
    let mountEp: Endpoint;
    const mountPort = o.mountPort ?? 20048;
    if (mountPort !== 0 && mountPort === nfsEp.port) {
      nfsEp.programs.set(MOUNT_PROG, this.mount);
      mountEp = nfsEp;
    } else {
      mountEp = await this.bindEndpoint('mount', host, mountPort, [this.mount]);
    }
    const services: PortMapping[] = [];
    for (const prot of [IPPROTO_TCP, IPPROTO_UDP]) {
      for (const vers of [1, 2, 3]) services.push({ prog: MOUNT_PROG, vers, prot, port: mountEp.port });
      services.push({ prog: NFS_PROG, vers: NFS_V3, prot, port: nfsEp.port });
    }
    const pmPort = o.portmapPort ?? 111;
    let portmap: NfsListening['portmap'];
    if (mode === 'off') {
      portmap = { mode: 'off', port: null };
    } else if (mode === 'rpcbind') {
      await this.registerWithRpcbind(pmPort, services);
      portmap = { mode: 'rpcbind', port: pmPort };
    } else {
      let own: Endpoint | undefined;
      let bindError: NodeJS.ErrnoException | undefined;
      try {
        own = await this.bindEndpoint('portmap', host, pmPort, [this.portmap]);
      } catch (err) {
        bindError = err as NodeJS.ErrnoException;
        // 'auto': a port in use is most likely rpcbind's; without the privilege to bind port 111
        // (EACCES comes before EADDRINUSE) a running rpcbind still takes our registration.
        if (mode === 'own' || !['EADDRINUSE', 'EACCES', 'EPERM'].includes(bindError.code ?? '')) throw err;
      }
      if (own) {
        for (const prot of [IPPROTO_TCP, IPPROTO_UDP]) this.portmap.set({ prog: PMAP_PROG, vers: PMAP_VERS, prot, port: own.port });
        for (const m of services) this.portmap.set(m);
        portmap = { mode: 'own', port: own.port };
      } else {
        try {
          await this.registerWithRpcbind(pmPort, services);
        } catch (err) {
          // Nobody to register with: the missing privilege is the error worth reporting.
          throw bindError && bindError.code !== 'EADDRINUSE' ? bindError : err;
        }
        portmap = { mode: 'rpcbind', port: pmPort };
      }
    }
    const period = Math.min(this.opts.stallTimeoutMs, this.opts.idleTimeoutMs) / 4;
    this.sweeper = setInterval(() => this.sweep(), Math.min(5000, Math.max(50, Math.floor(period))));
    this.sweeper.unref();
    return { address: host, nfsPort: nfsEp.port, mountPort: mountEp.port, portmap };
  }

  /** Registers our services with the portmapper at 127.0.0.1:port (a system rpcbind). */
  private async registerWithRpcbind(port: number, services: PortMapping[]): Promise<void> {
    const opts = { port };
    this.rpcbindPort = port;
    for (const m of services) {
      const key = { prog: m.prog, vers: m.vers };
      const mine = (): boolean => this.registered.some((r) => r.prog === m.prog && r.vers === m.vers);
      if (await pmapSet(m, opts)) {
        if (!mine()) this.registered.push(key);
        continue;
      }
      const current = await pmapGetport(m.prog, m.vers, m.prot, opts);
      if (current === m.port) {
        if (!mine()) this.registered.push(key); // left by an earlier run of ours on the same port
        continue;
      }
      // Someone else's, or a stale entry of a server that is gone: replace only the latter.
      if (current !== 0 && (await tcpAlive(current))) {
        const err = new Error(`the portmapper on port ${port} already maps program ${m.prog} version ${m.vers} to port ${current}, where another server answers`) as NodeJS.ErrnoException & { port?: number };
        err.code = 'EADDRINUSE';
        err.port = port;
        throw err;
      }
      if (!mine()) await pmapUnset(m.prog, m.vers, opts);
      if (!(await pmapSet(m, opts))) throw new Error(`the portmapper on port ${port} refused to register program ${m.prog} version ${m.vers}`);
      if (!mine()) this.registered.push(key);
    }
  }

  private async unregisterFromRpcbind(): Promise<void> {
    const regs = this.registered;
    this.registered = [];
    for (const r of regs) {
      try {
        await pmapUnset(r.prog, r.vers, { port: this.rpcbindPort, tries: 2, timeoutMs: 300 });
      } catch {
        // rpcbind gone: nothing left to undo
      }
    }
  }

  private async bindEndpoint(role: string, host: string, port: number, programs: RpcProgram[]): Promise<Endpoint> {
    // With port 0 the TCP port is chosen first and UDP must get the same number: retry if taken.
    for (let attempt = 0; ; attempt++) {
      const tcp = net.createServer({ allowHalfOpen: true, noDelay: true });
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ port, host }, () => {
          tcp.off('error', reject);
          resolve();
        });
      }).catch((err) => {
        throw withPort(err, port);
      });
      const actual = (tcp.address() as net.AddressInfo).port;
      const udp = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
      try {
        await new Promise<void>((resolve, reject) => {
          udp.once('error', reject);
          udp.bind({ port: actual, address: host, exclusive: true }, () => {
            udp.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        await new Promise<void>((r) => tcp.close(() => r()));
        try {
          udp.close();
        } catch {
          // not bound
        }
        if (port === 0 && attempt < 20 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
        throw withPort(err, actual);
      }
      const ep: Endpoint = { role, port: actual, tcp, udp, programs: new Map(programs.map((p) => [p.prog, p])), udpInflight: 0 };
      tcp.on('connection', (s) => this.accept(ep, s));
      tcp.on('error', () => undefined);
      udp.on('message', (msg, rinfo) => this.onDatagram(ep, msg, rinfo));
      udp.on('error', () => undefined);
      this.endpoints.push(ep);
      return ep;
    }
  }

  private accept(ep: Endpoint, socket: net.Socket): void {
    const info = { address: plainAddress(socket.remoteAddress), port: socket.remotePort ?? 0 };
    if (this.state !== 'listening' && this.state !== 'binding') {
      socket.destroy();
      return;
    }
    if (this.conns.size >= this.opts.maxConnections) {
      socket.destroy();
      this.notify('refused', { ...info, max: this.opts.maxConnections });
      return;
    }
    const conn = new Connection(this, ep.programs, socket, info);
    this.conns.add(conn);
    void conn.done.then(() => this.conns.delete(conn));
  }

  private onDatagram(ep: Endpoint, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (ep.udpInflight >= this.opts.maxUdpInflight || this.state === 'closed') {
      this.dropped++;
      return;
    }
    const parsed = parseCall(msg);
    if (parsed.kind === 'drop') {
      this.dropped++;
      return;
    }
    const send = (reply: Buffer | null): void => {
      if (!reply || this.state === 'closed') return;
      ep.udp.send(messageOf(reply), rinfo.port, rinfo.address, () => this.pool.release(reply));
    };
    if (parsed.kind === 'deny') {
      send(parsed.reply);
      return;
    }
    const ctx: RpcContext = { transport: 'udp', address: plainAddress(rinfo.address), port: rinfo.port, maxReply: UDP_MAX_REPLY };
    ep.udpInflight++;
    const p = dispatch(ep.programs, parsed.call, ctx, (err) => this.reportError(ctx, err.message))
      .then(send, () => undefined)
      .finally(() => {
        ep.udpInflight--;
        this.udpPending.delete(p);
      });
    this.udpPending.add(p);
  }

  reportError(info: { address: string; port?: number }, message: string): void {
    try {
      this.emit('clientError', { address: info.address, port: info.port ?? 0, message });
    } catch {
      // a listener's failure is not the client's
    }
  }

  /**
   * Emits an event from inside the protocol code: a listener that throws must not turn a READ
   * into an I/O error or a MNT into SYSTEM_ERR, so its error is reported as a clientError instead.
   */
  private notify<K extends 'read' | 'mount' | 'umount' | 'refused'>(event: K, payload: NfsServerEvents[K][0]): void {
    try {
      (this.emit as (e: string, p: unknown) => boolean)(event, payload);
    } catch (err) {
      this.reportError(payload, `a '${event}' listener failed: ${(err as Error).message}`);
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const c of this.conns) c.check(now, this.opts.idleTimeoutMs, this.opts.stallTimeoutMs);
  }

  /** Unregisters from rpcbind, closes every socket and connection, waits for running calls. */
  private async releaseNetwork(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    await this.unregisterFromRpcbind();
    const eps = this.endpoints;
    this.endpoints = [];
    const closed = eps.map(
      (ep) =>
        new Promise<void>((resolve) => {
          let n = 2;
          const one = (): void => {
            if (--n === 0) resolve();
          };
          if (ep.tcp.listening) ep.tcp.close(() => one());
          else one();
          try {
            ep.udp.close(() => one());
          } catch {
            one();
          }
        }),
    );
    await Promise.all([...this.conns].map((c) => c.destroy()));
    await Promise.all(closed);
    while (this.udpPending.size) await Promise.allSettled([...this.udpPending]);
  }

  /** Closes every socket and connection, unregisters from rpcbind, closes open store files. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.binding;
      this.state = 'closed';
      // Closing connections refuses their calls waiting for budget; running ones finish (their
      // replies are not sent).
      await this.releaseNetwork();
      this.tracker.close();
      await this.handles.idle();
      await this.files.close();
      this.pool.clear();
    })();
    return this.closing;
  }
}

/** One TCP connection: records in, calls dispatched (several at once), replies out as they finish. */
class Connection implements ConnectionSession {
  readonly done: Promise<void>;
  private readonly decoder: RecordDecoder;
  private readonly ctx: RpcContext;
  /** Calls running now. */
  inflight = 0;
  /** Budget bytes held by calls that are running (and a read ahead). */
  private reserved = 0;
  /** This connection's share of the server's reply budget: reserved + queued. */
  private readonly account: ReplyAccount;
  /** Bytes written to the socket and not yet handed to the kernel. */
  private queued = 0;
  private paused = false;
  closed = false;
  private readonly closeHooks: (() => void)[] = [];
  private peerEnded = false;
  private ending = false;
  private lastActivity = Date.now();
  private lastProgress = Date.now();
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly server: NfsServer,
    private readonly programs: ReadonlyMap<number, RpcProgram>,
    private readonly socket: net.Socket,
    info: NfsClientInfo,
  ) {
    this.ctx = { transport: 'tcp', address: info.address, port: info.port, maxReply: TCP_MAX_REPLY, session: this };
    this.decoder = new RecordDecoder(server.opts.maxCallBytes);
    this.account = new ReplyAccount(server.budget);
    this.done = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      this.lastActivity = Date.now();
      this.decoder.push(d);
      this.pump();
    });
    socket.on('end', () => {
      this.peerEnded = true;
      this.pump();
    });
    socket.on('drain', () => this.pump());
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', () => this.onClosed());
  }

  private get busy(): boolean {
    const o = this.server.opts;
    return this.inflight >= o.maxInflightPerConnection || this.reserved + this.queued >= o.maxQueuedBytesPerConnection || this.socket.writableLength >= o.maxQueuedBytesPerConnection;
  }

  /** Parses and starts as many calls as the limits allow; pauses the socket when they do not. */
  private pump(): void {
    if (this.closed) return;
    try {
      while (!this.busy) {
        const rec = this.decoder.next();
        if (!rec) break;
        this.onRecord(rec);
      }
    } catch (err) {
      // RecordError (a record over the limit), or anything unforeseen: this connection ends.
      this.server.reportError(this.ctx, err instanceof RecordError ? err.message : `closed: ${(err as Error).message}`);
      this.socket.destroy();
      return;
    }
    const wantPause = this.busy;
    if (wantPause && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!wantPause && this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    // The client shut its side: answer what it asked, then end ours (a partial record is dropped).
    if (this.peerEnded && !this.ending && this.inflight === 0 && !this.busy) {
      this.ending = true;
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 5000).unref();
    }
  }

  private onRecord(rec: Buffer): void {
    const parsed = parseCall(rec);
    if (parsed.kind === 'drop') {
      this.server.droppedRecords++;
      return;
    }
    if (parsed.kind === 'deny') {
      this.account.force(parsed.reply.length);
      this.send(parsed.reply);
      return;
    }
    const bound = replyBound(this.programs, parsed.call, this.ctx);
    this.inflight++;
    this.reserved += bound;
    const p = this.run(parsed.call, bound).finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  private async run(call: RpcCall, bound: number): Promise<void> {
    const budget = this.account;
    let granted = false;
    let reply: Buffer | null = null;
    try {
      await budget.acquire(bound);
      granted = true;
      if (!this.closed) reply = await dispatch(this.programs, call, this.ctx, (err) => this.server.reportError(this.ctx, err.message));
    } catch {
      reply = null; // the connection closed while the call waited
    } finally {
      this.inflight--;
      this.reserved -= bound;
      if (reply && !this.closed) {
        // Hand the reservation over to the queued reply (its real size).
        if (granted) {
          if (reply.length <= bound) budget.release(bound - reply.length);
          else budget.force(reply.length - bound);
        } else {
          budget.force(reply.length);
        }
        this.send(reply);
      } else if (granted) {
        budget.release(bound);
      }
      this.pump();
    }
  }

  /** Writes one reply, record mark included, as one Buffer (klibc reads a reply with one read()). */
  private send(reply: Buffer): void {
    const len = reply.length;
    if (this.queued === 0) this.lastProgress = Date.now();
    this.queued += len;
    setRecordMark(reply);
    this.socket.write(reply, () => {
      this.server.pool.release(reply);
      if (this.closed) return; // onClose returned what was still queued
      this.queued -= len;
      this.account.release(len);
      this.lastProgress = Date.now();
      this.lastActivity = this.lastProgress;
      this.pump();
    });
  }

  // ConnectionSession: what programs may do with this connection (nfs3's read ahead).

  tryReserve(n: number): boolean {
    if (this.closed || this.reserved + this.queued + n > this.server.opts.maxQueuedBytesPerConnection) return false;
    // Optional work (a read ahead) only while the server's reply bytes stay under half the shared
    // pool (16 MiB by default): with many readers the replies themselves keep the pipe full, and
    // memory stays low (each one's reserve would otherwise hold a read ahead beside its reply).
    const budget = this.server.budget;
    if (budget.used + n > budget.shared / 2) return false;
    if (!this.account.tryAcquire(n)) return false;
    this.reserved += n;
    return true;
  }

  unreserve(n: number): void {
    this.reserved -= n;
    this.account.release(n);
    this.pump();
  }

  track(p: Promise<unknown>): void {
    const q: Promise<void> = p.then(
      () => undefined,
      () => undefined,
    );
    this.pending.add(q);
    void q.then(() => this.pending.delete(q));
  }

  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closeHooks.push(fn);
  }

  /** Called by the server's sweeper: idle and stalled connections are closed. */
  check(now: number, idleMs: number, stallMs: number): void {
    if (this.closed) return;
    if (this.queued > 0 && now - this.lastProgress >= stallMs) {
      this.server.reportError(this.ctx, `closed: ${this.queued} bytes of replies unread for ${Math.round((now - this.lastProgress) / 1000)} s`);
      this.socket.destroy();
    } else if (this.queued === 0 && this.inflight === 0 && now - this.lastActivity >= idleMs) {
      this.socket.destroy();
    }
  }

  /** Drops the connection and waits for its socket and running calls. */
  async destroy(): Promise<void> {
    this.socket.destroy();
    await this.done;
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  private onClosed(): void {
    this.closed = true;
    if (this.queued > 0) this.account.release(this.queued);
    this.queued = 0;
    this.account.close();
    for (const fn of this.closeHooks.splice(0)) fn();
  }
}
