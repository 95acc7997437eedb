/**
 * NFS file handles, stable across server restarts (a redeploy must not leave a booted machine's
 * root file system with stale handles).
 *
 * A handle is 20 bytes: magic+version (4), the store generation (8: a hash of the store's kind
 * and source, so another image or folder gives other handles), and the fileid (8: a hash of the
 * normalised store path; the root has the fixed id 1). Decoding: a wrong length or magic →
 * NFS3ERR_BADHANDLE; another generation → NFS3ERR_STALE. A well-formed handle of this store
 * whose fileid we have not seen (a server restarted under a mounted client) is looked up by
 * walking the store once (bounded: entries, depth, one walk at a time, not more often than
 * every `minWalkIntervalMs`); still unknown → NFS3ERR_STALE.
 *
 * Memory: the id → path index holds at most `maxEntries` paths (the oldest go first); it is fed
 * by MNT, LOOKUP, READDIR(PLUS) and walks.
 */
import { createHash } from 'node:crypto';
import type { FileStore } from '../store/types';
import { NFS3ERR_BADHANDLE, NFS3ERR_STALE } from './nfs3-const';

export const FH_MAGIC = 0x50584e01; // "PXN", version 1
export const FH_SIZE = 20;
export const ROOT_FILEID = 1n;

export interface HandleIndexOptions {
  /** Paths kept in the id → path index (default 200,000). */
  maxEntries?: number;
  /** Deepest directory a walk descends into (default 64). */
  maxDepth?: number;
  /** Least time between two walks of the store (default 5000 ms). */
  minWalkIntervalMs?: number;
}

/** The 8-byte generation of a store: a hash of its kind and source. */
export function storeGeneration(store: Pick<FileStore, 'kind' | 'source'>): Buffer {
  return createHash('sha256').update(`${store.kind}\0${store.source}`).digest().subarray(0, 8);
}

/** The fileid of a normalised store path ('' is the root). Never 0; 1 only for the root. */
export function fileIdOf(path: string): bigint {
  if (path === '') return ROOT_FILEID;
  const id = createHash('sha256').update(path, 'utf8').digest().readBigUInt64BE(0);
  return id < 2n ? id + 2n : id;
}

export function encodeHandle(generation: Buffer, fileid: bigint): Buffer {
  const fh = Buffer.allocUnsafe(FH_SIZE);
  fh.writeUInt32BE(FH_MAGIC, 0);
  generation.copy(fh, 4, 0, 8);
  fh.writeBigUInt64BE(fileid, 12);
  return fh;
}

export type HandleDecode = { ok: true; fileid: bigint } | { ok: false; status: number };

/** Checks a handle's shape and generation; does not look the fileid up. */
export function decodeHandle(fh: Buffer, generation: Buffer): HandleDecode {
  if (fh.length !== FH_SIZE || fh.readUInt32BE(0) !== FH_MAGIC) return { ok: false, status: NFS3ERR_BADHANDLE };
  if (!fh.subarray(4, 12).equals(generation)) return { ok: false, status: NFS3ERR_STALE };
  return { ok: true, fileid: fh.readBigUInt64BE(12) };
}

/** The parent of a normalised store path (the root is its own parent). */
export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

export function joinPath(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

export type HandleResolve = { ok: true; fileid: bigint; path: string } | { ok: false; status: number };

export class HandleIndex {
  readonly generation: Buffer;
  private readonly byId = new Map<bigint, string>();
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

  /** Records a path (seen by MNT, LOOKUP or READDIR) and returns its fileid. */
  remember(path: string): bigint {
    const id = fileIdOf(path);
    if (id === ROOT_FILEID) return id;
    if (this.byId.has(id)) this.byId.delete(id); // move to the young end
    this.byId.set(id, path);
    if (this.byId.size > this.maxEntries) this.byId.delete(this.byId.keys().next().value!);
    return id;
  }

  handleOf(path: string): Buffer {
    return encodeHandle(this.generation, this.remember(path));
  }

  handleOfId(fileid: bigint): Buffer {
    return encodeHandle(this.generation, fileid);
  }

  pathOf(fileid: bigint): string | undefined {
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
