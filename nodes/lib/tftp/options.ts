/**
 * Option negotiation for read requests: RFC 2347 (OACK), RFC 2348 (blksize), RFC 2349 (timeout,
 * tsize) and RFC 7440 (windowsize). The server answers only options it understands and accepts;
 * unknown or invalid options are left out of the OACK, which RFC 2347 allows, so a quirky client
 * still gets its file. When nothing is acknowledged no OACK is sent and the transfer starts with
 * DATA block 1, as RFC 1350 expects.
 */
import { DEFAULT_BLKSIZE, MAX_BLKSIZE, type TftpOption } from './codec';

export const MIN_BLKSIZE = 8;
/**
 * The most we grant: RFC 7440 allows up to 65535, but ACKs carry 16-bit block numbers, and a window
 * over half that space would make a late ACK from the previous window look like a new one.
 */
export const MAX_GRANTED_WINDOWSIZE = 32767;
export const MIN_TIMEOUT_S = 1;
export const MAX_TIMEOUT_S = 255;
/** A block fits an Ethernet frame: 1500 - 20 (IPv4) - 8 (UDP) - 4 (TFTP header). */
export const ETHERNET_BLKSIZE = 1468;
/** Default windowsize cap: past a few dozen blocks a LAN gains nothing and memory grows. */
export const DEFAULT_MAX_WINDOWSIZE = 64;

export interface NegotiationLimits {
  /** Largest blksize granted; larger requests get this value (RFC 2348 lets the server lower it). */
  maxBlksize: number;
  /** Largest windowsize granted (RFC 7440 lets the server lower it). */
  maxWindowsize: number;
}

export interface NegotiatedOptions {
  blksize: number;
  windowsize: number;
  /** Retransmission timeout the client asked for, in seconds (RFC 2349), if accepted. */
  timeout?: number;
  /** The size reported to the client (RFC 2349), if it asked and the size is known. */
  tsize?: number;
}

export interface Negotiation {
  options: NegotiatedOptions;
  /** What to put in the OACK, in request order; empty means: send no OACK. */
  oack: TftpOption[];
}

/** A decimal integer as clients write it, or NaN (no signs, no spaces, no exponents). */
function parseDecimal(value: string): number {
  return /^[0-9]{1,10}$/.test(value) ? Number(value) : NaN;
}

/** Checks and normalises limits a user configured (unusable values become the RFC bounds). */
export function clampLimits(limits: Partial<NegotiationLimits>): NegotiationLimits {
  const blk = Math.floor(Number(limits.maxBlksize ?? ETHERNET_BLKSIZE));
  const win = Math.floor(Number(limits.maxWindowsize ?? DEFAULT_MAX_WINDOWSIZE));
  return {
    maxBlksize: Number.isFinite(blk) ? Math.min(MAX_BLKSIZE, Math.max(MIN_BLKSIZE, blk)) : ETHERNET_BLKSIZE,
    maxWindowsize: Number.isFinite(win) ? Math.min(MAX_GRANTED_WINDOWSIZE, Math.max(1, win)) : DEFAULT_MAX_WINDOWSIZE,
  };
}

/**
 * Negotiates a read request's options. `fileSize` is the size a tsize answer reports, or
 * undefined when it is not known up front (netascii, whose converted size needs a full read).
 */
export function negotiate(requested: readonly TftpOption[], limits: NegotiationLimits, fileSize: number | undefined): Negotiation {
  const options: NegotiatedOptions = { blksize: DEFAULT_BLKSIZE, windowsize: 1 };
  const oack: TftpOption[] = [];
  const seen = new Set<string>();
  for (const { name, value } of requested) {
    // A repeated option is ambiguous; the first one counts.
    if (seen.has(name)) continue;
    seen.add(name);
    const n = parseDecimal(value);
    switch (name) {
      case 'blksize':
        if (!(n >= MIN_BLKSIZE)) break;
        options.blksize = Math.min(n, limits.maxBlksize, MAX_BLKSIZE);
        oack.push({ name, value: String(options.blksize) });
        break;
      case 'windowsize':
        if (!(n >= 1)) break;
        options.windowsize = Math.min(n, limits.maxWindowsize, MAX_GRANTED_WINDOWSIZE);
        oack.push({ name, value: String(options.windowsize) });
        break;
      case 'timeout':
        // RFC 2349: the server must answer with the same value or not at all.
        if (!(n >= MIN_TIMEOUT_S && n <= MAX_TIMEOUT_S)) break;
        options.timeout = n;
        oack.push({ name, value: String(n) });
        break;
      case 'tsize':
        // In a read request the client sends 0 (some send anything); the answer is the size.
        if (fileSize === undefined || Number.isNaN(n)) break;
        options.tsize = fileSize;
        oack.push({ name, value: String(fileSize) });
        break;
      default:
        // Unknown options (multicast, rollover, utimeout, vendor ones) are simply not acknowledged.
        break;
    }
  }
  return { options, oack };
}
