/**
 * NFS file handles, stable across server restarts (a redeploy must not leave a booted machine's
 * root file system with stale handles).
 *
 * A handle is 16 bytes: magic+version (4), the store generation (4: a hash of the store's kind
 * and source, so another image or folder gives other handles), and the fileid (8: a 53-bit hash of
 * the normalised store path, so it is a plain number everywhere; the root has the fixed id 1).
 * Small on purpose: READDIRPLUS carries one per entry, and 4 bytes less per entry is one more
 * entry per 8 KiB reply for directories of a few dozen files.
 * Decoding: a wrong length or magic → NFS3ERR_BADHANDLE; another generation → NFS3ERR_STALE. A
 * well-formed handle of this store whose fileid we have not seen (a server restarted under a
 * mounted client) is looked up by walking the store once (bounded: entries, depth, one walk at a
 * time, not more often than every `minWalkIntervalMs`); still unknown → NFS3ERR_STALE.
 *
 * Memory: the id → path index holds at most `maxEntries` paths (the oldest go first); it is fed
 * by MNT, LOOKUP, READDIR(PLUS) and walks.
 */
import { createHash } from 'node:crypto';
import type { FileStore } from '../store/types';
import { NFS3ERR_BADHANDLE, NFS3ERR_STALE } from './nfs3-const';
import { XdrWriter } from './xdr';

export const FH_MAGIC = 0x50584e03; // "PXN", version 3
export const FH_SIZE = 16;
export const GENERATION_SIZE = 4;
export const ROOT_FILEID = 1;
const TWO_32 = 0x1_0000_0000;

export interface HandleIndexOptions {
  /** Paths kept in the id → path index (default 200,000). */
  maxEntries?: number;
  /** Deepest directory a walk descends into (default 64). */
  maxDepth?: number;
  /** Least time between two walks of the store (default 5000 ms). */
  minWalkIntervalMs?: number;
}

/** The 4-byte generation of a store: a hash of its kind and source. */
export function storeGeneration(store: Pick<FileStore, 'kind' | 'source'>): Buffer {
  return createHash('sha256').update(`${store.kind}\0${store.source}`).digest().subarray(0, GENERATION_SIZE);
}

/**
 * The fileid of a normalised store path ('' is the root): 53 bits of two seeded 32-bit hashes
 * (murmur3's mixing) over the UTF-16 code units, the same in every run. Never 0; 1 only for the
 * root. Not cryptographic: ids only need to be stable and rarely collide (200,000 paths collide
 * with a chance of about 2^-19), since every path a client may name is public anyway.
 */
export function fileIdOf(path: string): number {
  if (path === '') return ROOT_FILEID;
  let h1 = 0x9747b28c;
  let h2 = 0x2f3a5d17;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0xcc9e2d51);
    h1 = (h1 << 15) | (h1 >>> 17);
    h1 = Math.imul(h1, 0x1b873593) + 0xe6546b64;
    h2 = Math.imul(h2 ^ c, 0x85ebca6b);
    h2 = (h2 << 13) | (h2 >>> 19);
    h2 = Math.imul(h2, 0xc2b2ae35) + 0x165667b1;
  }
  h1 = fmix(h1 ^ path.length);
  h2 = fmix(h2 ^ path.length);
  const id = (h2 & 0x1fffff) * TWO_32 + (h1 >>> 0);
  return id < 2 ? id + 2 : id;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Writes a handle (its 16 bytes, no length word) at the writer's position. */
function writeHandleBytes(w: XdrWriter, generation: Buffer, fileid: number): void {
  w.uint32(FH_MAGIC).opaqueFixed(generation).uint32(Math.floor(fileid / TWO_32)).uint32(fileid >>> 0);
}

export function encodeHandle(generation: Buffer, fileid: number): Buffer {
  const w = new XdrWriter(0, Buffer.allocUnsafe(FH_SIZE));
  writeHandleBytes(w, generation, fileid);
  return w.finish();
}

export type HandleDecode = { ok: true; fileid: number } | { ok: false; status: number };

/** Checks a handle's shape and generation; does not look the fileid up. */
export function decodeHandle(fh: Buffer, generation: Buffer): HandleDecode {
  if (fh.length !== FH_SIZE || fh.readUInt32BE(0) !== FH_MAGIC) return { ok: false, status: NFS3ERR_BADHANDLE };
  if (generation.compare(fh, 4, 8) !== 0) return { ok: false, status: NFS3ERR_STALE };
  const hi = fh.readUInt32BE(8);
  // Our ids have 53 bits; more is no id of ours (stale, or from another server's build).
  if (hi > 0x1fffff) return { ok: false, status: NFS3ERR_STALE };
  return { ok: true, fileid: hi * TWO_32 + fh.readUInt32BE(12) };
}

/** The parent of a normalised store path (the root is its own parent). */
export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

export function joinPath(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

export type HandleResolve = { ok: true; fileid: number; path: string } | { ok: false; status: number };

export class HandleIndex {
  readonly generation: Buffer;
  private readonly byId = new Map<number, string>();
  private readonly maxEntries: number;
  private readonly maxDepth: number;
  private readonly minWalkIntervalMs: number;
  private walking: Promise<void> | undefined;
  private lastWalk = -Infinity;
  private closed = false;
  /** Walks done so far (for tests and stats). */
  walks = 0;

  constructor(
    private readonly store: FileStore,
    opts: HandleIndexOptions = {},
  ) {
    this.generation = storeGeneration(store);
    this.maxEntries = Math.max(16, opts.maxEntries ?? 200_000);
    this.maxDepth = Math.max(1, opts.maxDepth ?? 64);
    this.minWalkIntervalMs = Math.max(0, opts.minWalkIntervalMs ?? 5000);
  }

  get size(): number {
    return this.byId.size;
  }

  /** Records a path (seen by MNT, LOOKUP or READDIR) and returns its fileid (`id`, if known). */
  remember(path: string, id = fileIdOf(path)): number {
    if (id === ROOT_FILEID) return id;
    // Insertion order is the eviction order; an id seen again keeps its place (cheaper than an
    // LRU; a walk refills what was evicted).
    if (this.byId.get(id) === path) return id;
    const had = this.byId.has(id);
    this.byId.set(id, path);
    if (!had && this.byId.size > this.maxEntries) this.byId.delete(this.byId.keys().next().value!);
    return id;
  }

  handleOf(path: string): Buffer {
    return encodeHandle(this.generation, this.remember(path));
  }

  handleOfId(fileid: number): Buffer {
    return encodeHandle(this.generation, fileid);
  }

  /** Writes the handle of `fileid` as an nfs_fh3 (length word + 16 bytes), without a Buffer of its own. */
  writeHandle(w: XdrWriter, fileid: number): void {
    w.uint32(FH_SIZE);
    writeHandleBytes(w, this.generation, fileid);
  }

  pathOf(fileid: number): string | undefined {
    if (fileid === ROOT_FILEID) return '';
    return this.byId.get(fileid);
  }

  /** A handle's path, walking the store once when the fileid is unknown. */
  async resolve(fh: Buffer): Promise<HandleResolve> {
    const d = decodeHandle(fh, this.generation);
    if (!d.ok) return d;
    let path = this.pathOf(d.fileid);
    if (path === undefined) {
      await this.walk();
      path = this.pathOf(d.fileid);
      if (path === undefined) return { ok: false, status: NFS3ERR_STALE };
    }
    return { ok: true, fileid: d.fileid, path };
  }

  /** Waits for a walk in progress (close() uses it). */
  async idle(): Promise<void> {
    this.closed = true;
    await this.walking;
  }

  /** Walks the store into the index, unless one runs (join it) or one ran too recently. */
  walk(): Promise<void> {
    if (this.walking) return this.walking;
    if (this.closed || Date.now() - this.lastWalk < this.minWalkIntervalMs) return Promise.resolve();
    this.walking = this.doWalk().finally(() => {
      this.lastWalk = Date.now();
      this.walking = undefined;
    });
    return this.walking;
  }

  private async doWalk(): Promise<void> {
    this.walks++;
    let budget = this.maxEntries;
    let level = [''];
    for (let depth = 0; depth < this.maxDepth && level.length && budget > 0 && !this.closed; depth++) {
      const next: string[] = [];
      for (const dir of level) {
        if (budget <= 0 || this.closed) break;
        let entries;
        try {
          entries = await this.store.list(dir);
        } catch {
          continue; // vanished or unreadable: its children stay unknown
        }
        for (const e of entries) {
          if (budget-- <= 0) break;
          const p = joinPath(dir, e.name);
          this.remember(p);
          if (e.isDirectory) next.push(p);
        }
      }
      level = next;
    }
  }
}
