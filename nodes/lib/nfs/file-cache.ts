/**
 * Open StoreFiles kept between READs: a kernel client reads a 1 GiB squashfs in thousands of
 * READ calls, and opening the file for each would cost a path resolution every time.
 *
 * Bounds: at most `max` files stay open (least recently used first out); a file in use by a
 * read is never closed under it (it is closed when its last read ends). Files unused for
 * `idleMs` are closed. An entry older than `revalidateMs` is checked against the store's stat
 * before use, so a replaced file (or image) is reopened rather than served stale.
 */
import type { FileStore, StoreFile } from '../store/types';

export interface FileCacheOptions {
  /** Open files kept (default 64). */
  max?: number;
  /** A file unused this long is closed (default 30 s). */
  idleMs?: number;
  /** Age after which an entry is checked against the store before use (default 2 s). */
  revalidateMs?: number;
}

export interface CachedFile {
  readonly file: StoreFile;
}

interface Entry extends CachedFile {
  path: string;
  refs: number;
  lastUsed: number;
  checkedAt: number;
  retired: boolean;
  fresh: boolean;
}

export class FileCache {
  private readonly entries = new Map<string, Entry>();
  private readonly opening = new Map<string, Promise<Entry>>();
  private readonly closing = new Set<Promise<void>>();
  private readonly max: number;
  private readonly idleMs: number;
  private readonly revalidateMs: number;
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly store: FileStore,
    opts: FileCacheOptions = {},
  ) {
    this.max = Math.max(1, opts.max ?? 64);
    this.idleMs = Math.max(10, opts.idleMs ?? 30_000);
    this.revalidateMs = Math.max(0, opts.revalidateMs ?? 2000);
  }

  /** Files open now (cached or in use). */
  get openCount(): number {
    return this.entries.size;
  }

  /** The open file of `path` (opened if needed); release() it when the read is done. */
  async acquire(path: string): Promise<CachedFile> {
    if (this.closed) throw new Error('file cache closed');
    let e = this.entries.get(path);
    if (e && Date.now() - e.checkedAt >= this.revalidateMs) {
      const fresh = await this.stillCurrent(e);
      if (!fresh) {
        this.retire(e);
        e = undefined;
      } else {
        e.checkedAt = Date.now();
      }
    }
    if (!e || e.retired) {
      e = await this.open(path);
      // A new entry is born pinned for its first taker, so nothing evicts it before we get here.
      if (e.fresh) e.fresh = false;
      else e.refs++;
    } else {
      e.refs++;
    }
    e.lastUsed = Date.now();
    // Move to the young end of the LRU order.
    this.entries.delete(path);
    this.entries.set(path, e);
    return e;
  }

  /** One more reference on a file the caller holds already (a read ahead keeps it open). */
  retain(c: CachedFile): void {
    const e = c as Entry;
    e.refs++;
    e.lastUsed = Date.now();
  }

  release(c: CachedFile): void {
    const e = c as Entry;
    e.refs--;
    e.lastUsed = Date.now();
    if (e.retired && e.refs === 0) this.closeFile(e);
    else if (e.refs === 0) this.evict();
  }

  private async stillCurrent(e: Entry): Promise<boolean> {
    try {
      const st = await this.store.stat(e.path);
      return !st.isDirectory && st.size === e.file.size && st.mtime.getTime() === e.file.mtime.getTime();
    } catch {
      return false;
    }
  }

  private open(path: string): Promise<Entry> {
    let p = this.opening.get(path);
    if (p) return p;
    p = (async () => {
      const file = await this.store.open(path);
      const now = Date.now();
      const e: Entry = { path, file, refs: 1, lastUsed: now, checkedAt: now, retired: false, fresh: true };
      if (this.closed) {
        this.closeFile(e);
        throw new Error('file cache closed');
      }
      const old = this.entries.get(path);
      if (old) this.retire(old);
      this.entries.set(path, e);
      this.evict();
      this.armSweeper();
      return e;
    })().finally(() => this.opening.delete(path));
    this.opening.set(path, p);
    return p;
  }

  private retire(e: Entry): void {
    if (e.retired) return;
    e.retired = true;
    if (this.entries.get(e.path) === e) this.entries.delete(e.path);
    if (e.refs === 0) this.closeFile(e);
  }

  private closeFile(e: Entry): void {
    const p = e.file
      .close()
      .catch(() => undefined)
      .finally(() => this.closing.delete(p));
    this.closing.add(p);
  }

  private evict(): void {
    if (this.entries.size <= this.max) return;
    for (const e of [...this.entries.values()]) {
      if (this.entries.size <= this.max) break;
      // Files in use stay; the cap is exceeded only while every cached file is being read.
      if (e.refs === 0) this.retire(e);
    }
  }

  private armSweeper(): void {
    if (this.sweeper || this.closed) return;
    this.sweeper = setInterval(() => this.sweep(), Math.max(5, Math.floor(this.idleMs / 2)));
    this.sweeper.unref();
  }

  private sweep(): void {
    const now = Date.now();
    for (const e of [...this.entries.values()]) if (e.refs === 0 && now - e.lastUsed >= this.idleMs) this.retire(e);
    if (this.entries.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /** Closes every file and waits for it; the caller has let every read end first. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    await Promise.allSettled([...this.opening.values()]);
    for (const e of [...this.entries.values()]) {
      e.retired = true;
      this.entries.delete(e.path);
      this.closeFile(e);
    }
    while (this.closing.size) await Promise.allSettled([...this.closing]);
  }
}
