import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { normalizeStorePath } from './path';
import { StoreError } from './types';

/**
 * Files a flow publishes into a store (an install script, a per-MAC pxelinux config): kept as
 * plain files in a folder of the Node-RED user dir, so they survive redeploys and restarts, and
 * served by TFTP, HTTP and NFS through a FolderStore layered in front of the ISO (a published file
 * shadows the image's file of the same path). This module only writes and lists that folder.
 *
 * Bounds, so a flow gone wrong cannot fill the disk or the server's memory: MAX_FILE_BYTES per
 * file, MAX_FILES files, MAX_TOTAL_BYTES in all. A write goes to a temporary file renamed into
 * place, so a client that is reading the old version keeps reading it whole.
 */
export const PUBLISHED_LIMITS = {
  /** Scripts and boot configs, not images: those belong in the store's extra folder. */
  maxFileBytes: 4 * 1024 * 1024,
  maxFiles: 1000,
  maxTotalBytes: 64 * 1024 * 1024,
};

export interface PublishedFile {
  /** Store path without a leading slash ('install.sh', 'pxelinux.cfg/01-52-54-00-12-34-56'). */
  path: string;
  size: number;
  mtime: Date;
}

export type PublishedLimits = typeof PUBLISHED_LIMITS;

const TEMP_PREFIX = '.pxe-publishing-';

export class PublishedFiles {
  /** Writes run one after another: the bounds are checked against a listing no other write changes. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly folder: string,
    private readonly limits: PublishedLimits = PUBLISHED_LIMITS,
  ) {}

  /** Creates the folder (and drops temporaries a crash left behind). */
  async init(): Promise<this> {
    await fs.promises.mkdir(this.folder, { recursive: true, mode: 0o755 });
    for (const name of await fs.promises.readdir(this.folder)) {
      if (name.startsWith(TEMP_PREFIX)) await fs.promises.rm(path.join(this.folder, name), { force: true });
    }
    return this;
  }

  /** A path checked by the store's own rules, and refused if it names the folder itself. */
  private target(p: string): { rel: string; abs: string } {
    const segs = normalizeStorePath(p);
    if (segs.length === 0) throw new StoreError('EINVAL', 'a file path is needed');
    if (segs[0]!.startsWith(TEMP_PREFIX)) throw new StoreError('EINVAL', `reserved name: ${segs[0]}`);
    return { rel: segs.join('/'), abs: path.join(this.folder, ...segs) };
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Publishes `data` at `p`, replacing what was there. */
  async set(p: string, data: Buffer | string): Promise<PublishedFile> {
    const { rel, abs } = this.target(p);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (bytes.length > this.limits.maxFileBytes) {
      throw new StoreError('EINVAL', `/${rel} is ${bytes.length} bytes; a published file may have at most ${this.limits.maxFileBytes}`);
    }
    return this.serial(async () => {
      const files = await this.list();
      const old = files.find((f) => f.path === rel);
      if (!old && files.length >= this.limits.maxFiles) throw new StoreError('EINVAL', `already ${files.length} published files (at most ${this.limits.maxFiles})`);
      const total = files.reduce((n, f) => n + f.size, 0) - (old?.size ?? 0) + bytes.length;
      if (total > this.limits.maxTotalBytes) throw new StoreError('EINVAL', `published files would take ${total} bytes (at most ${this.limits.maxTotalBytes})`);
      // A path through a published file, or onto a published folder, cannot be written.
      await this.checkParents(rel);
      const st = await fs.promises.lstat(abs).catch(() => null);
      if (st && !st.isFile()) throw new StoreError('EISDIR', `/${rel} is a folder of published files`);
      await fs.promises.mkdir(path.dirname(abs), { recursive: true });
      const tmp = path.join(this.folder, `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`);
      try {
        await fs.promises.writeFile(tmp, bytes, { mode: 0o644, flag: 'wx' });
        await fs.promises.rename(tmp, abs);
      } catch (err) {
        await fs.promises.rm(tmp, { force: true });
        throw err;
      }
      const done = await fs.promises.stat(abs);
      return { path: rel, size: done.size, mtime: done.mtime };
    });
  }

  private async checkParents(rel: string): Promise<void> {
    const segs = rel.split('/');
    for (let i = 1; i < segs.length; i++) {
      const st = await fs.promises.lstat(path.join(this.folder, ...segs.slice(0, i))).catch(() => null);
      if (st && !st.isDirectory()) throw new StoreError('ENOTDIR', `/${segs.slice(0, i).join('/')} is a published file, not a folder`);
    }
  }

  /** Removes a published file (and the folders it leaves empty); false if there was none. */
  async delete(p: string): Promise<boolean> {
    const { rel, abs } = this.target(p);
    return this.serial(async () => {
      const st = await fs.promises.lstat(abs).catch(() => null);
      if (!st) return false;
      if (!st.isFile()) throw new StoreError('EISDIR', `/${rel} is a folder of published files`);
      await fs.promises.rm(abs);
      for (let dir = path.dirname(abs); dir !== this.folder && dir.startsWith(this.folder + path.sep); dir = path.dirname(dir)) {
        if ((await fs.promises.readdir(dir)).length > 0) break;
        await fs.promises.rmdir(dir);
      }
      return true;
    });
  }

  /** Every published file, sorted by path. Walks at most maxFiles files (the folder is ours). */
  async list(): Promise<PublishedFile[]> {
    const out: PublishedFile[] = [];
    const walk = async (dir: string, rel: string): Promise<void> => {
      let entries: fs.Dirent[];
      try {
        entries = await fs.promises.readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        if (e.name.startsWith(TEMP_PREFIX) || out.length > this.limits.maxFiles) continue;
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) await walk(path.join(dir, e.name), r);
        else if (e.isFile()) {
          const st = await fs.promises.stat(path.join(dir, e.name)).catch(() => null);
          if (st) out.push({ path: r, size: st.size, mtime: st.mtime });
        }
      }
    };
    await walk(this.folder, '');
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /** Removes every published file. */
  clear(): Promise<void> {
    return this.serial(async () => {
      await fs.promises.rm(this.folder, { recursive: true, force: true });
      await fs.promises.mkdir(this.folder, { recursive: true, mode: 0o755 });
    });
  }
}

/** Where a store node's published files live: one folder per store node, in the user dir. */
export function publishedFolder(userDir: string, storeNodeId: string): string {
  return path.join(userDir, 'pxe-files', storeNodeId.replace(/[^\w.-]/g, '_'));
}
