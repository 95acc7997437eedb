/**
 * Validators and conditional requests (RFC 9110 §8.8, §13): an ETag derived from size and mtime
 * (as nginx does, so no file is ever hashed), Last-Modified, and the If-* preconditions in the
 * order §13.2.2 prescribes.
 */
import { wholeSeconds } from './range';

export interface Validators {
  etag: string;
  lastModified: string;
  mtime: Date;
}

export function validatorsFor(size: number, mtime: Date): Validators {
  return {
    etag: `"${size.toString(16)}-${Math.floor(mtime.getTime()).toString(16)}"`,
    lastModified: mtime.toUTCString(),
    mtime,
  };
}

export type ConditionalOutcome = 'proceed' | 'not-modified' | 'precondition-failed';

type Headers = Record<string, string | string[] | undefined>;

function header(h: Headers, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** The entity tags in an If-Match / If-None-Match list; null for '*'. */
export function parseEtagList(value: string): string[] | null {
  if (value.trim() === '*') return null;
  return value.match(/(?:W\/)?"[^"]*"/g) ?? [];
}

const opaque = (tag: string): string => (tag.startsWith('W/') ? tag.slice(2) : tag);

function weakMatch(list: string[] | null, etag: string): boolean {
  return list === null || list.some((t) => opaque(t) === opaque(etag));
}

function strongMatch(list: string[] | null, etag: string): boolean {
  return list === null || list.some((t) => !t.startsWith('W/') && !etag.startsWith('W/') && t === etag);
}

/** Evaluates If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since for GET/HEAD. */
export function evaluateConditions(headers: Headers, v: Validators): ConditionalOutcome {
  const mtime = wholeSeconds(v.mtime);
  const ifMatch = header(headers, 'if-match');
  if (ifMatch !== undefined) {
    if (!strongMatch(parseEtagList(ifMatch), v.etag)) return 'precondition-failed';
  } else {
    const ius = header(headers, 'if-unmodified-since');
    const date = ius === undefined ? NaN : Date.parse(ius);
    if (Number.isFinite(date) && mtime > date) return 'precondition-failed';
  }
  const inm = header(headers, 'if-none-match');
  if (inm !== undefined) {
    return weakMatch(parseEtagList(inm), v.etag) ? 'not-modified' : 'proceed';
  }
  const ims = header(headers, 'if-modified-since');
  const date = ims === undefined ? NaN : Date.parse(ims);
  if (Number.isFinite(date) && mtime <= date) return 'not-modified';
  return 'proceed';
}
