/**
 * One read transfer's state machine, on its own connected UDP socket (its TID): optional OACK,
 * then windows of DATA blocks (RFC 7440; windowsize 1 is plain RFC 1350), block numbers rolling
 * over from 65535 to 0, retransmission on an adaptive timeout with bounded retries.
 *
 * Data comes from a ChunkSource in large chunks. Each chunk is kept as ready-made DATA frames
 * (4-byte header + payload, one Buffer view each), so sending a block is a single send of a
 * prepared view: no per-packet allocation or copy in our code. A chunk is dropped once all its
 * blocks are acknowledged; memory is bounded by the window plus one chunk of read-ahead, whatever
 * the file size.
 *
 * Sorcerer's Apprentice (RFC 1123 4.2.3.1): a duplicate ACK never triggers a retransmission;
 * only the timer does. A partial ACK inside a window (the client saw a gap) restarts the window
 * after the acknowledged block, as RFC 7440 says.
 */
import type { BusyPoller } from './busy-poll';
import { decode, encodeError, encodeOack, ErrorCode, Opcode, writeDataHeader, type TftpOption } from './codec';
import type { ChunkSource } from './source';
import type { TransferSocket } from './transfer-socket';

export interface TransferSettings {
  blksize: number;
  windowsize: number;
  /** What to acknowledge first; empty: no OACK, DATA starts at once. */
  oack: TftpOption[];
  /**
   * A timeout the client negotiated (RFC 2349), in seconds. It lowers the upper bound when it is
   * below maxRetransmitMs, never raises it: retransmitting sooner than the client's timeout is
   * harmless (duplicates are expected), and waiting the full 6 s curl asks for on every lost
   * packet would crawl.
   */
  timeoutS?: number;
  /** Bounds of the adaptive retransmit timeout, in ms. */
  minRetransmitMs: number;
  maxRetransmitMs: number;
  /** Consecutive timeouts without progress before giving up. */
  maxRetries: number;
  /** Bytes read from the file at a time (rounded down to whole blocks). */
  readAheadBytes: number;
  /** Told after each window is sent, so the ACK is polled for rather than slept on. */
  poller?: BusyPoller;
}

export type TransferOutcome =
  | { kind: 'done' }
  /** The client declined the OACK (ERROR, usually 8 or 0, or silence): a PXE ROM's tsize probe. */
  | { kind: 'declined'; code?: number; message: string }
  | { kind: 'error'; by: 'client' | 'server'; code: number; message: string };

export interface TransferHooks {
  /** The client accepted the OACK (or there was none): data starts flowing. */
  onStart(): void;
  /** Called exactly once; afterwards the transfer never touches its socket again. */
  onEnd(outcome: TransferOutcome): void;
}

interface Chunk {
  index: number;
  /** One ready DATA packet per block, views into `buf`. */
  frames: Buffer[];
  buf: Buffer;
}

/** Largest chunk read synchronously from the page cache on the event loop (a 1 MiB copy is well under a millisecond, even on a Pi). */
const MAX_SYNC_READ = 1024 * 1024;

const enum State {
  Oack,
  Data,
  Done,
}

export class ReadTransfer {
  private state: State;
  private readonly blocksPerChunk: number;
  private readonly chunkBytes: number;
  private readonly frameBytes: number;
  private readonly staging: Buffer;
  private readonly chunks: Chunk[] = [];
  /**
   * The buffer of the last chunk fully acknowledged, refilled by the next one instead of a new
   * allocation per chunk (and the garbage it leaves). Only with the native socket, whose send has
   * copied the frame before it returns; dgram may still hold a frame in its send queue. At most
   * one per transfer.
   */
  private spare: Buffer | undefined;
  private readonly reuse: boolean;
  private nextChunk = 0;
  private loading: Promise<void> | undefined;
  private sourceEnded = false;

  /** Oldest unacknowledged block (absolute, 1-based, never wraps). */
  private base = 1;
  /** Next block to send. */
  private next = 1;
  /** The final block once known (the first one shorter than blksize), else 0. */
  private last = 0;
  private lastLength = 0;

  // Retransmission.
  private timer: NodeJS.Timeout | undefined;
  private deadline = 0;
  private rto: number;
  private readonly maxRto: number;
  private srtt = -1;
  private rttvar = 0;
  private windowSentAt = 0;
  private retransmittedWindow = false;
  private retries = 0;

  packetsSent = 0;
  retransmits = 0;

  constructor(
    private readonly socket: TransferSocket,
    private readonly source: ChunkSource,
    private readonly settings: TransferSettings,
    private readonly hooks: TransferHooks,
  ) {
    const { blksize } = settings;
    this.blocksPerChunk = Math.max(1, Math.floor(settings.readAheadBytes / blksize));
    this.chunkBytes = this.blocksPerChunk * blksize;
    this.frameBytes = blksize + 4;
    this.staging = Buffer.allocUnsafe(this.chunkBytes);
    this.reuse = socket.kind === 'native';
    // Never above our own cap: a client's timeout of 255 s would otherwise let one spoofed
    // request hold a transfer slot for minutes.
    this.maxRto = Math.min(settings.timeoutS ? settings.timeoutS * 1000 : Infinity, settings.maxRetransmitMs);
    // Until the first round trip is measured (RFC 6298 starts at 1 s too).
    this.rto = Math.min(this.maxRto, Math.max(settings.minRetransmitMs, 1000));
    this.state = settings.oack.length > 0 ? State.Oack : State.Data;
    socket.listen(this.onMessage, this.onSocketError);
  }

  /** Payload bytes the client has acknowledged. */
  get bytesAcked(): number {
    if (this.last && this.base > this.last) return (this.last - 1) * this.settings.blksize + this.lastLength;
    return (this.base - 1) * this.settings.blksize;
  }

  get finished(): boolean {
    return this.state === State.Done;
  }

  start(): void {
    this.load(); // the first chunk is read while the OACK travels
    if (this.state === State.Oack) {
      this.sendOack();
    } else {
      this.hooks.onStart();
      this.pump();
    }
  }

  /** Ends the transfer from the server side (shutdown), telling the client why. */
  abort(message: string): void {
    if (this.state === State.Done) return;
    this.sendError(ErrorCode.NOT_DEFINED, message);
    this.finish({ kind: 'error', by: 'server', code: ErrorCode.NOT_DEFINED, message });
  }

  /** Resolves once no file read is in flight, so the file can be closed. */
  async settled(): Promise<void> {
    while (this.loading) await this.loading;
  }

  private readonly onMessage = (msg: Buffer): void => {
    if (this.state === State.Done || msg.length < 4 || msg[0] !== 0) return;
    const op = msg[1];
    if (op === Opcode.ACK) this.onAck((msg[2]! << 8) | msg[3]!);
    else if (op === Opcode.ERROR) this.onClientError(msg);
    // Anything else on a read transfer's TID is stray and ignored.
  };

  private readonly onSocketError = (err: NodeJS.ErrnoException): void => {
    if (this.state === State.Done) return;
    // On a connected socket, ICMP port unreachable surfaces here: the client has gone away.
    const message = err.code === 'ECONNREFUSED' ? 'client port unreachable (client gone)' : `socket error: ${err.message}`;
    this.finish(
      this.state === State.Oack
        ? { kind: 'declined', message }
        : { kind: 'error', by: 'server', code: ErrorCode.NOT_DEFINED, message },
    );
  };

  private onClientError(msg: Buffer): void {
    let code = 0;
    let message = '';
    try {
      const p = decode(msg);
      if (p.op === Opcode.ERROR) ({ code, message } = p);
    } catch {
      // decode cannot fail on an ERROR of 4+ bytes (a message without its NUL, or cut at the
      // 1 KiB the native receive keeps, is accepted); keep the defaults if it ever does
    }
    if (this.state === State.Oack) this.finish({ kind: 'declined', code, message: message || 'client declined the options' });
    else this.finish({ kind: 'error', by: 'client', code, message: message || `client error ${code}` });
  }

  private onAck(wire: number): void {
    if (this.state === State.Oack) {
      if (wire !== 0) return;
      this.state = State.Data;
      if (!this.retransmittedWindow) this.sampleRtt();
      this.retransmittedWindow = false;
      this.retries = 0;
      this.hooks.onStart();
      this.pump();
      return;
    }
    // Map the 16-bit block number into [base - 1, base - 1 + 65535] (rollover-safe).
    const prev = this.base - 1;
    const acked = prev + ((wire - prev) & 0xffff);
    // acked === prev is a duplicate: ignored (no Sorcerer's Apprentice). Beyond next - 1 it
    // acknowledges nothing we sent: a stale ACK from before a rollover, ignored too.
    if (acked === prev || acked >= this.next) return;
    if (acked === this.next - 1 && !this.retransmittedWindow) this.sampleRtt();
    this.retries = 0;
    this.base = acked + 1;
    if (this.last && acked >= this.last) {
      this.finish({ kind: 'done' });
      return;
    }
    while (this.chunks.length > 0 && (this.chunks[0]!.index + 1) * this.blocksPerChunk < this.base) {
      const done = this.chunks.shift()!;
      if (this.reuse) this.spare = done.buf;
    }
    // A partial ACK means the client missed acked + 1: the new window starts there.
    this.next = this.base;
    this.retransmittedWindow = false;
    this.pump();
  }

  private sampleRtt(): void {
    const sample = Date.now() - this.windowSentAt;
    if (this.srtt < 0) {
      this.srtt = sample;
      this.rttvar = sample / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - sample);
      this.srtt = 0.875 * this.srtt + 0.125 * sample;
    }
    this.rto = Math.min(this.maxRto, Math.max(this.settings.minRetransmitMs, this.srtt + 4 * this.rttvar));
  }

  /** Sends what the window allows; waits for the read-ahead if a block is not loaded yet. */
  private pump(): void {
    const limit = this.base + this.settings.windowsize;
    let sent = false;
    while (this.next < limit && (this.last === 0 || this.next <= this.last)) {
      const frame = this.frame(this.next);
      if (!frame) break; // a read is in flight; its completion pumps again
      this.socket.send(frame);
      this.packetsSent++;
      this.next++;
      sent = true;
    }
    if (sent) {
      this.settings.poller?.kick();
      this.windowSentAt = Date.now();
      this.armTimer(this.windowSentAt);
    }
    // Keep one chunk of read-ahead beyond the block sent last.
    if (!this.sourceEnded && this.nextChunk <= Math.floor((this.next - 1) / this.blocksPerChunk) + 1) this.load();
  }

  /** The DATA packet of block `b`, or null if its chunk is not loaded yet. */
  private frame(b: number): Buffer | null {
    const c = Math.floor((b - 1) / this.blocksPerChunk);
    const first = this.chunks.length > 0 ? this.chunks[0]!.index : this.nextChunk;
    let chunk = this.chunks[c - first];
    if (!chunk) {
      if (!this.load()) return null;
      chunk = this.chunks[c - (this.chunks.length > 0 ? this.chunks[0]!.index : this.nextChunk)];
      if (!chunk) return null;
    }
    const frame = chunk.frames[b - 1 - c * this.blocksPerChunk];
    if (!frame) return null; // past the end; cannot happen once `last` is known
    if (frame.length - 4 < this.settings.blksize && this.last === 0) {
      this.last = b;
      this.lastLength = frame.length - 4;
    }
    return frame;
  }

  /**
   * Reads the next chunk. Page-cached data is copied right here, synchronously (true): a chunk of
   * at most MAX_SYNC_READ bytes that never waits on the disk, tens of microseconds, where the
   * async read costs a thread-pool wake-up and its completion (false: it pumps when it lands).
   */
  private load(): boolean {
    if (this.loading || this.sourceEnded || this.state === State.Done) return false;
    if (this.chunkBytes <= MAX_SYNC_READ) {
      const n = this.source.nextCached?.(this.staging) ?? -1;
      if (n >= 0) {
        this.addChunk(this.nextChunk++, n);
        return true;
      }
    }
    const index = this.nextChunk++;
    // Both handlers clear `loading` first, so a pump() they trigger can start the next read.
    this.loading = this.source.next(this.staging).then(
      (n) => {
        this.loading = undefined;
        if (this.state === State.Done) return;
        this.addChunk(index, n);
        if (this.state === State.Data) this.pump();
      },
      (err: Error) => {
        this.loading = undefined;
        if (this.state === State.Done) return;
        this.sendError(ErrorCode.NOT_DEFINED, 'read error');
        this.finish({ kind: 'error', by: 'server', code: ErrorCode.NOT_DEFINED, message: `read error: ${err.message}` });
      },
    );
    return false;
  }

  /** Turns `n` staged payload bytes into ready DATA frames with their block numbers. */
  private addChunk(index: number, n: number): void {
    const { blksize } = this.settings;
    const full = n === this.chunkBytes;
    if (!full) this.sourceEnded = true;
    // A short chunk holds its data blocks plus the final short (maybe empty) block.
    const blocks = full ? this.blocksPerChunk : Math.floor(n / blksize) + 1;
    // Always a full chunk's size, so any chunk's buffer can serve the next one.
    const buf = this.spare ?? Buffer.allocUnsafe(this.blocksPerChunk * this.frameBytes);
    this.spare = undefined;
    const frames: Buffer[] = new Array<Buffer>(blocks);
    const firstBlock = index * this.blocksPerChunk + 1;
    for (let i = 0; i < blocks; i++) {
      const off = i * this.frameBytes;
      writeDataHeader(buf, off, firstBlock + i);
      const start = i * blksize;
      const end = Math.min(n, start + blksize);
      if (start < end) this.staging.copy(buf, off + 4, start, end);
      frames[i] = buf.subarray(off, off + 4 + Math.max(0, end - start));
    }
    this.chunks.push({ index, frames, buf });
  }

  private sendOack(): void {
    this.socket.send(encodeOack(this.settings.oack));
    this.packetsSent++;
    this.windowSentAt = Date.now();
    this.armTimer(this.windowSentAt);
  }

  private sendError(code: number, message: string): void {
    try {
      this.socket.send(encodeError(code, message));
    } catch {
      // the socket may already be closing; the error packet is a courtesy
    }
  }

  private armTimer(now: number): void {
    this.deadline = now + this.rto;
    // One timer per transfer, re-armed lazily: an ACK only moves the deadline.
    this.timer ??= setTimeout(this.onTimer, this.rto);
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    if (this.state === State.Done) return;
    const now = Date.now();
    if (now < this.deadline) {
      this.timer = setTimeout(this.onTimer, this.deadline - now);
      return;
    }
    if (++this.retries > this.settings.maxRetries) {
      const message = `no answer after ${this.settings.maxRetries} retransmissions`;
      if (this.state === State.Oack) {
        this.finish({ kind: 'declined', message: 'no answer to the OACK' });
      } else {
        this.sendError(ErrorCode.NOT_DEFINED, 'timed out');
        this.finish({ kind: 'error', by: 'server', code: ErrorCode.NOT_DEFINED, message });
      }
      return;
    }
    this.rto = Math.min(this.rto * 2, this.maxRto);
    this.retransmits++;
    this.retransmittedWindow = true;
    if (this.state === State.Oack) {
      this.sendOack();
    } else {
      this.next = this.base;
      this.pump();
      // Waiting on a slow read sends nothing; still come back later.
      if (!this.timer) this.armTimer(now);
    }
  };

  private finish(outcome: TransferOutcome): void {
    if (this.state === State.Done) return;
    this.state = State.Done;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.socket.mute();
    this.chunks.length = 0;
    this.spare = undefined;
    this.hooks.onEnd(outcome);
  }
}
