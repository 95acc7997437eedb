import { StoreError } from '../store/types';
import { stripVersion, ucs2be } from './bytes';
import { readDescriptors, SECTOR } from './descriptors';
import { directoryRecords, FLAG_ASSOCIATED, FLAG_DIRECTORY, FLAG_MULTI_EXTENT, MIN_RECORD, parseRecord, type DirRecord } from './records';
import { badImage, readExact, type ImageSource } from './source';
import { collectSusp, detectSusp, interpretRockRidge, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type SymlinkTarget } from './susp';

// Indexing is lazy, per directory: a lookup reads only the directories on its path, and each
// parsed directory is cached. Measured with bench/store.ts (1,200-file image, warm page cache):
// a first lookup outside the 1,000-entry directory takes ~0.5 ms, one inside it ~3-9 ms (that
// directory is parsed), while listing every directory up front takes ~9 ms and grows with the
// image (a distribution DVD has ~50k entries) although pxelinux asks for ~25 files. Lazy also
// bounds the work a corrupt image causes to the path asked for, and re-indexing a replaced image
// costs nothing until it is used.

/**
 * Largest directory we read, refused above with a store error. A parsed entry costs ~270 bytes
 * of heap (measured, shortest names) against 34–250 on disc: a crafted 60 MiB directory cost
 * ~370 MiB and 3.7 s before any bound. 1 MiB holds ~5,000 entries with Rock Ridge names (a flat
 * RHEL 7 Packages/ has ~4,000; Arch's largest has a few dozen) or ~27,000 of the smallest
 * records (~7 MiB parsed, ~0.2 s).
 */
export const MAX_DIRECTORY_BYTES = 1024 * 1024;
/**
 * Parsed directories kept, by their estimated heap (ENTRY_COST): least recently used ones are
 * dropped and re-read on demand. The directory parsed last always stays, even alone over the
 * budget (a largest one of the smallest records is ~8 MiB), so no lookup parses again the
 * directory it has just parsed. Measured over 24 directories of ~0.9 MiB looked up in turn: the
 * process grew by ~20–30 MiB (it grew by ~370 MiB for one 60 MiB directory before any bound).
 */
export const MAX_CACHED_BYTES = 8 * 1024 * 1024;
/** Estimated heap of one parsed entry besides its name (name string, map entry, array slots). */
const ENTRY_COST = 100;
const LISTING_COST = 1024;
/** Directories above this size are parsed one at a time: concurrent lookups cannot multiply the peak. */
const LARGE_DIRECTORY_BYTES = 64 * 1024;
/** Parsing lets other work (other clients) run every this many records. */
const YIELD_EVERY = 1024;
/** Symlinks followed in one lookup, as Linux (MAXSYMLINKS). */
const MAX_SYMLINK_FOLLOWS = 40;
/** Path components handled in one lookup, symlink expansions included. */
const MAX_LOOKUP_STEPS = 4096;

export type TreeKind = 'rockridge' | 'joliet' | 'iso9660';
export type NodeType = 'file' | 'dir' | 'symlink' | 'other';

/** A byte range of the image. */
export interface Extent {
  position: number;
  length: number;
}

export interface IsoNode {
  name: string;
  type: NodeType;
  /** File size: the sum of its extents (multi-extent files). 0 for directories. */
  size: number;
  /** Modification time, ms since the epoch (a number: a Date per entry costs ~110 bytes of heap). */
  mtimeMs: number;
  /** File data, or for a directory its own extent. */
  extents: Extent[];
  symlink?: SymlinkTarget;
  /** Set when the entry cannot be served (its data lies outside the image); reported on access. */
  bad?: string;
  /** A Rock Ridge CL directory: its size is only known from its own '.' record. */
  unsized?: boolean;
}

function isAddressable(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}

const KINDS: readonly NodeType[] = ['file', 'dir', 'symlink', 'other'];
/** Kind byte flag: a Rock Ridge CL directory (IsoNode.unsized). */
const UNSIZED = 4;

/**
 * One parsed directory, kept compact: names in an array and a map, everything else in typed
 * arrays (a few large objects rather than several small ones per entry: ~3× less heap, and little
 * for the garbage collector to trace or free when the directory leaves the cache). IsoNodes are
 * made when asked for. Entries that need more (several extents, a symlink, a fault) keep it aside.
 */
class Listing {
  readonly names: string[] = [];
  readonly exact = new Map<string, number>();
  /** Lower-cased names, made on the first lookup that needs them (most never do). */
  private folded?: Map<string, number>;
  private kinds: Uint8Array;
  private pos: Float64Array;
  private len: Float64Array;
  private size: Float64Array;
  private mtime: Float64Array;
  private readonly extra = new Map<number, { extents?: Extent[]; symlink?: SymlinkTarget; bad?: string }>();

  /** `capacity`: the most entries the directory can hold (its bytes over the smallest record). */
  constructor(capacity: number) {
    this.kinds = new Uint8Array(capacity);
    this.pos = new Float64Array(capacity);
    this.len = new Float64Array(capacity);
    this.size = new Float64Array(capacity);
    this.mtime = new Float64Array(capacity);
  }

  get count(): number {
    return this.names.length;
  }

  add(n: IsoNode): void {
    const i = this.names.length;
    this.names.push(n.name);
    if (!this.exact.has(n.name)) this.exact.set(n.name, i);
    this.kinds[i] = KINDS.indexOf(n.type) | (n.unsized ? UNSIZED : 0);
    this.size[i] = n.size;
    this.mtime[i] = n.mtimeMs;
    if (n.extents.length === 1 && !n.symlink && !n.bad) {
      this.pos[i] = n.extents[0].position;
      this.len[i] = n.extents[0].length;
    } else {
      this.extra.set(i, { extents: n.extents, symlink: n.symlink, bad: n.bad });
    }
  }

  /** Drops the unused tail of the arrays (the capacity was an upper bound). */
  done(): this {
    const n = this.count;
    this.kinds = this.kinds.slice(0, n);
    this.pos = this.pos.slice(0, n);
    this.len = this.len.slice(0, n);
    this.size = this.size.slice(0, n);
    this.mtime = this.mtime.slice(0, n);
    return this;
  }

  node(i: number): IsoNode {
    const k = this.kinds[i];
    const x = this.extra.get(i);
    const node: IsoNode = {
      name: this.names[i],
      type: KINDS[k & 3],
      size: this.size[i],
      mtimeMs: this.mtime[i],
      extents: x?.extents ?? [{ position: this.pos[i], length: this.len[i] }],
    };
    if (x?.symlink) node.symlink = x.symlink;
    if (x?.bad) node.bad = x.bad;
    if (k & UNSIZED) node.unsized = true;
    return node;
  }

  /** Exact name first, then case-insensitively. */
  lookup(name: string): IsoNode | undefined {
    let i = this.exact.get(name);
    if (i === undefined) {
      if (!this.folded) {
        this.folded = new Map();
        for (let j = 0; j < this.count; j++) {
          const low = this.names[j].toLowerCase();
          if (!this.folded.has(low)) this.folded.set(low, j);
        }
      }
      i = this.folded.get(name.toLowerCase());
    }
    return i === undefined ? undefined : this.node(i);
  }

  entries(): IsoNode[] {
    return Array.from({ length: this.count }, (_, i) => this.node(i));
  }

  /** The heap it is reckoned to hold. */
  cost(): number {
    let n = LISTING_COST;
    for (const name of this.names) n += ENTRY_COST + 2 * name.length;
    return n;
  }
}

interface CacheEntry {
  listing: Promise<Listing>;
  /** Estimated heap once parsed; 0 while it loads. */
  bytes: number;
}

/** The index of one ISO 9660 image: volume descriptors, the chosen tree, and parsed directories. */
export class IsoImage {
  private readonly cache = new Map<number, CacheEntry>();
  /** Sum of the loaded entries' `bytes`. */
  private cachedBytes = 0;
  /** The parse of a large directory in progress (the next one waits for it). */
  private largeLoad: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly src: ImageSource,
    readonly volumeId: string,
    readonly tree: TreeKind,
    readonly root: IsoNode,
    /** SUSP LEN_SKP from the root's SP entry (Rock Ridge trees only). */
    private readonly suspSkip: number,
  ) {}

  get size(): number {
    return this.src.size;
  }

  /**
   * Reads the descriptors and picks one tree for names: Rock Ridge (the primary tree with SUSP)
   * wins, then Joliet, then plain ISO 9660 — the priority Linux and xorriso use too.
   */
  static async open(src: ImageSource): Promise<IsoImage> {
    const { primary, joliet } = await readDescriptors(src);
    const pRoot = parseRecord(primary.rootRecord, 0, primary.rootRecord.length, primary.offset + 156);
    const pRootNode = IsoImage.rootNode(pRoot, src.size, 'primary');
    // SUSP is announced by an SP entry in the first ('.') record of the root directory.
    const first = await readExact(src, pRootNode.extents[0].position, Math.min(SECTOR, pRootNode.extents[0].length), 'root directory');
    const dot = parseRecord(first, 0, first.length, pRootNode.extents[0].position);
    const skip = detectSusp(dot.systemUse);
    const volumeId = primary.volumeId || joliet?.volumeId || '';
    if (skip !== undefined) return new IsoImage(src, volumeId, 'rockridge', pRootNode, skip);
    if (joliet) {
      const jRoot = parseRecord(joliet.rootRecord, 0, joliet.rootRecord.length, joliet.offset + 156);
      return new IsoImage(src, volumeId, 'joliet', IsoImage.rootNode(jRoot, src.size, 'Joliet'), 0);
    }
    return new IsoImage(src, volumeId, 'iso9660', pRootNode, 0);
  }

  private static rootNode(rec: DirRecord, imageSize: number, which: string): IsoNode {
    const position = rec.block * SECTOR;
    if (!(rec.flags & FLAG_DIRECTORY)) throw badImage(`the ${which} root directory record is not marked as a directory`);
    if (rec.dataLength < 34 || position + rec.dataLength > imageSize) {
      throw badImage(`the ${which} root directory (block ${rec.block}, ${rec.dataLength} bytes) lies outside the image (${imageSize} bytes)`);
    }
    return { name: '', type: 'dir', size: 0, mtimeMs: rec.mtime.getTime(), extents: [{ position, length: rec.dataLength }] };
  }

  /** The entries of a directory, in on-disc order ('.', '..', and hidden relocations left out). */
  async list(dir: IsoNode, label: string): Promise<IsoNode[]> {
    return (await this.listing(dir, label)).entries();
  }

  /** Estimated heap held by parsed directories (MAX_CACHED_BYTES, or the last one parsed if larger). */
  get cacheBytes(): number {
    return this.cachedBytes;
  }

  private listing(dir: IsoNode, label: string): Promise<Listing> {
    if (dir.type !== 'dir') return Promise.reject(new StoreError('ENOTDIR', `not a directory: ${label}`));
    if (dir.bad) return Promise.reject(badImage(dir.bad));
    const key = dir.extents[0].position;
    const hit = this.cache.get(key);
    if (hit) {
      // Refresh its place in the (insertion-ordered) map: least recently used goes first.
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit.listing;
    }
    const entry: CacheEntry = { listing: this.loadListing(dir, label), bytes: 0 };
    this.cache.set(key, entry);
    entry.listing.then(
      (l) => {
        // Dropped meanwhile (evicted, or the image retired): not counted.
        if (this.cache.get(key) !== entry) return;
        entry.bytes = l.cost();
        this.cachedBytes += entry.bytes;
        this.evict(entry);
      },
      // A failed read (image replaced mid-read) must not stick; corrupt directories just fail again.
      () => this.cache.get(key) === entry && this.cache.delete(key),
    );
    return entry.listing;
  }

  /** Drops least recently used directories until the cache is within its budget (`keep` stays). */
  private evict(keep: CacheEntry): void {
    for (const [key, e] of this.cache) {
      if (this.cachedBytes <= MAX_CACHED_BYTES) break;
      if (e === keep || e.bytes === 0) continue;
      this.cache.delete(key);
      this.cachedBytes -= e.bytes;
    }
  }

  private async loadListing(dir: IsoNode, label: string): Promise<Listing> {
    const { position } = dir.extents[0];
    let { length } = dir.extents[0];
    if (dir.unsized) {
      const head = await readExact(this.src, position, SECTOR, `relocated directory ${label}`);
      const dot = parseRecord(head, 0, SECTOR, position);
      if (dot.block * SECTOR !== position) throw badImage(`relocated directory ${label}: its '.' record does not point to itself`);
      length = dot.dataLength;
    }
    if (position + length > this.src.size) {
      throw badImage(`directory ${label} claims ${length} bytes at byte ${position}, beyond the image (${this.src.size} bytes)`);
    }
    if (length > MAX_DIRECTORY_BYTES) {
      throw badImage(`directory ${label} is ${length} bytes, over the ${MAX_DIRECTORY_BYTES}-byte limit for one directory: not read (a real image has none this large)`);
    }
    if (length <= LARGE_DIRECTORY_BYTES) return this.parseListing(position, length, label);
    const turn = this.largeLoad.then(() => this.parseListing(position, length, label));
    this.largeLoad = turn.catch(() => undefined);
    return turn;
  }

  private async parseListing(position: number, length: number, label: string): Promise<Listing> {
    // Records are taken one at a time (directoryRecords): only the nodes outlive the parse.
    const records = directoryRecords(await readExact(this.src, position, length, `directory ${label}`), position);
    const listing = new Listing(Math.ceil(length / MIN_RECORD));
    let ahead = records.next();
    for (let i = 1; !ahead.done; i++) {
      if (i % YIELD_EVERY === 0) await new Promise<void>((r) => setImmediate(r));
      const rec = ahead.value;
      ahead = records.next();
      if (rec.id.length === 1 && rec.id[0] <= 1) continue; // '.' and '..'
      // A file over 4 GiB is several records of the same name; all but the last carry 0x80.
      const group = [rec];
      while (group[group.length - 1].flags & FLAG_MULTI_EXTENT) {
        if (ahead.done || !ahead.value.id.equals(rec.id)) {
          throw badImage(`directory ${label}: multi-extent file at byte ${rec.at} is missing its continuation records`);
        }
        group.push(ahead.value);
        ahead = records.next();
      }
      if (rec.flags & FLAG_ASSOCIATED) continue; // associated files (resource forks) are not files of their own
      // Only Rock Ridge may need more reads (continuation areas): no promise per entry otherwise.
      const node = this.tree === 'rockridge' ? await this.rockRidgeNode(group, label) : this.plainNode(group, label);
      if (node && isAddressable(node.name)) listing.add(node);
    }
    return listing.done();
  }

  private static extentsOf(group: DirRecord[]): Extent[] {
    return group.map((r) => ({ position: r.block * SECTOR, length: r.dataLength }));
  }

  /** A node of a Joliet or plain ISO 9660 tree. */
  private plainNode(group: DirRecord[], label: string): IsoNode {
    const rec = group[0];
    const name = stripVersion(this.tree === 'joliet' ? ucs2be(rec.id) : rec.id.toString('latin1'));
    const type: NodeType = rec.flags & FLAG_DIRECTORY ? 'dir' : 'file';
    return this.finishNode(label, name, type, rec.mtime, IsoImage.extentsOf(group), undefined, undefined);
  }

  /** A node of a Rock Ridge tree: names, times, types and symlinks from its SUSP entries. */
  private async rockRidgeNode(group: DirRecord[], label: string): Promise<IsoNode | undefined> {
    const rec = group[0];
    let name: string;
    let type: NodeType = rec.flags & FLAG_DIRECTORY ? 'dir' : 'file';
    let mtime = rec.mtime;
    let symlink: SymlinkTarget | undefined;
    let extents = IsoImage.extentsOf(group);
    let unsized: boolean | undefined;
    {
      const rr = interpretRockRidge(await collectSusp(this.src, rec.systemUse, this.suspSkip, rec.at), rec.at);
      if (rr.relocated) return undefined; // shown at its original place through its CL entry
      name = rr.name ?? stripVersion(rec.id.toString('latin1'));
      mtime = rr.mtime ?? mtime;
      const fmt = rr.mode === undefined ? undefined : rr.mode & S_IFMT;
      if (rr.symlink) {
        type = 'symlink';
        symlink = rr.symlink;
        extents = [];
      } else if (rr.childLink !== undefined) {
        type = 'dir';
        extents = [{ position: rr.childLink * SECTOR, length: 0 }];
        unsized = true;
      } else if (fmt !== undefined && fmt !== S_IFDIR && fmt !== S_IFREG && fmt !== S_IFLNK) {
        type = 'other'; // devices, fifos, sockets: nothing to serve
      }
    }
    return this.finishNode(label, name, type, mtime, extents, symlink, unsized);
  }

  private finishNode(label: string, name: string, type: NodeType, mtime: Date, extents: Extent[], symlink: SymlinkTarget | undefined, unsized: boolean | undefined): IsoNode {
    const node: IsoNode = { name, type, size: 0, mtimeMs: mtime.getTime(), extents, symlink, unsized };
    if (type === 'file') node.size = extents.reduce((n, e) => n + e.length, 0);
    for (const e of extents) {
      const needed = unsized ? SECTOR : e.length; // an empty file's block number is meaningless
      if (needed > 0 && e.position + needed > this.src.size) {
        node.bad = `${label === '/' ? '' : label}/${name}: data at byte ${e.position} (${e.length} bytes) lies past the end of the image (${this.src.size} bytes)`;
      }
    }
    return node;
  }

  /**
   * Finds a path (already normalised segments), exact name first and then case-insensitively
   * per segment (firmware upper-cases names), following Rock Ridge symlinks inside the image.
   * Returns the node and the path with each requested segment's on-disc spelling.
   */
  async resolve(segments: string[]): Promise<{ node: IsoNode; path: string[] }> {
    const label = `/${segments.join('/')}`;
    let stack: IsoNode[] = [this.root];
    const display: string[] = [];
    const queue = segments.map((name) => ({ name, requested: true }));
    let follows = 0;
    let steps = 0;
    while (queue.length > 0) {
      if (++steps > MAX_LOOKUP_STEPS || queue.length > MAX_LOOKUP_STEPS) {
        throw badImage(`looking up ${label} takes more than ${MAX_LOOKUP_STEPS} steps (symlink chain too long)`);
      }
      const { name, requested } = queue.shift()!;
      // '.', '..' and empty components only come from symlink targets.
      if (name === '' || name === '.') continue;
      if (name === '..') {
        if (stack.length === 1) throw new StoreError('EACCES', `refused: a symlink in ${label} leads outside the image`);
        stack.pop();
        continue;
      }
      const dir = stack[stack.length - 1];
      if (dir.type !== 'dir') throw new StoreError('ENOENT', `not found: ${label} (${dir.name} is not a directory)`);
      const listing = await this.listing(dir, `/${stack.slice(1).map((n) => n.name).join('/')}`);
      const child = listing.lookup(name);
      if (!child) throw new StoreError('ENOENT', `not found: ${label}`);
      if (requested) display.push(child.name);
      if (child.bad) throw badImage(child.bad);
      if (child.type === 'symlink') {
        if (++follows > MAX_SYMLINK_FOLLOWS) throw badImage(`too many levels of symbolic links looking up ${label} (a symlink loop in the image)`);
        const target = child.symlink!;
        if (target.absolute) stack = [this.root];
        queue.unshift(...target.parts.map((p) => ({ name: p, requested: false })));
        continue;
      }
      stack.push(child);
    }
    return { node: stack[stack.length - 1], path: display };
  }

  /** The image byte ranges holding bytes [start, end] (inclusive) of a file. */
  ranges(node: IsoNode, start: number, end: number): Extent[] {
    const out: Extent[] = [];
    let base = 0;
    for (const e of node.extents) {
      const from = Math.max(start, base);
      const to = Math.min(end + 1, base + e.length);
      if (from < to) out.push({ position: e.position + (from - base), length: to - from });
      base += e.length;
    }
    return out;
  }

  /** Whether readCached can copy anything (the image source offers cached reads). */
  get canReadCached(): boolean {
    return this.src.readCached !== undefined;
  }

  /**
   * Positional read of a file's page-cached bytes, synchronously, across extents (see
   * StoreFile.readCached): the count copied, short at the first byte not cached; -1 if none.
   */
  readCached(node: IsoNode, buffer: Buffer, offset: number, length: number, position: number): number {
    const read = this.src.readCached;
    if (!read) return -1;
    if (position >= node.size || length <= 0) return 0;
    let done = 0;
    for (const r of this.ranges(node, position, Math.min(node.size, position + length) - 1)) {
      const n = read(buffer, offset + done, r.length, r.position);
      if (n > 0) done += n;
      if (n < r.length) break;
    }
    return done > 0 ? done : -1;
  }

  /** Positional read of a file's bytes, across extents; returns the count read. */
  async read(node: IsoNode, buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    if (position >= node.size || length <= 0) return 0;
    let done = 0;
    for (const r of this.ranges(node, position, Math.min(node.size, position + length) - 1)) {
      let got = 0;
      while (got < r.length) {
        let n: number;
        try {
          n = await this.src.read(buffer, offset + done + got, r.length - got, r.position + got);
        } catch (err) {
          throw badImage(`reading the image failed (${(err as Error).message})`);
        }
        if (n <= 0) throw badImage(`the image ended early at byte ${r.position + got}`);
        got += n;
      }
      done += got;
    }
    return done;
  }
}
