/**
 * The data path: copies a byte range of a store file into an HTTP response, at most one write in
 * the socket and one read ahead of it (backpressure).
 *
 * Memory a client can hold is what limits a server facing clients that stop reading: a buffer in
 * a socket write stays pinned until the kernel has taken all of its bytes, and only the client
 * decides when that is. So a transfer starts on probation: every write goes through its own small
 * buffer (OWN_CHUNK: all that a client that stops reading pins, whoever it is), copied from a shared
 * 1 MiB buffer read ahead (staged) and given back whenever the client makes us wait. It writes
 * straight from shared buffers (fast: no copy, few syscalls) only once its client has shown it
 * reads: it took PROVE_BYTES, more than kernel buffers absorb for a client that stops, at
 * PROVE_RATE or more. It never waits for a shared buffer: none free, or its address holding its
 * share, means its own buffer for that chunk. A shared buffer whose write is still unfinished
 * after WRITE_OFF_MS is written off (the budget replaces it) and the transfer goes back on
 * probation; when the written-off budget is spent too, the connection is cut instead. A client
 * that takes nothing at all for the stall timeout is cut off.
 */
import * as fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StoreFile } from '../store/types';
import type { BufferPool } from './buffer-pool';

export interface SendOutcome {
  /** Body bytes handed to the socket. */
  bytes: number;
  /** The response went out complete. */
  complete: boolean;
  /** A store read failed (the response was cut off). */
  readError?: Error;
  /** The client took nothing for stallTimeoutMs and was cut off. */
  stalled?: boolean;
  /** The client stopped reading while holding a shared buffer, and none could be written off. */
  starvedPool?: boolean;
}

/** A client that takes no bytes for this long is cut off, so that it cannot pin its buffers. */
export const STALL_TIMEOUT_MS = 60_000;
/** A transfer's own buffer: the most a client that stops reading pins (besides kernel buffers). */
export const OWN_CHUNK = 64 * 1024;

/**
 * What a client that reads nothing can make us write before its socket blocks, with the kernel's
 * default buffers: our send buffer's ceiling plus its default receive buffer (Linux: tcp_wmem's
 * max and tcp_rmem's default). Measured: 0.7 MiB over a veth and 3.7 MiB over loopback for a
 * client that never read; 5.4–7.5 MiB over a veth for one that read its first 64 KiB and then
 * stopped (a receive buffer grows once its owner reads). 0 where /proc does not say.
 */
function absorbedByKernel(): number {
  try {
    const nums = (f: string): number[] => fs.readFileSync(f, 'utf8').trim().split(/\s+/).map(Number);
    const total = nums('/proc/sys/net/ipv4/tcp_wmem')[2]! + nums('/proc/sys/net/ipv4/tcp_rmem')[1]!;
    return Number.isFinite(total) ? total : 0;
  } catch {
    return 0;
  }
}

/**
 * A client must take this much (twice what a client that read a little and stopped was seen to
 * make the kernel absorb, and 1 MiB over the default buffers) ... A client that makes its buffers
 * larger to pass for a reader gets shared buffers only to lose them to the write-off a second
 * later, within its address's share and the written-off budget.
 */
export const PROVE_BYTES = Math.max(16 << 20, absorbedByKernel() + (1 << 20));
/** ... at this rate or faster (bytes/s), before it is sent from shared buffers. */
export const PROVE_RATE = 4 << 20;
/** A shared buffer's write unfinished after this long (client below 1 MiB/s) is written off. */
export const WRITE_OFF_MS = 1000;
/** A client on probation that makes its own buffer's write wait this long gives its staged shared buffer back. */
const HOLD_MS = 100;
/** How far behind the proof's pace a client on probation may fall and keep a staged buffer. */
const STAGE_SLACK = 1 << 20;

export interface SendOptions {
  /** Whose share of the pool this transfer draws on (the client address). */
  owner?: string;
  stallTimeoutMs?: number;
  ownChunk?: number;
  proveBytes?: number;
  proveRate?: number;
  writeOffMs?: number;
}

/** One write in the socket. */
interface Write {
  buf: Buffer;
  pooled: boolean;
  bytes: number;
  /** Resolves when the kernel has all its bytes, or the response is gone. */
  done: Promise<void>;
  settled: boolean;
  settle: () => void;
}

/** Resolves once `res` owns its socket (a pipelined response waits for the ones before it). */
export function socketAssigned(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  if (res.socket) return Promise.resolve(true);
  if (res.destroyed || req.socket.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const conn = req.socket;
    const onSocket = (): void => finish(true);
    const onGone = (): void => finish(false);
    const finish = (ok: boolean): void => {
      res.off('socket', onSocket);
      res.off('close', onGone);
      conn.off('close', onGone);
      resolve(ok);
    };
    res.on('socket', onSocket);
    res.on('close', onGone);
    conn.on('close', onGone);
  });
}

/** Whether `w` finished within `ms` (Infinity: wait for it; the stall watchdog bounds that). */
function within(w: Write, ms: number): Promise<boolean> {
  if (w.settled) return Promise.resolve(true);
  if (ms === Infinity) return w.done.then(() => true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    void w.done.then(() => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/**
 * Sends `length` bytes of `file` from `start` as the body of `res` (headers already set), then
 * ends it. `onBytes` sees the running total after each chunk. Never throws.
 */
export async function sendRange(
  req: IncomingMessage,
  res: ServerResponse,
  file: StoreFile,
  start: number,
  length: number,
  pool: BufferPool,
  onBytes: (total: number) => void,
  options: SendOptions = {},
): Promise<SendOutcome> {
  const owner = options.owner ?? '';
  const ownChunk = Math.max(1, Math.floor(options.ownChunk ?? OWN_CHUNK));
  const proveBytes = options.proveBytes ?? PROVE_BYTES;
  const proveRate = options.proveRate ?? PROVE_RATE;
  const proveMs = (proveBytes / proveRate) * 1000;
  const writeOffMs = options.writeOffMs ?? WRITE_OFF_MS;
  let bytes = 0;
  let stalled = false;
  // Our own watchdog rather than a socket timeout: a shared server's sockets keep their settings.
  const watchdog = setTimeout(() => {
    stalled = true;
    res.destroy();
  }, options.stallTimeoutMs ?? STALL_TIMEOUT_MS);
  watchdog.unref();
  let gone = false;
  let inflight: Write | undefined;
  let own: Buffer | undefined;
  let pos = start;

  // Whether the client has shown it reads (see the header), and the evidence so far: bytes the
  // kernel took since `provingFrom`.
  let fast = false;
  let provingFrom = Date.now();
  let proved = 0;
  const demote = (): void => {
    fast = false;
    provingFrom = Date.now();
    proved = 0;
  };
  const onWritten = (w: Write): void => {
    watchdog.refresh();
    if (fast || gone) return;
    proved += w.bytes;
    if (proved < proveBytes) return;
    if (Date.now() - provingFrom <= proveMs) fast = true;
    else demote(); // a slow reader: measured afresh, on its own buffer meanwhile
  };

  // A shared buffer read ahead for a client still on its own buffer: copied into the own buffer a
  // slice at a time (one file read per MiB rather than per slice: the own buffer costs little
  // more CPU than shared ones). It is never in a socket write, so it goes back to the pool as soon
  // as the client makes us wait (its unsent bytes are read again later), and only a client that
  // keeps the proof's pace has one: a slow reader cannot sit on a shared buffer.
  let stage: { buf: Buffer; off: number; end: number } | undefined;
  const onPace = (): boolean => proved + STAGE_SLACK >= (proveRate * (Date.now() - provingFrom)) / 1000;
  const dropStage = (): void => {
    if (stage) pool.release(stage.buf);
    stage = undefined;
  };

  const readInto = async (buf: Buffer, want: number): Promise<number | Error> => {
    try {
      const n = await file.read(buf, 0, want, pos);
      return n > 0 ? n : new Error(`the file ended after ${pos} bytes (it changed while being served)`);
    } catch (err) {
      return err as Error;
    }
  };

  const write = (buf: Buffer, off: number, n: number, pooled: boolean): void => {
    let resolveDone!: () => void;
    const w: Write = {
      buf,
      pooled,
      bytes: n,
      done: new Promise<void>((r) => (resolveDone = r)),
      settled: false,
      settle: () => {
        if (w.settled) return;
        w.settled = true;
        if (w.pooled) pool.release(w.buf);
        resolveDone();
        onWritten(w);
      },
    };
    inflight = w;
    pos += n;
    bytes += n;
    res.write(off === 0 && n === buf.length ? buf : buf.subarray(off, off + n), () => w.settle());
    onBytes(bytes);
  };

  const onClose = (): void => {
    clearTimeout(watchdog);
    gone = true;
    inflight?.settle();
  };
  // Stays attached: 'close' follows 'finish' too, and by then every write has settled.
  res.once('close', onClose);
  const failed = (err: Error): SendOutcome => {
    res.destroy();
    return { bytes, complete: false, readError: err };
  };
  try {
    if (!(await socketAssigned(req, res)) || res.destroyed) return { bytes, complete: false, stalled };
    while (bytes < length && !gone) {
      const left = length - bytes;
      const prev = inflight;
      if (!fast) {
        // On probation: the own buffer must be out of the socket before it is filled again.
        if (prev && !prev.settled) {
          if (!(await within(prev, HOLD_MS))) {
            dropStage(); // the client makes us wait: the shared buffer goes back
            await within(prev, Infinity);
          }
          if (gone) break;
          if (fast) continue; // that write was the proof
        }
        if (!onPace()) dropStage();
        else if (!stage) {
          const b = pool.tryAcquire(owner);
          if (b) {
            const n = await readInto(b, Math.min(b.length, left));
            if (n instanceof Error) {
              pool.release(b);
              return failed(n);
            }
            stage = { buf: b, off: 0, end: n };
          }
        }
        own ??= Buffer.allocUnsafeSlow(ownChunk);
        let n: number | Error;
        if (stage) {
          n = stage.buf.copy(own, 0, stage.off, Math.min(stage.end, stage.off + ownChunk));
          stage.off += n;
          if (stage.off >= stage.end) dropStage();
        } else {
          n = await readInto(own, Math.min(ownChunk, left));
          if (n instanceof Error) return failed(n);
        }
        if (gone || res.destroyed) break;
        write(own, 0, n, false);
        continue;
      }
      // Fast: a shared buffer per chunk (the staged one first), read while the last one is sent.
      let buf: Buffer;
      let off = 0;
      let n: number | Error;
      let pooled = true;
      if (stage) {
        ({ buf, off } = stage);
        n = stage.end - stage.off;
        stage = undefined;
      } else {
        const b = pool.tryAcquire(owner);
        if (!b) {
          // None free, or this address holds its share: this chunk goes through the own buffer.
          pooled = false;
          if (prev && !prev.pooled) {
            await within(prev, Infinity);
            if (gone) break;
          }
        }
        buf = b ?? (own ??= Buffer.allocUnsafeSlow(ownChunk));
        n = await readInto(buf, Math.min(buf.length, left));
        if (n instanceof Error) {
          if (pooled) pool.release(buf);
          return failed(n);
        }
      }
      if (prev && !(await within(prev, prev.pooled ? writeOffMs : Infinity))) {
        // The client stopped taking bytes while a shared buffer is in its socket: that buffer
        // leaves the budget (or the connection goes), the read-ahead goes back unsent (read
        // again later) and the client is on probation again.
        if (pooled) pool.release(buf);
        demote();
        if (!pool.writeOff(prev.buf)) {
          res.destroy();
          return { bytes, complete: false, starvedPool: true };
        }
        await within(prev, Infinity);
        continue;
      }
      if (gone || res.destroyed) {
        if (pooled) pool.release(buf);
        break;
      }
      write(buf, off, n, pooled);
    }
    if (bytes < length || res.destroyed) return { bytes, complete: false, stalled };
    res.end();
    const complete = await finished(res);
    return { bytes, complete, stalled: !complete && stalled };
  } catch (err) {
    // Not expected (reads are caught above); the connection is cut so the client knows.
    res.destroy();
    return { bytes, complete: false, readError: err as Error };
  } finally {
    dropStage();
    // A written-off buffer whose write never ends is forgotten with the connection.
    inflight?.settle();
  }
}

/** Whether `res` finished (all bytes with the kernel) rather than closed early. */
function finished(res: ServerResponse): Promise<boolean> {
  if (res.writableFinished) return Promise.resolve(true);
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onFinish = (): void => {
      res.off('close', onClose);
      resolve(true);
    };
    const onClose = (): void => {
      res.off('finish', onFinish);
      resolve(res.writableFinished);
    };
    res.once('finish', onFinish);
    res.once('close', onClose);
  });
}
