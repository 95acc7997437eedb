import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import { IsoImage, type Extent, type IsoNode, type TreeKind } from '../iso9660/reader';
import { fileHandleSource } from '../iso9660/source';
import { normalizeStorePath } from './path';
import { StoreError, type FileStore, type ReadStreamOptions, type StoreFile, type StoreStat } from './types';

export interface IsoStoreOptions {
  /** How often (ms) the image file is stat'ed to notice a replaced image; default 1000. */
  recheckMs?: number;
}

const DEFAULT_HIGH_WATER_MARK = 1 << 20;

/**
 * One opened image: the file handle and its index. Reference-counted so that streams and open
 * files keep reading the image they started on when the file is replaced, and so the fd number
 * is never closed (and possibly reused by another file) under a stream that still reads by it.
 */
class OpenImage {
  private refs = 1; // the store's own reference

  constructor(
    readonly fh: fs.promises.FileHandle,
    readonly image: IsoImage,
    readonly identity: string,
  ) {}

  tryAcquire(): boolean {
    if (this.refs === 0) return false;
    this.refs++;
    return true;
  }

  release(): void {
    if (--this.refs === 0) this.fh.close().catch(() => undefined);
  }

  /** A release that runs at most once, for callers with several exit paths. */
  releaser(): () => void {
    let done = false;
    return () => {
      if (!done) {
        done = true;
        this.release();
      }
    };
  }
}

function identityOf(st: fs.Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

function toStoreError(err: unknown, source: string): StoreError {
  if (err instanceof StoreError) return err;
  return new StoreError('EBADIMAGE', `cannot read image ${source}: ${(err as Error).message}`);
}

/** Streams several image ranges (a multi-extent file) one after the other. */
class RangesStream extends Readable {
  private index = 0;
  private done = 0;

  constructor(
    private readonly fh: fs.promises.FileHandle,
    private readonly ranges: Extent[],
    highWaterMark: number,
    private readonly onEnd: () => void,
  ) {
    super({ highWaterMark });
  }

  override _read(size: number): void {
    const r = this.ranges[this.index];
    if (!r) {
      this.push(null);
      return;
    }
    const n = Math.min(Math.max(size, this.readableHighWaterMark), r.length - this.done);
    const buf = Buffer.allocUnsafe(n);
    this.fh.read(buf, 0, n, r.position + this.done).then(
      ({ bytesRead }) => {
        if (bytesRead <= 0) {
          this.destroy(new StoreError('EBADIMAGE', `the image ended early at byte ${r.position + this.done}`));
          return;
        }
        this.done += bytesRead;
        if (this.done === r.length) {
          this.index++;
          this.done = 0;
        }
        this.push(bytesRead === n ? buf : buf.subarray(0, bytesRead));
      },
      (err: Error) => this.destroy(err),
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.onEnd();
    cb(err);
  }
}

/** An ISO 9660 image served read-only, re-indexed when the file on disk is replaced. */
export class IsoStore implements FileStore {
  readonly kind = 'iso' as const;
  private readonly recheckMs: number;
  private current: OpenImage | undefined;
  private failure: { identity: string; error: StoreError } | undefined;
  private checkedAt = -Infinity;
  private refreshing: Promise<OpenImage> | undefined;
  private closed = false;

  constructor(
    readonly source: string,
    options: IsoStoreOptions = {},
  ) {
    this.recheckMs = options.recheckMs ?? 1000;
  }

  /** Opens and indexes the image now, so a bad path or image is reported before serving. */
  async init(): Promise<this> {
    await this.image();
    return this;
  }

  /** The volume label of the image as last indexed ('' before init). */
  get volumeId(): string {
    return this.current?.image.volumeId ?? '';
  }

  /** The image file's size in bytes, as last indexed. */
  get size(): number {
    return this.current?.image.size ?? 0;
  }

  /** Which names are served: Rock Ridge, Joliet or plain ISO 9660. */
  get tree(): TreeKind | undefined {
    return this.current?.image.tree;
  }

  /** The current image, re-checked against the file on disk at most every recheckMs. */
  private image(): Promise<OpenImage> {
    if (this.closed) return Promise.reject(new StoreError('ENOENT', `the store for ${this.source} is closed`));
    const fresh = Date.now() - this.checkedAt < this.recheckMs;
    if (fresh && this.current) return Promise.resolve(this.current);
    if (fresh && this.failure) return Promise.reject(this.failure.error);
    this.refreshing ??= this.refresh().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private fail(identity: string, error: StoreError): never {
    this.failure = { identity, error };
    const old = this.current;
    this.current = undefined;
    old?.release();
    throw error;
  }

  private async refresh(): Promise<OpenImage> {
    this.checkedAt = Date.now();
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(this.source);
    } catch {
      return this.fail('', new StoreError('ENOENT', `image ${this.source} does not exist`));
    }
    const identity = identityOf(st);
    if (this.current?.identity === identity) return this.current;
    if (this.failure?.identity === identity) throw this.failure.error;
    if (!st.isFile()) return this.fail(identity, new StoreError('EBADIMAGE', `${this.source} is not a regular file`));
    let fh: fs.promises.FileHandle;
    try {
      // Non-blocking: should the path have become a FIFO since the stat, open() must not wait.
      fh = await fs.promises.open(this.source, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
    } catch (err) {
      return this.fail(identity, toStoreError(err, this.source));
    }
    try {
      // Identify what we actually opened: the path may have been replaced since the stat.
      const fst = await fh.stat();
      if (!fst.isFile()) throw new StoreError('EBADIMAGE', `${this.source} is not a regular file`);
      const image = await IsoImage.open(fileHandleSource(fh, fst.size));
      const opened = new OpenImage(fh, image, identityOf(fst));
      const old = this.current;
      this.current = opened;
      this.failure = undefined;
      old?.release();
      if (this.closed) {
        this.current = undefined;
        opened.release();
      }
      return opened;
    } catch (err) {
      await fh.close().catch(() => undefined);
      return this.fail(identity, toStoreError(err, this.source));
    }
  }

  /** Takes a reference on the current image for the duration of an operation. */
  private async acquire(): Promise<OpenImage> {
    // A concurrent refresh may retire the image between our await and the acquire: take the new one.
    for (let i = 0; i < 3; i++) {
      const img = await this.image();
      if (img.tryAcquire()) return img;
    }
    throw new StoreError('EBADIMAGE', `image ${this.source} keeps changing`);
  }

  private async resolve(img: OpenImage, p: string): Promise<{ node: IsoNode; rel: string }> {
    const { node, path } = await img.image.resolve(normalizeStorePath(p));
    return { node, rel: path.join('/') };
  }

  private static toStat(rel: string, node: IsoNode): StoreStat {
    return {
      path: rel,
      name: rel === '' ? '' : rel.slice(rel.lastIndexOf('/') + 1),
      isDirectory: node.type === 'dir',
      size: node.size,
      mtime: new Date(node.mtimeMs),
    };
  }

  async stat(p: string): Promise<StoreStat> {
    const segs = normalizeStorePath(p); // path errors before any image work
    const img = await this.acquire();
    try {
      const { node, path } = await img.image.resolve(segs);
      // Devices, FIFOs and sockets recorded in the image have no data to serve.
      if (node.type === 'other') throw new StoreError('EACCES', `refused: /${path.join('/')} is not a regular file or directory`);
      return IsoStore.toStat(path.join('/'), node);
    } finally {
      img.release();
    }
  }

  async list(p: string): Promise<StoreStat[]> {
    const segs = normalizeStorePath(p);
    const img = await this.acquire();
    try {
      const { node, path } = await img.image.resolve(segs);
      const rel = path.join('/');
      if (node.type !== 'dir') throw new StoreError('ENOTDIR', `not a directory: /${rel}`);
      const out: StoreStat[] = [];
      for (const e of await img.image.list(node, `/${rel}`)) {
        const childRel = rel === '' ? e.name : `${rel}/${e.name}`;
        if (e.bad || e.type === 'other') continue; // reported when asked for by name
        if (e.type !== 'symlink') {
          out.push(IsoStore.toStat(childRel, e));
          continue;
        }
        try {
          const target = (await img.image.resolve([...path, e.name])).node;
          if (target.type !== 'other') out.push(IsoStore.toStat(childRel, target));
        } catch (err) {
          // Dangling, looping or escaping symlinks are not listed, as in the folder store.
          if (!(err instanceof StoreError)) throw err;
        }
      }
      return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } finally {
      img.release();
    }
  }

  /** Resolves a regular file and keeps a reference on its image; the caller must release it. */
  private async openRegular(p: string): Promise<{ img: OpenImage; node: IsoNode; rel: string }> {
    const segs = normalizeStorePath(p);
    const img = await this.acquire();
    try {
      const { node, path } = await img.image.resolve(segs);
      const rel = path.join('/');
      if (node.type === 'dir') throw new StoreError('EISDIR', `is a directory: /${rel}`);
      if (node.type !== 'file') throw new StoreError('EACCES', `not a regular file: /${rel}`);
      return { img, node, rel };
    } catch (err) {
      img.release();
      throw err;
    }
  }

  async open(p: string): Promise<StoreFile> {
    const { img, node, rel } = await this.openRegular(p);
    const release = img.releaser();
    let closed = false;
    return {
      path: rel,
      size: node.size,
      mtime: new Date(node.mtimeMs),
      read: async (buffer, offset, length, position) => {
        if (closed) throw new StoreError('EINVAL', `/${rel} is closed`);
        const ok = [offset, length, position].every((n) => Number.isSafeInteger(n) && n >= 0) && offset + length <= buffer.length;
        if (!ok) throw new StoreError('ERANGE', `invalid read of /${rel}: offset ${offset}, length ${length}, position ${position}`);
        return img.image.read(node, buffer, offset, length, position);
      },
      ...(img.image.canReadCached
        ? {
            readCached: (buffer: Buffer, offset: number, length: number, position: number): number => {
              if (closed) return -1;
              const ok = [offset, length, position].every((n) => Number.isSafeInteger(n) && n >= 0) && offset + length <= buffer.length;
              return ok ? img.image.readCached(node, buffer, offset, length, position) : -1;
            },
          }
        : {}),
      close: async () => {
        closed = true;
        release();
      },
    };
  }

  async createReadStream(p: string, options: ReadStreamOptions = {}): Promise<Readable> {
    const { img, node, rel } = await this.openRegular(p);
    const release = img.releaser();
    const start = options.start ?? 0;
    const end = options.end ?? node.size - 1;
    if (node.size === 0 && start === 0 && end === -1) {
      release();
      return Readable.from([]);
    }
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end >= node.size || start > end) {
      release();
      throw new StoreError('ERANGE', `range ${start}-${end} outside /${rel} (${node.size} bytes)`);
    }
    const highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    const ranges = img.image.ranges(node, start, end);
    if (ranges.length === 1) {
      // The common case: straight from the image file with fs's own stream (as fast as a plain
      // file). Reading by our fd rather than the path keeps it on the image we indexed, even if
      // the file is replaced meanwhile; the fd stays ours to close (autoClose: false).
      const s = fs.createReadStream('', {
        fd: img.fh.fd,
        autoClose: false,
        start: ranges[0].position,
        end: ranges[0].position + ranges[0].length - 1,
        highWaterMark,
      });
      s.once('end', release).once('error', release).once('close', release);
      return s;
    }
    return new RangesStream(img.fh, ranges, highWaterMark, release).once('end', release);
  }

  /** Closes the image; streams and files still open keep their reference until they finish. */
  async close(): Promise<void> {
    this.closed = true;
    await this.refreshing?.catch(() => undefined);
    const old = this.current;
    this.current = undefined;
    old?.release();
  }
}
