import * as fs from 'node:fs';
import * as path from 'node:path';

export interface JsonFileOptions {
  /** Least time between two writes; the first write comes this long after the first change. */
  delayMs: number;
  /** Refuse to read a file larger than this (a damaged or foreign file). */
  maxBytes?: number;
  onError?: (err: Error) => void;
  setTimer?: (fn: () => void, ms: number) => { unref?(): void };
  clearTimer?: (t: unknown) => void;
}

/**
 * One JSON file in the user dir, written whole and atomically (a temporary file beside it, then a
 * rename: a crash leaves the old file or the new one, never half of one), at most once per
 * `delayMs` however often the data changes, always with the data as it is at write time.
 */
export class JsonFile<T> {
  private timer: unknown;
  private writing: Promise<void> | undefined;
  private dirty = false;
  private lastWrite = -Infinity;
  private source: (() => T) | undefined;
  private readonly tmp: string;
  /** Writes done, for tests and logs. */
  writes = 0;

  constructor(
    readonly file: string,
    private readonly opts: JsonFileOptions,
  ) {
    this.tmp = `${file}.tmp-${process.pid}`;
  }

  /** The file's content, or undefined when it is missing, too large or not JSON (then it is set aside as .bad). */
  load(): unknown {
    let text: string;
    try {
      const st = fs.statSync(this.file);
      if (!st.isFile() || st.size > (this.opts.maxBytes ?? 16 * 1024 * 1024)) throw new Error(`${this.file}: not a file or too large`);
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.opts.onError?.(err as Error);
      return undefined;
    }
    try {
      return JSON.parse(text);
    } catch (err) {
      this.opts.onError?.(new Error(`${this.file} is damaged (${(err as Error).message}); starting afresh, the old file is kept as ${path.basename(this.file)}.bad`));
      try {
        fs.renameSync(this.file, `${this.file}.bad`);
      } catch {
        // keep going without it
      }
      return undefined;
    }
  }

  /** The data changed: it is written within delayMs (what `get` returns then). */
  schedule(get: () => T): void {
    this.source = get;
    this.dirty = true;
    if (this.timer !== undefined || this.writing) return;
    const wait = Math.max(this.opts.delayMs, this.lastWrite + this.opts.delayMs - Date.now());
    const set = this.opts.setTimer ?? setTimeout;
    const t = set(() => {
      this.timer = undefined;
      void this.writeNow();
    }, wait);
    t.unref?.();
    this.timer = t;
  }

  /** Writes pending changes now and waits for them. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
    if (this.timer !== undefined) {
      (this.opts.clearTimer ?? clearTimeout)(this.timer as NodeJS.Timeout);
      this.timer = undefined;
    }
    if (this.dirty) await this.writeNow();
  }

  /** For process exit: writes pending changes synchronously. */
  flushSync(): void {
    if (!this.dirty || !this.source) return;
    try {
      const text = JSON.stringify(this.source());
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      fs.writeFileSync(this.tmp, text);
      fs.renameSync(this.tmp, this.file);
      this.dirty = false;
      this.writes++;
    } catch (err) {
      this.opts.onError?.(err as Error);
    }
  }

  private writeNow(): Promise<void> {
    if (this.writing) return this.writing;
    const p = (async () => {
      while (this.dirty && this.source) {
        this.dirty = false;
        const text = JSON.stringify(this.source());
        try {
          await fs.promises.mkdir(path.dirname(this.file), { recursive: true });
          await fs.promises.writeFile(this.tmp, text);
          await fs.promises.rename(this.tmp, this.file);
          this.writes++;
        } catch (err) {
          this.opts.onError?.(err as Error);
          await fs.promises.rm(this.tmp, { force: true }).catch(() => undefined);
        }
        this.lastWrite = Date.now();
        // Changes that came while writing wait for the next turn, not a tight loop.
        if (this.dirty) {
          this.writing = undefined;
          this.schedule(this.source);
          return;
        }
      }
    })().finally(() => {
      if (this.writing === p) this.writing = undefined;
    });
    this.writing = p;
    return p;
  }
}
