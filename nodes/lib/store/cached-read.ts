/**
 * Synchronous reads of page-cached bytes for StoreFile.readCached: preadv2 with RWF_NOWAIT through
 * the native addon, so the event loop never waits on a disk. Without the addon there is none.
 */
import type { FileHandle } from 'node:fs/promises';
import { constants } from 'node:os';
import { nativePreadNowait } from '../native-udp';

const { EAGAIN } = constants.errno;

export type CachedRead = (buffer: Buffer, offset: number, length: number, position: number) => number;

/** readCached for an open FileHandle, or undefined without the addon. */
export function cachedReader(fh: FileHandle): CachedRead | undefined {
  const pread = nativePreadNowait();
  if (!pread) return undefined;
  let unsupported = false;
  return (buffer, offset, length, position) => {
    // A closed handle's fd is -1 (and its number may already belong to another file).
    if (unsupported || fh.fd < 0) return -1;
    const n = pread(fh.fd, buffer, offset, length, position);
    if (n >= 0) return n;
    // EOPNOTSUPP (a file system without RWF_NOWAIT): do not ask again for this file.
    if (n !== -EAGAIN) unsupported = true;
    return -1;
  };
}
