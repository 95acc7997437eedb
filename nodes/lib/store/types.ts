import type { Readable } from 'node:stream';

/** What a store reports about one file or directory. Paths are always normalised store paths. */
export interface StoreStat {
  /** Normalised path inside the store, without a leading slash ('' is the root). */
  path: string;
  name: string;
  isDirectory: boolean;
  size: number;
  mtime: Date;
}

/** A random-access handle on one file, for servers that read by block (TFTP, NBD). */
export interface StoreFile {
  readonly path: string;
  readonly size: number;
  readonly mtime: Date;
  /** Reads up to `length` bytes at `position` of the file into `buffer`; returns the count read. */
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  /**
   * The same read, synchronous, copying only bytes the page cache holds (it never waits on the
   * disk): the count copied, which may be short, or -1 when nothing could be (not cached, no
   * native addon). Absent where a store cannot offer it. For callers on the event loop that
   * would otherwise wake a thread-pool thread per read of a file that is almost always cached.
   */
  readCached?(buffer: Buffer, offset: number, length: number, position: number): number;
  close(): Promise<void>;
}

export interface ReadStreamOptions {
  /** First byte, inclusive (default 0). */
  start?: number;
  /** Last byte, inclusive (default size - 1), as fs.createReadStream takes it. */
  end?: number;
  highWaterMark?: number;
}

/** The read-only file source that TFTP, HTTP and NBD serve: an ISO image or a folder. */
export interface FileStore {
  readonly kind: 'iso' | 'folder';
  /** The .iso file or folder on disk. */
  readonly source: string;
  stat(path: string): Promise<StoreStat>;
  list(path: string): Promise<StoreStat[]>;
  open(path: string): Promise<StoreFile>;
  createReadStream(path: string, options?: ReadStreamOptions): Promise<Readable>;
  close(): Promise<void>;
}

export type StoreErrorCode =
  | 'ENOENT' // no such file
  | 'EINVAL' // path refused by the path rules
  | 'EACCES' // path resolves outside the store (symlink escape)
  | 'EISDIR'
  | 'ENOTDIR'
  | 'EBADIMAGE' // the image is not an ISO 9660 image, or is corrupt
  | 'ERANGE'; // a read range outside the file

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}

export function isStoreError(err: unknown, code?: StoreErrorCode): err is StoreError {
  return err instanceof StoreError && (code === undefined || err.code === code);
}
