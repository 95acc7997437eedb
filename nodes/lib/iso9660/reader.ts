import { StoreError } from '../store/types';
import { stripVersion, ucs2be } from './bytes';
import { readDescriptors, SECTOR } from './descriptors';
import { FLAG_ASSOCIATED, FLAG_DIRECTORY, FLAG_MULTI_EXTENT, parseDirectory, parseRecord, type DirRecord } from './records';
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
 * Largest directory we read, refused above with a store error. A parsed entry costs ~150–420
 * bytes of heap (measured) against 34–250 on disc, and parsing ~100k entries took ~1 s: a crafted
 * 60 MiB directory cost ~370 MiB. 1 MiB holds ~5,000 entries with Rock Ridge names (a flat
 * RHEL 7 Packages/ has ~4,000; Arch's largest has a few dozen) or ~30,000 of the smallest records
 * (~12 MiB parsed).
 */
export const MAX_DIRECTORY_BYTES = 1024 * 1024;
/**
 * Parsed directories kept, by their estimated heap (entryCost): least recently used ones are
 * dropped and re-read on demand. A largest directory of the smallest records fits, so no lookup
 * has to parse it again each time.
 */
export const MAX_CACHED_BYTES = 16 * 1024 * 1024;
/** Estimated heap of one parsed entry besides its name (node, extents, date, two map entries), the top of what was measured. */
const ENTRY_COST = 400;
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
  mtime: Date;
  /** File data, or for a directory its own extent. */
  extents: Extent[];
  symlink?: SymlinkTarget;
  /** Set when the entry cannot be served (its data lies outside the image); reported on access. */
  bad?: string;
  /** A Rock Ridge CL directory: its size is only known from its own '.' record. */
  unsized?: boolean;
}

interface Listing {
  entries: IsoNode[];
  exact: Map<string, IsoNode>;
  folded: Map<string, IsoNode>;
}

interface CacheEntry {
  listing: Promise<Listing>;
  /** Estimated heap once parsed; 0 while it loads. */
  bytes: number;
}

/** The heap a parsed listing is reckoned to hold. */
function listingCost(entries: IsoNode[]): number {
  let n = LISTING_COST;
  for (const e of entries) n += ENTRY_COST + 2 * e.name.length;
  return n;
}

function isAddressable(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
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
    return { name: '', type: 'dir', size: 0, mtime: rec.mtime, extents: [{ position, length: rec.dataLength }] };
  }

  /** The entries of a directory, in on-disc order ('.', '..', and hidden relocations left out). */
  async list(dir: IsoNode, label: string): Promise<IsoNode[]> {
    return (await this.listing(dir, label)).entries;
  }

  /** Estimated heap held by parsed directories (at most MAX_CACHED_BYTES). */
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
        entry.bytes = listingCost(l.entries);
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
    const records = parseDirectory(await readExact(this.src, position, length, `directory ${label}`), position);
    const entries: IsoNode[] = [];
    for (let i = 0; i < records.length; i++) {
      if (i % YIELD_EVERY === YIELD_EVERY - 1) await new Promise<void>((r) => setImmediate(r));
      const rec = records[i];
      if (rec.id.length === 1 && rec.id[0] <= 1) continue; // '.' and '..'
      // A file over 4 GiB is several records of the same name; all but the last carry 0x80.
      const group = [rec];
      while (group[group.length - 1].flags & FLAG_MULTI_EXTENT) {
        const next = records[++i];
        if (!next || !next.id.equals(rec.id)) {
          throw badImage(`directory ${label}: multi-extent file at byte ${rec.at} is missing its continuation records`);
        }
        group.push(next);
      }
      if (rec.flags & FLAG_ASSOCIATED) continue; // associated files (resource forks) are not files of their own
      const node = await this.makeNode(group, label);
      if (node && isAddressable(node.name)) entries.push(node);
    }
    const exact = new Map<string, IsoNode>();
    const folded = new Map<string, IsoNode>();
    for (const e of entries) {
      if (!exact.has(e.name)) exact.set(e.name, e);
      const low = e.name.toLowerCase();
      if (!folded.has(low)) folded.set(low, e);
    }
    return { entries, exact, folded };
  }

  private async makeNode(group: DirRecord[], label: string): Promise<IsoNode | undefined> {
    const rec = group[0];
    let name: string;
    let type: NodeType = rec.flags & FLAG_DIRECTORY ? 'dir' : 'file';
    let mtime = rec.mtime;
    let symlink: SymlinkTarget | undefined;
    let extents: Extent[] = group.map((r) => ({ position: r.block * SECTOR, length: r.dataLength }));
    let unsized: boolean | undefined;
    if (this.tree === 'joliet') {
      name = stripVersion(ucs2be(rec.id));
    } else if (this.tree === 'iso9660') {
      name = stripVersion(rec.id.toString('latin1'));
    } else {
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
    const node: IsoNode = { name, type, size: 0, mtime, extents, symlink, unsized };
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
      const child = listing.exact.get(name) ?? listing.folded.get(name.toLowerCase());
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
