import * as fs from 'node:fs';

/** One read-only block device as the NBD server sees it. */
export interface NbdExport {
  readonly name: string;
  readonly description?: string;
  readonly size: number;
  /** Reads up to `length` bytes at `position` into `buffer` at `offset`; returns the count read. */
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
}

/**
 * A regular file exported as a block device (the ISO image). One FileHandle is shared by every
 * connection: positional reads carry no file position, so concurrent reads do not interfere.
 */
export class FileExport implements NbdExport {
  private constructor(
    readonly name: string,
    readonly path: string,
    readonly size: number,
    private readonly fh: fs.promises.FileHandle,
    readonly description?: string,
  ) {}

  static async open(name: string, path: string, description?: string): Promise<FileExport> {
    const fh = await fs.promises.open(path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new Error(`${path} is not a regular file`);
      return new FileExport(name, path, st.size, fh, description);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  async read(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    const { bytesRead } = await this.fh.read(buffer, offset, length, position);
    return bytesRead;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** Reads exactly `length` bytes or throws: a short read means the file shrank under us. */
export async function readFully(exp: NbdExport, buffer: Buffer, offset: number, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const n = await exp.read(buffer, offset + done, length - done, position + done);
    if (n <= 0) throw new Error(`short read at ${position + done} of ${exp.name}`);
    done += n;
  }
}
