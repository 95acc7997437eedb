/**
 * Netascii (RFC 764 as RFC 1350 uses it): on the wire a line ends in CR LF and a bare CR is sent
 * as CR NUL. Files in the store use Unix line ends, so LF becomes CR LF and CR becomes CR NUL —
 * what tftp-hpa does. Both directions stream: the encoder fills fixed-size output buffers (the
 * server's read-ahead chunks) and carries a half-written pair over to the next one.
 */

const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;

export class NetasciiEncoder {
  /** Second byte of a pair that did not fit in the previous output buffer, or -1. */
  private pending = -1;

  get hasPending(): boolean {
    return this.pending >= 0;
  }

  /**
   * Converts src[srcStart..srcEnd) into dst[dstStart..dstEnd) until either runs out. Returns the
   * input consumed and the output written; a pair split at the end of dst is finished by the
   * next call, which first writes the pending byte.
   */
  encode(src: Buffer, srcStart: number, srcEnd: number, dst: Buffer, dstStart: number, dstEnd: number): { read: number; written: number } {
    let s = srcStart;
    let d = dstStart;
    if (this.pending >= 0 && d < dstEnd) {
      dst[d++] = this.pending;
      this.pending = -1;
    }
    while (s < srcEnd && d < dstEnd) {
      const c = src[s++]!;
      if (c === LF || c === CR) {
        dst[d++] = CR;
        const second = c === LF ? LF : NUL;
        if (d < dstEnd) dst[d++] = second;
        else this.pending = second;
      } else {
        dst[d++] = c;
      }
    }
    return { read: s - srcStart, written: d - dstStart };
  }
}

/** Whole-buffer encoding, for tests and small data. */
export function netasciiEncode(src: Buffer): Buffer {
  const dst = Buffer.allocUnsafe(src.length * 2);
  const { written } = new NetasciiEncoder().encode(src, 0, src.length, dst, 0, dst.length);
  return dst.subarray(0, written);
}

/** The reverse conversion (CR LF → LF, CR NUL → CR), streaming across chunk boundaries. */
export class NetasciiDecoder {
  private sawCR = false;

  decode(src: Buffer): Buffer {
    const out = Buffer.allocUnsafe(src.length + 1);
    let d = 0;
    for (const c of src) {
      if (this.sawCR) {
        this.sawCR = false;
        if (c === LF) {
          out[d++] = LF;
          continue;
        }
        // CR NUL is a bare CR; CR followed by anything else is malformed: keep both bytes.
        out[d++] = CR;
        if (c === NUL) continue;
      }
      if (c === CR) this.sawCR = true;
      else out[d++] = c;
    }
    return out.subarray(0, d);
  }

  /** Flushes a CR left at the very end of the input. */
  end(): Buffer {
    const out = this.sawCR ? Buffer.from([CR]) : Buffer.alloc(0);
    this.sawCR = false;
    return out;
  }
}

export function netasciiDecode(src: Buffer): Buffer {
  const d = new NetasciiDecoder();
  return Buffer.concat([d.decode(src), d.end()]);
}
