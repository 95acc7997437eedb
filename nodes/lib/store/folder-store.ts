import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { normalizeStorePath } from './path';
import { StoreError, type FileStore, type ReadStreamOptions, type StoreFile, type StoreStat } from './types';

/** A plain directory served read-only, with symlinks that leave the root refused. */
export class FolderStore implements FileStore {
  readonly kind = 'folder' as const;
  private realRoot: string | undefined;

  constructor(readonly source: string) {}

  /** Checks that the root exists and is a directory; call before serving. */
  async init(): Promise<this> {
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(this.source);
    } catch (err) {
      throw new StoreError('ENOENT', `store folder ${this.source} does not exist (${(err as Error).message})`);
    }
    if (!st.isDirectory()) throw new StoreError('ENOTDIR', `${this.source} is not a folder`);
    this.realRoot = await fs.promises.realpath(this.source);
    return this;
  }

  /** Resolves a client path to a real path on disk inside the root, following symlinks. */
  private async resolve(p: string): Promise<{ rel: string; real: string }> {
    const segs = normalizeStorePath(p);
    const root = this.realRoot ?? (await this.init()).realRoot!;
    const joined = path.join(root, ...segs);
    let real: string;
    try {
      real = await fs.promises.realpath(joined);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new StoreError('ENOENT', `not found: /${segs.join('/')}`);
      throw err;
    }
    if (real !== root && !real.startsWith(root + path.sep)) {
      throw new StoreError('EACCES', `refused: /${segs.join('/')} resolves outside the store`);
    }
    return { rel: segs.join('/'), real };
  }

  private static toStat(rel: string, st: fs.Stats): StoreStat {
    return {
      path: rel,
      name: rel === '' ? '' : rel.slice(rel.lastIndexOf('/') + 1),
      isDirectory: st.isDirectory(),
      size: st.isDirectory() ? 0 : st.size,
      mtime: st.mtime,
    };
  }

  async stat(p: string): Promise<StoreStat> {
    const { rel, real } = await this.resolve(p);
    return FolderStore.toStat(rel, await fs.promises.stat(real));
  }

  async list(p: string): Promise<StoreStat[]> {
    const { rel, real } = await this.resolve(p);
    const st = await fs.promises.stat(real);
    if (!st.isDirectory()) throw new StoreError('ENOTDIR', `not a directory: /${rel}`);
    const out: StoreStat[] = [];
    for (const name of (await fs.promises.readdir(real)).sort()) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      try {
        out.push(await this.stat(childRel));
      } catch {
        // Dangling or escaping symlinks are simply not listed.
      }
    }
    return out;
  }

  private async openRegular(p: string): Promise<{ rel: string; fh: fs.promises.FileHandle; st: fs.Stats }> {
    const { rel, real } = await this.resolve(p);
    const fh = await fs.promises.open(real, 'r');
    try {
      const st = await fh.stat();
      if (st.isDirectory()) throw new StoreError('EISDIR', `is a directory: /${rel}`);
      if (!st.isFile()) throw new StoreError('EACCES', `not a regular file: /${rel}`);
      return { rel, fh, st };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  async open(p: string): Promise<StoreFile> {
    const { rel, fh, st } = await this.openRegular(p);
    return {
      path: rel,
      size: st.size,
      mtime: st.mtime,
      read: async (buffer, offset, length, position) => (await fh.read(buffer, offset, length, position)).bytesRead,
      close: () => fh.close(),
    };
  }

  async createReadStream(p: string, options: ReadStreamOptions = {}): Promise<Readable> {
    const { rel, fh, st } = await this.openRegular(p);
    const start = options.start ?? 0;
    const end = options.end ?? st.size - 1;
    if (st.size === 0 && start === 0 && end === -1) {
      await fh.close();
      return Readable.from([]);
    }
    if (start < 0 || end >= st.size || start > end) {
      await fh.close();
      throw new StoreError('ERANGE', `range ${start}-${end} outside /${rel} (${st.size} bytes)`);
    }
    // The stream owns the handle and closes it when it ends or is destroyed.
    return fh.createReadStream({ start, end, highWaterMark: options.highWaterMark ?? 1 << 20 });
  }

  async close(): Promise<void> {
    // Nothing held open between calls.
  }
}
