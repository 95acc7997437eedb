import type { Readable } from 'node:stream';
import { LayeredStore } from './layered-store';
import { normalizeStorePath } from './path';
import { StoreError, type FileStore, type ReadStreamOptions, type StoreFile, type StoreStat } from './types';

/**
 * Several ISOs behind one set of servers: the main store at the root, and each further ISO under
 * its own path prefix ('/arch-2021/arch/boot/...'), so one TFTP, HTTP and NFS server serve them
 * all and the NBD server can export each image by its prefix. A path whose first segment is a
 * prefix goes to that ISO (it shadows a same-named folder of the main store); any other path goes
 * to the main store.
 */
export interface IsoMount {
  /** One path segment: letters, digits, '.', '_', '-' (checkPrefix). */
  prefix: string;
  store: FileStore;
}

/** At most this many further ISOs per store: each is an open image and a menu section. */
export const MAX_MOUNTS = 16;

/** Names a generated file folder or that real Arch ISOs have at their root would shadow the main ISO's. */
const RESERVED = new Set(['arch', 'boot', 'syslinux', 'isolinux', 'efi', 'loader', 'pxe-flow', 'pxelinux.cfg']);

/** A prefix as typed in the editor, checked: one plain path segment. Throws StoreError EINVAL. */
export function checkPrefix(prefix: string): string {
  const p = prefix.trim().replace(/^\/+|\/+$/g, '');
  if (!/^[A-Za-z0-9][\w.-]{0,63}$/.test(p)) throw new StoreError('EINVAL', `"${prefix}" is not a path prefix: use one name of letters, digits, '.', '_' or '-' (at most 64)`);
  if (RESERVED.has(p.toLowerCase())) throw new StoreError('EINVAL', `"${p}" would hide the main ISO's /${p}/ folder: choose another prefix`);
  return p;
}

/** The prefix a further ISO gets when none is typed: its file name without '.iso', as a path segment. */
export function defaultPrefix(source: string): string {
  const base = source.replace(/\/+$/, '').split('/').pop() ?? '';
  const p = base.replace(/\.iso$/i, '').replace(/[^\w.-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64);
  return p || 'iso';
}

export class MountedStore implements FileStore {
  readonly kind: FileStore['kind'];
  readonly source: string;
  private readonly byPrefix = new Map<string, FileStore>();

  constructor(
    /** The store served at the root (the image or folder the node was configured with). */
    readonly root: FileStore,
    readonly mounts: IsoMount[],
  ) {
    if (mounts.length > MAX_MOUNTS) throw new StoreError('EINVAL', `at most ${MAX_MOUNTS} further ISOs per store`);
    for (const m of mounts) {
      const p = checkPrefix(m.prefix);
      if (this.byPrefix.has(p)) throw new StoreError('EINVAL', `two ISOs under the same prefix /${p}/`);
      this.byPrefix.set(p, m.store);
    }
    this.kind = root.kind;
    this.source = root.source;
  }

  /** The store a path belongs to, and the path inside it. */
  private route(path: string): { store: FileStore; path: string; prefix?: string } {
    const segs = normalizeStorePath(path);
    const mounted = segs.length > 0 ? this.byPrefix.get(segs[0]!) : undefined;
    if (!mounted) return { store: this.root, path: segs.join('/') };
    return { store: mounted, path: segs.slice(1).join('/'), prefix: segs[0]! };
  }

  /** A mounted store's stat, named by the path the client asked for. */
  private static under(prefix: string | undefined, st: StoreStat): StoreStat {
    if (prefix === undefined) return st;
    return { ...st, path: st.path ? `${prefix}/${st.path}` : prefix, name: st.path ? st.name : prefix };
  }

  async stat(path: string): Promise<StoreStat> {
    const r = this.route(path);
    return MountedStore.under(r.prefix, await r.store.stat(r.path));
  }

  async list(path: string): Promise<StoreStat[]> {
    const r = this.route(path);
    const entries = (await r.store.list(r.path)).map((e) => MountedStore.under(r.prefix, e));
    if (r.prefix !== undefined || r.path !== '') return entries;
    // The root lists the prefixes as folders, in place of anything of the main store's they shadow.
    const out = entries.filter((e) => !this.byPrefix.has(e.name));
    for (const [prefix, store] of this.byPrefix) out.push(MountedStore.under(prefix, await store.stat('')));
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async open(path: string): Promise<StoreFile> {
    const r = this.route(path);
    return r.store.open(r.path);
  }

  createReadStream(path: string, options?: ReadStreamOptions): Promise<Readable> {
    const r = this.route(path);
    return r.store.createReadStream(r.path, options);
  }

  /** The prefix `path` is served under ('' for the main store). */
  prefixOf(path: string): string {
    try {
      return this.route(path).prefix ?? '';
    } catch {
      return '';
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.root.close(), ...this.mounts.map((m) => m.store.close())]);
  }
}

/** The further ISOs of a store as a server node gets it (none for a one-ISO store). */
export function isoMounts(store: FileStore): IsoMount[] {
  const inner = store instanceof LayeredStore ? store.primary : store;
  return inner instanceof MountedStore ? inner.mounts : [];
}

/** The store's main image or folder, without the files layered around it or the ISOs beside it. */
export function mainStore(store: FileStore): FileStore {
  let s = store instanceof LayeredStore ? store.primary : store;
  if (s instanceof MountedStore) s = s.root;
  return s instanceof LayeredStore ? s.primary : s;
}
