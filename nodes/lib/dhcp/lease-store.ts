/**
 * Durable lease records: an append-only log of JSON lines, compacted (rewritten to the live state
 * through a temporary file, fsync and rename) when opened and when it grows too long.
 *
 * `append()` resolves only after the record is on disk (fdatasync); the server sends an ACK only
 * then, so after a crash or restart every address it acknowledged is known and never handed out
 * twice. Records that arrive while a write+fsync is in flight are batched into the next single
 * write+fsync (group commit), so throughput does not drop to one fsync per client.
 *
 * A crash can leave the last line cut short: it is ignored on open (the ACK for it was never
 * sent). Any other unreadable line is skipped and counted. A failed write (disk full: a short
 * write, then ENOSPC) rejects its whole batch, so no ACK goes out, and the file is cut back to its
 * last complete record, so the next record does not land glued to half a line.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface LeaseRecord {
  ip: string;
  /** Client identity (client-id or hardware address, see client.ts). */
  key: string;
  mac: string;
  hostname: string | null;
  /** Expiry, ms since the epoch. */
  expires: number;
}

export type LogRecord =
  | ({ op: 'lease' } & LeaseRecord)
  | { op: 'free'; ip: string; key: string }
  | { op: 'decline'; ip: string; until: number };

export interface LeaseSnapshot {
  leases: Map<string, LeaseRecord>;
  declined: Map<string, number>;
}

/** Expired leases are kept this long after expiry so a returning client gets its old address. */
const KEEP_EXPIRED_MS = 24 * 3600 * 1000;
/** Compact when the log holds this many more records than the live state. */
const COMPACT_SLACK = 20000;

interface Pending {
  line: string;
  resolve: () => void;
  reject: (err: Error) => void;
}

function isRecord(x: unknown): x is LogRecord {
  if (!x || typeof x !== 'object') return false;
  const r = x as Record<string, unknown>;
  if (typeof r.ip !== 'string') return false;
  if (r.op === 'lease') return typeof r.key === 'string' && typeof r.mac === 'string' && typeof r.expires === 'number';
  if (r.op === 'free') return typeof r.key === 'string';
  if (r.op === 'decline') return typeof r.until === 'number';
  return false;
}

export function applyRecord(s: LeaseSnapshot, r: LogRecord): void {
  if (r.op === 'lease') {
    s.leases.set(r.ip, { ip: r.ip, key: r.key, mac: r.mac, hostname: r.hostname ?? null, expires: r.expires });
    s.declined.delete(r.ip);
  } else if (r.op === 'free') {
    const l = s.leases.get(r.ip);
    // Freed leases stay as expired records: the address is free but remembered for its client.
    if (l && l.key === r.key) l.expires = Math.min(l.expires, Date.now());
  } else {
    s.leases.delete(r.ip);
    s.declined.set(r.ip, r.until);
  }
}

/** Reads a log; a torn last line is ignored, other bad lines counted. */
export function parseLog(text: string): { snapshot: LeaseSnapshot; badLines: number; tornTail: boolean } {
  const snapshot: LeaseSnapshot = { leases: new Map(), declined: new Map() };
  const lines = text.split('\n');
  // The text after the last newline is a record only if complete; a crash mid-write leaves it cut.
  const tail = lines.pop() ?? '';
  let badLines = 0;
  let tornTail = false;
  const take = (line: string, isTail: boolean): void => {
    if (!line.trim()) return;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      if (isTail) tornTail = true;
      else badLines++;
      return;
    }
    if (isRecord(rec)) applyRecord(snapshot, rec);
    else badLines++;
  };
  for (const line of lines) take(line, false);
  take(tail, true);
  return { snapshot, badLines, tornTail };
}

function snapshotLines(s: LeaseSnapshot, now: number): string {
  const out: string[] = [];
  for (const l of s.leases.values()) {
    if (l.expires + KEEP_EXPIRED_MS < now) continue;
    out.push(JSON.stringify({ op: 'lease', ...l }));
  }
  for (const [ip, until] of s.declined) if (until > now) out.push(JSON.stringify({ op: 'decline', ip, until }));
  return out.length ? out.join('\n') + '\n' : '';
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await fs.promises.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

export class LeaseStore {
  private pending: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private closed = false;
  private records = 0;
  /** Bytes of the file that hold complete, durable records: where a failed write is cut back to. */
  private size: number;
  /** A failed write could not be cut back yet: retry before the next write. */
  private needsTruncate = false;

  private constructor(
    readonly file: string,
    private fh: fs.promises.FileHandle,
    size: number,
    readonly state: LeaseSnapshot,
    readonly loadReport: { badLines: number; tornTail: boolean },
  ) {
    this.records = state.leases.size + state.declined.size;
    this.size = size;
  }

  /** Opens (creating directories and file as needed), compacting what is there. */
  static async open(file: string): Promise<LeaseStore> {
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
    let text = '';
    try {
      text = await fs.promises.readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const { snapshot, badLines, tornTail } = parseLog(text);
    await LeaseStore.rewrite(file, snapshotLines(snapshot, Date.now()));
    const fh = await fs.promises.open(file, 'a');
    let size: number;
    try {
      size = (await fh.stat()).size;
    } catch (e) {
      await fh.close();
      throw e;
    }
    return new LeaseStore(file, fh, size, snapshot, { badLines, tornTail });
  }

  /** Atomically replaces the log with `content` (temp file, fsync, rename, fsync directory). */
  private static async rewrite(file: string, content: string): Promise<void> {
    const tmp = `${file}.tmp-${process.pid}`;
    const h = await fs.promises.open(tmp, 'w', 0o600);
    try {
      await h.writeFile(content);
      await h.sync();
    } finally {
      await h.close();
    }
    await fs.promises.rename(tmp, file);
    await fsyncDir(path.dirname(file));
  }

  /** Makes `rec` durable; resolves after the fdatasync that covers it. */
  append(rec: LogRecord): Promise<void> {
    if (this.closed) return Promise.reject(new Error('lease store is closed'));
    applyRecord(this.state, rec);
    const line = JSON.stringify(rec) + '\n';
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ line, resolve, reject });
      if (!this.flushing) this.flushing = this.flushLoop();
    });
  }

  private async flushLoop(): Promise<void> {
    while (this.pending.length) {
      const batch = this.pending;
      this.pending = [];
      try {
        if (this.records > this.state.leases.size + this.state.declined.size + COMPACT_SLACK) {
          await this.compactNow();
        } else {
          await this.writeDurably(Buffer.from(batch.map((p) => p.line).join(''), 'utf8'));
          this.records += batch.length;
        }
        for (const p of batch) p.resolve();
      } catch (e) {
        for (const p of batch) p.reject(e as Error);
      }
    }
    this.flushing = null;
  }

  /**
   * Appends all of `buf` (write() may take only part of it, e.g. when the disk fills up) and
   * fdatasyncs. On any failure the file is cut back to its last good size and the error thrown.
   */
  private async writeDurably(buf: Buffer): Promise<void> {
    if (this.needsTruncate) {
      await this.fh.truncate(this.size);
      this.needsTruncate = false;
    }
    try {
      let off = 0;
      while (off < buf.length) {
        const { bytesWritten } = await this.fh.write(buf, off, buf.length - off);
        if (bytesWritten <= 0) throw new Error(`lease log ${this.file}: write made no progress (disk full?)`);
        off += bytesWritten;
      }
      await this.fh.datasync();
    } catch (e) {
      try {
        await this.fh.truncate(this.size);
      } catch {
        this.needsTruncate = true;
      }
      throw e;
    }
    this.size += buf.length;
  }

  /** Rewrites the log as the live state (which already includes the pending batch). */
  private async compactNow(): Promise<void> {
    await this.fh.close();
    await LeaseStore.rewrite(this.file, snapshotLines(this.state, Date.now()));
    this.fh = await fs.promises.open(this.file, 'a');
    this.size = (await this.fh.stat()).size;
    this.needsTruncate = false;
    this.records = this.state.leases.size + this.state.declined.size;
  }

  /** Waits for everything appended so far to be durable. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush();
    await this.fh.close();
  }
}

/** A lease log that only keeps state in memory (unit tests, or when no user directory exists). */
export class MemoryLeaseLog {
  readonly state: LeaseSnapshot = { leases: new Map(), declined: new Map() };
  readonly records: LogRecord[] = [];
  append(rec: LogRecord): Promise<void> {
    applyRecord(this.state, rec);
    this.records.push(rec);
    return Promise.resolve();
  }
}
