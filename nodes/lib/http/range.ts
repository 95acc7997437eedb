/**
 * The Range header (RFC 9110 §14.2) for a single byte range, and If-Range (§13.1.5). Multiple
 * ranges are answered with the whole file: a server may ignore Range, and no boot client asks
 * for multipart/byteranges.
 */

export type RangeResult =
  /** No Range header, or one we ignore (bad syntax, another unit): serve the whole file. */
  | { type: 'none' }
  /** Several ranges: served as the whole file (200). */
  | { type: 'multiple' }
  /** Syntactically valid but no byte of it is in the file: 416 with `Content-Range: bytes *\/size`. */
  | { type: 'unsatisfiable' }
  /** One satisfiable range, inclusive bounds already clipped to the file. */
  | { type: 'range'; start: number; end: number };

/** Longer Range headers are ignored rather than parsed (no client needs this much). */
const MAX_RANGE_HEADER = 1024;
const SPEC = /^(\d*)-(\d*)$/;

export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined || header.length > MAX_RANGE_HEADER) return { type: 'none' };
  const eq = header.indexOf('=');
  if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== 'bytes') return { type: 'none' };
  const specs = header
    .slice(eq + 1)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (specs.length === 0) return { type: 'none' };
  // Every spec must be well formed, or the whole header is ignored (§14.2).
  const parsed: Array<[string, string]> = [];
  for (const spec of specs) {
    const m = SPEC.exec(spec);
    if (!m || (m[1] === '' && m[2] === '')) return { type: 'none' };
    if (m[1] !== '' && m[2] !== '' && Number(m[2]) < Number(m[1])) return { type: 'none' };
    parsed.push([m[1]!, m[2]!]);
  }
  if (parsed.length > 1) return { type: 'multiple' };
  const [first, last] = parsed[0]!;
  if (first === '') {
    // Suffix range: the last N bytes.
    const n = Number(last);
    if (n === 0 || size === 0) return { type: 'unsatisfiable' };
    return { type: 'range', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  if (start >= size) return { type: 'unsatisfiable' };
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  return { type: 'range', start, end };
}

/**
 * Whether a Range request still applies given its If-Range header: an entity tag must match
 * strongly, a date must equal Last-Modified exactly. Otherwise the whole file is sent (200).
 */
export function ifRangeMatches(header: string | undefined, etag: string, mtime: Date): boolean {
  if (header === undefined) return true;
  const value = header.trim();
  if (value.startsWith('"') || value.startsWith('W/')) {
    return !value.startsWith('W/') && !etag.startsWith('W/') && value === etag;
  }
  const date = Date.parse(value);
  return Number.isFinite(date) && date === wholeSeconds(mtime);
}

/** HTTP dates have one-second resolution. */
export function wholeSeconds(d: Date): number {
  return Math.floor(d.getTime() / 1000) * 1000;
}

export function contentRange(start: number, end: number, size: number): string {
  return `bytes ${start}-${end}/${size}`;
}
