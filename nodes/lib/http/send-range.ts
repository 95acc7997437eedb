/**
 * The data path: copies a byte range of a store file into an HTTP response with 1 MiB reads into
 * pooled buffers, one read ahead of the socket and never more (backpressure), without copying a
 * chunk in user space. A buffer goes back to the pool when the kernel has taken its bytes (the
 * write callback) or the connection is gone; a client that leaves stops the reads at once.
 */
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
}

/** A client that takes no bytes for this long is cut off, so that it cannot pin its buffers. */
export const STALL_TIMEOUT_MS = 60_000;

/** Resolves when `res` can take more, or has closed. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Resolves once `res` owns its socket (a pipelined response waits for the ones before it). */
function socketAssigned(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  if (res.socket) return Promise.resolve(true);
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
  stallTimeoutMs = STALL_TIMEOUT_MS,
): Promise<SendOutcome> {
  let bytes = 0;
  let stalled = false;
  // Our own watchdog rather than a socket timeout: a shared server's sockets keep their settings.
  const watchdog = setTimeout(() => {
    stalled = true;
    res.destroy();
  }, stallTimeoutMs);
  watchdog.unref();
  const gone = new AbortController();
  // Buffers whose bytes are in a socket write; all of them are settled once the response closes.
  const writing = new Set<Buffer>();
  const settle = (b: Buffer): void => {
    if (writing.delete(b)) pool.release(b);
    watchdog.refresh();
  };
  const onClose = (): void => {
    clearTimeout(watchdog);
    gone.abort();
    for (const b of [...writing]) settle(b);
  };
  // Stays attached: 'close' follows 'finish' too, and by then every write has settled.
  res.once('close', onClose);
  try {
    if (!(await socketAssigned(req, res)) || res.destroyed) return { bytes, complete: false, stalled };
    let pending: Promise<void> | null = null;
    let pos = start;
    while (bytes < length) {
      const buf = await pool.acquire(gone.signal);
      if (!buf) break;
      let n: number;
      try {
        // Reads into a buffer no socket write holds: it returns to the pool only after the read.
        n = await file.read(buf, 0, Math.min(buf.length, length - bytes), pos);
      } catch (err) {
        pool.release(buf);
        res.destroy();
        return { bytes, complete: false, readError: err as Error };
      }
      if (n <= 0) {
        pool.release(buf);
        res.destroy();
        return { bytes, complete: false, readError: new Error(`the file ended after ${pos} bytes (it changed while being served)`) };
      }
      if (pending) await pending;
      if (gone.signal.aborted || res.destroyed) {
        pool.release(buf);
        break;
      }
      pos += n;
      bytes += n;
      writing.add(buf);
      const more = res.write(n === buf.length ? buf : buf.subarray(0, n), () => settle(buf));
      onBytes(bytes);
      pending = more ? null : drained(res);
    }
    if (bytes < length || res.destroyed) return { bytes, complete: false, stalled };
    res.end();
    const complete = await finished(res);
    return { bytes, complete, stalled: !complete && stalled };
  } catch (err) {
    // Not expected (reads are caught above); the connection is cut so the client knows.
    res.destroy();
    return { bytes, complete: false, readError: err as Error };
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
