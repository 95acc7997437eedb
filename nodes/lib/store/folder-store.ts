import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { cachedReader } from './cached-read';
import { normalizeStorePath } from './path';
import { StoreError, type FileStore, type ReadStreamOptions, type StoreFile, type StoreStat } from './types';

/**
 * Opening for reading never blocks: O_NONBLOCK makes open() of a FIFO (or a device) return at once
 * instead of holding one of libuv's few file threads until a writer appears, and O_NOFOLLOW
 * refuses a symlink put in place of the resolved path since it was checked.
 */
const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0) | (fs.constants.O_NOFOLLOW ?? 0);

/** What is served: regular files, and directories (listed). FIFOs, devices and sockets are not. */
function servable(st: fs.Stats): boolean {
  return st.isFile() || st.isDirectory();
}

/**
 * A plain directory served read-only, with symlinks that leave the root refused, and nothing but
 * regular files and directories served: a FIFO, device or socket in it is refused without being
 * opened.
 */
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

  /**
   * Resolves a client path to a real path on disk inside the root, following symlinks, and stats
   * it (without opening anything). Errors are StoreErrors whose messages name only store paths.
   */
  private async resolve(p: string): Promise<{ rel: string; real: string; st: fs.Stats }> {
    const segs = normalizeStorePath(p);
    const rel = segs.join('/');
    const root = this.realRoot ?? (await this.init()).realRoot!;
    const joined = path.join(root, ...segs);
    let real: string;
    let st: fs.Stats;
    try {
      real = await fs.promises.realpath(joined);
      if (real !== root && !real.startsWith(root + path.sep)) {
        throw new StoreError('EACCES', `refused: /${rel} resolves outside the store`);
      }
      st = await fs.promises.stat(real);
    } catch (err) {
      throw FolderStore.storeError(err, rel);
    }
    if (!servable(st)) throw new StoreError('EACCES', `refused: /${rel} is not a regular file or directory`);
    return { rel, real, st };
  }

  /** An fs error as a StoreError: the code decides the answer, the message names the store path only. */
  private static storeError(err: unknown, rel: string): Error {
    if (err instanceof StoreError) return err;
    const code = (err as NodeJS.ErrnoException).code;
    switch (code) {
      case 'ENOENT':
      case 'ENOTDIR':
        return new StoreError('ENOENT', `not found: /${rel}`);
      case 'ELOOP':
        return new StoreError('ENOENT', `not found: /${rel} (a symlink loop)`);
      case 'ENAMETOOLONG':
        return new StoreError('ENOENT', `not found: /${rel} (a symlink target too long)`);
      case 'EACCES':
      case 'EPERM':
        return new StoreError('EACCES', `refused: /${rel} is not readable by the server (${code})`);
      default:
        // An I/O error, say: kept as is for the log, never shown to clients.
        return err instanceof Error ? err : new Error(String(err));
    }
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
    const { rel, st } = await this.resolve(p);
    return FolderStore.toStat(rel, st);
  }

  async list(p: string): Promise<StoreStat[]> {
    const { rel, real, st } = await this.resolve(p);
    if (!st.isDirectory()) throw new StoreError('ENOTDIR', `not a directory: /${rel}`);
    let names: string[];
    try {
      names = await fs.promises.readdir(real);
    } catch (err) {
      throw FolderStore.storeError(err, rel);
    }
    const out: StoreStat[] = [];
    for (const name of names.sort()) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      try {
        out.push(await this.stat(childRel));
      } catch {
        // Dangling or escaping symlinks, FIFOs, devices and sockets are simply not listed.
      }
    }
    return out;
  }

  /**
   * Opens a regular file: checked by stat before the open (which cannot block), and by fstat after
   * it, which must find the very file the stat saw (the path may have been swapped in between).
   */
  private async openRegular(p: string): Promise<{ rel: string; fh: fs.promises.FileHandle; st: fs.Stats }> {
    const { rel, real, st: seen } = await this.resolve(p);
    if (seen.isDirectory()) throw new StoreError('EISDIR', `is a directory: /${rel}`);
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(real, OPEN_FLAGS);
    } catch (err) {
      throw FolderStore.storeError(err, rel);
    }
    try {
      const st = await fh.stat();
      if (st.isDirectory()) throw new StoreError('EISDIR', `is a directory: /${rel}`);
      if (!st.isFile() || st.dev !== seen.dev || st.ino !== seen.ino) {
        throw new StoreError('EACCES', `refused: /${rel} is not a regular file (or was replaced while being opened)`);
      }
      return { rel, fh, st };
    } catch (err) {
      await fh.close();
      throw FolderStore.storeError(err, rel);
    }
  }

  async open(p: string): Promise<StoreFile> {
    const { rel, fh, st } = await this.openRegular(p);
    return {
      path: rel,
      size: st.size,
      mtime: st.mtime,
      read: async (buffer, offset, length, position) => (await fh.read(buffer, offset, length, position)).bytesRead,
      readCached: cachedReader(fh),
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
