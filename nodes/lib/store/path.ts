import { StoreError } from './types';

/** Longest path a client may ask for (a TFTP request packet is at most 512 bytes anyway). */
export const MAX_PATH_LENGTH = 1024;
/** Longest single name: ISO 9660 Rock Ridge and Linux both stop at 255 bytes. */
export const MAX_SEGMENT_LENGTH = 255;

/**
 * The one place where a client's path becomes a store path. Accepts what real clients send:
 * a leading '/', Windows '\' separators, '//' (pxelinux asks for '/arch//boot/...'), '.'
 * segments, and '..' that stays inside the root. Refuses NUL bytes, '..' that leaves the root,
 * and over-long paths. Returns the segments; an empty array is the root.
 */
export function normalizeStorePath(input: string): string[] {
  if (typeof input !== 'string') throw new StoreError('EINVAL', 'path is not a string');
  if (input.includes('\0')) throw new StoreError('EINVAL', 'path contains a NUL byte');
  if (input.length > MAX_PATH_LENGTH) {
    throw new StoreError('EINVAL', `path is longer than ${MAX_PATH_LENGTH} characters`);
  }
  const out: string[] = [];
  for (const seg of input.replace(/\\/g, '/').split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length === 0) throw new StoreError('EINVAL', `path leaves the store root: ${input}`);
      out.pop();
      continue;
    }
    if (seg.length > MAX_SEGMENT_LENGTH) {
      throw new StoreError('EINVAL', `path segment is longer than ${MAX_SEGMENT_LENGTH} characters`);
    }
    out.push(seg);
  }
  return out;
}

/** normalizeStorePath joined back into 'a/b/c' form ('' for the root). */
export function normalizePath(input: string): string {
  return normalizeStorePath(input).join('/');
}
