// An in-memory FileStore for the NFS tests: sizes only, content computed (byte i of a file is
// i & 0xff), so files of any size (over 4 GiB) cost nothing. Counts list/open/close calls.
import { Readable } from 'node:stream';
import { StoreError, type FileStore, type StoreFile, type StoreStat } from '../../nodes/lib/store/types';

/** An in-memory store: `files` maps paths to sizes (content = byte i is i & 0xff), directories implied. */
export function memStore(files: Record<string, number>, source = '/mem'): FileStore & { lists: number; opens: number; closes: number } {
  const mtime = new Date(1_700_000_000_000);
  const dirs = new Set<string>(['']);
  for (const p of Object.keys(files)) {
    const segs = p.split('/');
    for (let i = 1; i < segs.length; i++) dirs.add(segs.slice(0, i).join('/'));
  }
  const statOf = (p: string): StoreStat => {
    if (dirs.has(p)) return { path: p, name: p.slice(p.lastIndexOf('/') + 1), isDirectory: true, size: 0, mtime };
    if (p in files) return { path: p, name: p.slice(p.lastIndexOf('/') + 1), isDirectory: false, size: files[p]!, mtime };
    throw new StoreError('ENOENT', `not found: /${p}`);
  };
  const norm = (p: string): string => p.split('/').filter(Boolean).join('/');
  const s = {
    kind: 'folder' as const,
    source,
    lists: 0,
    opens: 0,
    closes: 0,
    async stat(p: string) {
      return statOf(norm(p));
    },
    async list(p: string) {
      s.lists++;
      const d = norm(p);
      if (!dirs.has(d)) throw new StoreError('ENOTDIR', d);
      const names = new Set<string>();
      for (const x of [...dirs, ...Object.keys(files)]) {
        if (x === '' || x === d) continue;
        const rest = d === '' ? x : x.startsWith(`${d}/`) ? x.slice(d.length + 1) : undefined;
        if (rest !== undefined && !rest.includes('/')) names.add(rest);
      }
      return [...names].sort().map((n) => statOf(d === '' ? n : `${d}/${n}`));
    },
    async open(p: string): Promise<StoreFile> {
      const st = statOf(norm(p));
      if (st.isDirectory) throw new StoreError('EISDIR', p);
      s.opens++;
      return {
        path: st.path,
        size: st.size,
        mtime,
        async read(buf: Buffer, off: number, len: number, pos: number) {
          const n = Math.max(0, Math.min(len, st.size - pos));
          for (let i = 0; i < n; i++) buf[off + i] = (pos + i) & 0xff;
          return n;
        },
        async close() {
          s.closes++;
        },
      };
    },
    async createReadStream() {
      return Readable.from([]);
    },
    async close() {},
  };
  return s;
}

