/**
 * The optional native UDP addon (native/pxe_udp.c, built by scripts/build-native.mjs at install):
 * connected IPv4 sockets whose datagrams reach JavaScript in batches, one callback per event-loop
 * turn for all of them, instead of one callback per datagram as with dgram. Loaded once per
 * thread (each worker thread gets its own instance); null when it was not built, cannot load, or
 * PXE_NO_NATIVE is set, and callers then use dgram.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

interface Addon {
  init(onBatch: (count: number) => void): { buffer: Buffer; records: Int32Array; batch: number; slot: number };
  open(local: string, peer: string, port: number): number;
  send(fd: number, data: Buffer): number;
  close(fd: number): void;
  /** Missing from an addon built before it existed (the caller then reads the usual way). */
  preadNowait?(fd: number, buffer: Buffer, offset: number, length: number, position: number): number;
}

/** What a socket's owner is told; `data` is only valid during the call (the buffer is reused). */
export interface NativeHandlers {
  message(data: Buffer): void;
  /** An errno from receiving (ECONNREFUSED: an ICMP port unreachable came back). */
  error(code: string, errno: number): void;
}

const ERRNO_NAMES = new Map(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));
export const errnoName = (errno: number): string => ERRNO_NAMES.get(errno) ?? `errno ${errno}`;

export class NativeUdp {
  private readonly handlers = new Map<number, NativeHandlers>();
  private readonly buffer: Buffer;
  private readonly records: Int32Array;

  constructor(private readonly addon: Addon) {
    const shared = addon.init(this.onBatch);
    this.buffer = shared.buffer;
    this.records = shared.records;
  }

  /** Sockets open now. */
  get open(): number {
    return this.handlers.size;
  }

  /** A socket bound to `local` on a free port and connected to the peer; throws with `code` set. */
  connect(local: string, peerAddress: string, peerPort: number, handlers: NativeHandlers): number {
    const fd = this.addon.open(local, peerAddress, peerPort);
    this.handlers.set(fd, handlers);
    return fd;
  }

  /** 0, or a negative errno (EAGAIN/ENOBUFS: dropped like a lost packet). */
  send(fd: number, data: Buffer): number {
    return this.handlers.has(fd) ? this.addon.send(fd, data) : -os.constants.errno.EBADF;
  }

  close(fd: number): void {
    if (!this.handlers.delete(fd)) return;
    this.addon.close(fd);
  }

  private readonly onBatch = (count: number): void => {
    const r = this.records;
    let failure: { err: unknown } | undefined;
    for (let i = 0; i < count; i++) {
      const fd = r[i * 3]!;
      const offset = r[i * 3 + 1]!;
      const length = r[i * 3 + 2]!;
      const h = this.handlers.get(fd);
      if (!h) continue; // closed earlier in this batch
      try {
        if (length >= 0) h.message(this.buffer.subarray(offset, offset + length));
        else h.error(errnoName(-length), -length);
      } catch (err) {
        // One socket's handler failing must not lose the rest of the batch.
        failure ??= { err };
      }
    }
    // The addon hands a callback's exception to Node as uncaught, like any event handler's.
    if (failure) throw failure.err;
  };
}

let loaded: NativeUdp | null | undefined;
let addon: Addon | null | undefined;

/** Where the build puts the addon, from nodes/lib (tsx) or dist/nodes/lib (compiled). */
function addonPath(): string | undefined {
  for (const up of [['..', '..'], ['..', '..', '..']]) {
    const p = path.join(__dirname, ...up, 'build', 'Release', 'pxe_udp.node');
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

/** The addon itself, loaded once per thread; null when not built, not Linux or PXE_NO_NATIVE. */
function loadAddon(): Addon | null {
  if (addon !== undefined) return addon;
  addon = null;
  if (process.platform !== 'linux' || process.env.PXE_NO_NATIVE) return addon;
  const file = addonPath();
  if (!file) return addon;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    addon = require(file) as Addon;
  } catch {
    addon = null;
  }
  return addon;
}

/** This thread's native UDP I/O, or null (not built, not Linux, PXE_NO_NATIVE set, failed to load). */
export function nativeUdp(): NativeUdp | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  const a = loadAddon();
  if (!a) return loaded;
  try {
    loaded = new NativeUdp(a);
  } catch {
    loaded = null;
  }
  return loaded;
}

/**
 * A positional read that copies only what the page cache holds and never waits on the disk
 * (preadv2 with RWF_NOWAIT): bytes copied, or a negative errno (EAGAIN: not cached). Undefined
 * without the addon (or with one built before it had this call).
 */
export function nativePreadNowait(): ((fd: number, buffer: Buffer, offset: number, length: number, position: number) => number) | undefined {
  const a = loadAddon();
  return a?.preadNowait ? a.preadNowait.bind(a) : undefined;
}

/** Why native I/O is off, for a log line; undefined when it is on. */
export function nativeUdpMissing(): string | undefined {
  if (nativeUdp()) return undefined;
  if (process.platform !== 'linux') return 'not Linux';
  if (process.env.PXE_NO_NATIVE) return 'PXE_NO_NATIVE is set';
  return addonPath() ? 'the addon failed to load' : 'the addon was not built at install (no compiler?)';
}
