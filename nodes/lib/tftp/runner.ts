/**
 * Runs accepted read requests: opens the file and an ephemeral connected socket (the transfer's
 * TID), drives a ReadTransfer, and closes both. It knows nothing of port 69, limits or events:
 * it reports what happened as JobEvents, plain data that crosses from a worker thread as is. The
 * server uses one runner in its own thread, and each transfer worker (worker.ts) one of its own,
 * so both paths run the very same code and report the very same way.
 */
import type { BusyPoller } from './busy-poll';
import type { RequestPacket } from './codec';
import { negotiate, type NegotiatedOptions, type NegotiationLimits } from './options';
import { NetasciiSource, OctetSource, type ChunkSource } from './source';
import { ReadTransfer, type TransferOutcome } from './transfer';
import { openTransferSocket, type Peer, type TransferSocket } from './transfer-socket';
import { isStoreError, type FileStore, type StoreErrorCode, type StoreFile } from '../store/types';

export type { Peer } from './transfer-socket';

/** An accepted request: validated, within limits, given its id by the server. */
export interface TransferJob {
  id: number;
  peer: Peer;
  req: RequestPacket;
}

export interface RunnerConfig {
  /** Local address of port 69; transfer sockets bind to it too (the client expects it). */
  address: string;
  limits: NegotiationLimits;
  minRetransmitMs: number;
  retransmitMs: number;
  maxRetries: number;
  readAheadBytes: number;
  /** Use the native UDP addon for transfer sockets when it is built (false: always dgram). */
  nativeIo: boolean;
  /**
   * Least time between two progress reports of one transfer, ms (default 250; 0: none). A
   * transfer shorter than this reports only its start and end.
   */
  progressIntervalMs?: number;
}

/** Default least time between two progress reports of a transfer: at most 4 a second each. */
export const PROGRESS_INTERVAL_MS = 250;

/** What ends a job, with the counters the done/error events need. */
export interface JobResult {
  outcome: TransferOutcome;
  options: NegotiatedOptions;
  size?: number;
  bytesAcked: number;
  packetsSent: number;
  retransmits: number;
}

/**
 * What happens to a job, in order: `refused` or `failed` alone; or `started`, any `progress`,
 * then `ended` (`ended` may also come without `started`: a declined OACK). Plain data, so a
 * worker posts it to the main thread unchanged.
 */
export type JobEvent =
  /** The store could not open the file; `code` when it was a StoreError (ENOENT, EACCES …). */
  | { type: 'refused'; code?: StoreErrorCode; message: string }
  /** No transfer socket could be opened. */
  | { type: 'failed'; message: string }
  | { type: 'started'; size?: number; options: NegotiatedOptions }
  /** Bytes the client has acknowledged so far; only when they grew. */
  | { type: 'progress'; bytes: number }
  | { type: 'ended'; result: JobResult };

export type JobReport = (event: JobEvent) => void;

export class TransferRunner {
  private readonly running = new Set<ReadTransfer>();
  private closing = false;

  constructor(
    private readonly store: FileStore,
    private readonly cfg: RunnerConfig,
    private readonly poller: BusyPoller | undefined,
  ) {}

  /** Transfers with a socket open right now. */
  get active(): number {
    return this.running.size;
  }

  /** Aborts every transfer and refuses to start new ones (shutdown). */
  abortAll(message: string): void {
    this.closing = true;
    for (const t of this.running) t.abort(message);
  }

  /** Runs one job to its end; resolves once its socket and file are closed. Never rejects. */
  async run(job: TransferJob, report: JobReport): Promise<void> {
    const { req, peer } = job;
    let file: StoreFile;
    try {
      file = await this.store.open(req.filename);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      report({ type: 'refused', code: isStoreError(err) ? err.code : undefined, message });
      return;
    }
    let socket: TransferSocket | undefined;
    let transfer: ReadTransfer | undefined;
    let ticker: NodeJS.Timeout | undefined;
    try {
      if (this.closing) return;
      // The same local address as port 69, so the client sees replies from the address it asked.
      socket = await openTransferSocket(this.cfg.address, peer, this.cfg.nativeIo);
      if (this.closing) return;
      const source: ChunkSource = req.mode === 'netascii' ? new NetasciiSource(file, this.cfg.readAheadBytes) : new OctetSource(file, this.cfg.nativeIo);
      const size = req.mode === 'octet' ? file.size : undefined;
      const { options, oack } = negotiate(req.options, this.cfg.limits, source.size);
      let ended!: () => void;
      const done = new Promise<void>((resolve) => (ended = resolve));
      const t = new ReadTransfer(
        socket,
        source,
        {
          blksize: options.blksize,
          windowsize: options.windowsize,
          oack,
          timeoutS: options.timeout,
          minRetransmitMs: this.cfg.minRetransmitMs,
          maxRetransmitMs: this.cfg.retransmitMs,
          maxRetries: this.cfg.maxRetries,
          readAheadBytes: this.cfg.readAheadBytes,
          poller: this.poller,
        },
        {
          onStart: () => report({ type: 'started', size, options }),
          onEnd: (outcome) => {
            this.running.delete(t);
            clearInterval(ticker);
            try {
              report({ type: 'ended', result: { outcome, options, size, bytesAcked: t.bytesAcked, packetsSent: t.packetsSent, retransmits: t.retransmits } });
            } finally {
              ended(); // whatever a listener did, the socket and file still get closed
            }
          },
        },
      );
      transfer = t;
      this.running.add(t);
      // Progress is sampled on a timer, not per ACK: the packet path stays as it was, and a
      // transfer reports at most once per interval however fast it runs.
      const every = this.cfg.progressIntervalMs ?? PROGRESS_INTERVAL_MS;
      let reported = 0;
      if (every > 0) {
        ticker = setInterval(() => {
          const bytes = t.bytesAcked;
          if (bytes <= reported || !this.running.has(t)) return;
          reported = bytes;
          report({ type: 'progress', bytes });
        }, every);
        ticker.unref();
      }
      t.start();
      await done;
      // The socket closes now; only the file waits for a read still in flight (a stalled store
      // must not keep the client's port, or close(), waiting).
      await socket.close();
      await t.settled();
    } catch (err) {
      // Socket setup failed (no free port, address gone).
      if (!transfer) report({ type: 'failed', message: `cannot open a transfer socket: ${(err as Error).message}` });
    } finally {
      clearInterval(ticker);
      if (socket) await socket.close();
      await file.close().catch(() => undefined);
    }
  }
}
