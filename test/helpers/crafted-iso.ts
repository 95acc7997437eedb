/**
 * Crafted ISO 9660 images for the hostile tests: plain ISO 9660 (no Rock Ridge, no Joliet) with
 * directories of many entries of the smallest records possible, the costliest case for a reader
 * per byte of directory. Built in memory, no mastering tool involved.
 */
const SECTOR = 2048;

function both32(b: Buffer, at: number, v: number): void {
  b.writeUInt32LE(v, at);
  b.writeUInt32BE(v, at + 4);
}

function both16(b: Buffer, at: number, v: number): void {
  b.writeUInt16LE(v, at);
  b.writeUInt16BE(v, at + 2);
}

/** One directory record (ECMA-119 9.1). */
function record(id: Buffer, block: number, size: number, dir: boolean): Buffer {
  const len = 33 + id.length + (id.length % 2 === 0 ? 1 : 0);
  const r = Buffer.alloc(len);
  r[0] = len;
  both32(r, 2, block);
  both32(r, 10, size);
  r[18] = 120; // 2020-01-01
  r[19] = 1;
  r[20] = 1;
  r[25] = dir ? 2 : 0;
  both16(r, 28, 1);
  r[32] = id.length;
  id.copy(r, 33);
  return r;
}

/** Records laid out in sectors (a record never crosses a sector boundary). */
function extent(recs: Buffer[]): Buffer {
  const out: Buffer[] = [];
  let cur = Buffer.alloc(SECTOR);
  let pos = 0;
  for (const r of recs) {
    if (pos + r.length > SECTOR) {
      out.push(cur);
      cur = Buffer.alloc(SECTOR);
      pos = 0;
    }
    r.copy(cur, pos);
    pos += r.length;
  }
  out.push(cur);
  return Buffer.concat(out);
}

const pad = (b: Buffer): Buffer => (b.length % SECTOR === 0 ? b : Buffer.concat([b, Buffer.alloc(SECTOR - (b.length % SECTOR))]));

/** The name of entry `j` of a crafted directory (base 36, upper case: what plain ISO 9660 allows). */
export const craftedName = (j: number): string => j.toString(36).toUpperCase();

/** Entries of the smallest records that fill about `bytes` of directory. */
export const entriesFor = (bytes: number): number => Math.floor(bytes / SECTOR) * Math.floor(SECTOR / 38);

/**
 * An image whose root holds directories D0…Dn-1 (directory i with `dirs[i]` empty files named
 * craftedName(j)) and the regular files of `files` (upper-case names).
 */
export function craftImage(dirs: number[], files: Record<string, Buffer> = {}): Buffer {
  const dot = (block: number, size: number): Buffer[] => [record(Buffer.from([0]), block, size, true), record(Buffer.from([1]), block, size, true)];
  const dirExtents = dirs.map((n) => extent([...dot(0, 0), ...Array.from({ length: n }, (_, j) => record(Buffer.from(craftedName(j)), 0, 0, false))]));
  const fileList = Object.entries(files);
  const rootRecs = (dirBlocks: number[], fileBlocks: number[]): Buffer[] => [
    ...dot(18, 0),
    ...dirExtents.map((d, i) => record(Buffer.from(`D${i}`), dirBlocks[i] ?? 0, d.length, true)),
    ...fileList.map(([name, data], i) => record(Buffer.from(name), fileBlocks[i] ?? 0, data.length, false)),
  ];
  let next = 18 + extent(rootRecs([], [])).length / SECTOR;
  const place = (len: number): number => {
    const b = next;
    next += Math.ceil(len / SECTOR);
    return b;
  };
  const dirBlocks = dirExtents.map((d) => place(d.length));
  const fileBlocks = fileList.map(([, data]) => place(data.length));
  const root = extent(rootRecs(dirBlocks, fileBlocks));
  const pvd = Buffer.alloc(SECTOR);
  pvd[0] = 1;
  pvd.write('CD001', 1, 'latin1');
  pvd[6] = 1;
  pvd.write('CRAFTED'.padEnd(32), 40, 'latin1');
  both32(pvd, 80, next);
  both16(pvd, 128, SECTOR);
  record(Buffer.from([0]), 18, root.length, true).copy(pvd, 156);
  const term = Buffer.alloc(SECTOR);
  term[0] = 255;
  term.write('CD001', 1, 'latin1');
  term[6] = 1;
  return Buffer.concat([Buffer.alloc(16 * SECTOR), pvd, term, root, ...dirExtents, ...fileList.map(([, data]) => pad(data))]);
}
