import type { FileHandle } from 'node:fs/promises';
import { cachedReader } from '../store/cached-read';
import { StoreError } from '../store/types';

/**
 * Where the reader gets its bytes: positional reads only, so a file is never loaded whole. An fs
 * FileHandle in production; tests and the fuzzer may wrap a Buffer.
 */
export interface ImageSource {
  readonly size: number;
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  /** Page-cached bytes only, synchronously (see StoreFile.readCached); -1 when none could be read. */
  readCached?(buffer: Buffer, offset: number, length: number, position: number): number;
}

export function badImage(message: string): StoreError {
  return new StoreError('EBADIMAGE', message);
}

/**
 * Reads exactly `length` bytes at `position`. Every caller caps `length` itself; this refuses
 * anything outside the image before allocating, so a corrupt size never turns into a huge buffer.
 */
export async function readExact(src: ImageSource, position: number, length: number, what: string): Promise<Buffer> {
  if (!Number.isSafeInteger(position) || !Number.isSafeInteger(length) || position < 0 || length < 0) {
    throw badImage(`${what}: invalid position ${position} / length ${length}`);
  }
  if (position + length > src.size) {
    throw badImage(`${what} (bytes ${position}-${position + length - 1}) lies past the end of the image (${src.size} bytes)`);
  }
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = await src.read(buf, done, length - done, position + done);
    } catch (err) {
      throw badImage(`${what}: reading the image failed (${(err as Error).message})`);
    }
    // The file shrank under us (being replaced or truncated): report it rather than spin.
    if (n <= 0) throw badImage(`${what}: the image ended early at byte ${position + done}`);
    done += n;
  }
  return buf;
}

/** An image read through an fs FileHandle (what the store uses). */
export function fileHandleSource(fh: FileHandle, size: number): ImageSource {
  return { size, read: async (buffer, offset, length, position) => (await fh.read(buffer, offset, length, position)).bytesRead, readCached: cachedReader(fh) };
}

/** An in-memory image, for tests and the fuzzer. */
export function bufferSource(buf: Buffer): ImageSource {
  return {
    size: buf.length,
    read: async (buffer, offset, length, position) => {
      if (position >= buf.length) return 0;
      return buf.copy(buffer, offset, position, Math.min(buf.length, position + length));
    },
  };
}
