/**
 * The MOUNT program, 100005 (RFC 1813 appendix I), versions 1 to 3.
 *
 * Version 3 is the one that mounts: MNT answers a v3 file handle and the auth flavors
 * [AUTH_UNIX, AUTH_NULL]. Versions 1 and 2 answer NULL, DUMP, UMNT, UMNTALL and EXPORT like
 * version 3 (showmount asks version 1), but their MNT returns an NFSv2 handle, and NFSv2 is not
 * served: it answers ENOENT for an unknown path and EACCES otherwise, without recording a mount.
 *
 * Every export path maps to the store root; a MNT of a directory below an export
 * ('/run/archiso/bootmnt/arch') mounts that directory. Unknown paths → MNT3ERR_NOENT, paths
 * that leave the store → MNT3ERR_ACCES, files → MNT3ERR_NOTDIR. No client is refused by address
 * or by port (the exports are read-only and public, as the HTTP and TFTP servers are).
 *
 * Trust policy: dirpaths are read as string<1024> (longer → GARBAGE_ARGS). Mounts are tracked
 * by (client address, path) for DUMP and the mount/umount events, at most `maxMounts` of them
 * (the oldest is forgotten first). DUMP and EXPORT answer at most what fits the reply size.
 */
import type { FileStore } from '../store/types';
import { normalizeStorePath } from '../store/path';
import { isStoreError } from '../store/types';
import type { RpcContext, RpcProgram } from './dispatch';
import type { HandleIndex } from './handles';
import {
  MNT3_OK,
  MNT3ERR_ACCES,
  MNT3ERR_IO,
  MNT3ERR_NAMETOOLONG,
  MNT3ERR_NOENT,
  MNT3ERR_NOTDIR,
  MNTNAMLEN,
  MNTPATHLEN,
  MOUNT_PROG,
} from './nfs3-const';
import * as R from './rpc';
import { opaqueSize, type XdrWriter } from './xdr';

export const MOUNTPROC = { NULL: 0, MNT: 1, DUMP: 2, UMNT: 3, UMNTALL: 4, EXPORT: 5 } as const;
export const DEFAULT_EXPORTS = ['/run/archiso/bootmnt', '/'];

export interface MountRecord {
  address: string;
  port: number;
  path: string;
}

export interface MountProgramOptions {
  store: FileStore;
  handles: HandleIndex;
  exportPaths?: string[];
  /** Mounts remembered for DUMP (default 1024). */
  maxMounts?: number;
  onMount?: (m: MountRecord) => void;
  onUmount?: (m: MountRecord) => void;
}

/** '/a//b/' → '/a/b'; '' → '/'. Not a security check (the store path rules are). */
export function normalizeExportPath(p: string): string {
  const segs = p.split('/').filter((s) => s !== '' && s !== '.');
  return `/${segs.join('/')}`;
}

/** Bytes of DUMP / EXPORT list entries in one reply (at most 64 KiB, and what the transport carries). */
function listRoom(ctx: RpcContext): number {
  return Math.min(ctx.maxReply - 28, MAX_LIST_BYTES);
}
const MAX_LIST_BYTES = 64 * 1024;

export class MountProgram implements RpcProgram {
  readonly prog = MOUNT_PROG;
  readonly name = 'mount';
  readonly low = 1;
  readonly high = 3;
  readonly procs = 6;
  readonly exports: string[];
  private readonly mounts = new Map<string, MountRecord>();
  private readonly maxMounts: number;

  constructor(private readonly opts: MountProgramOptions) {
    const list = opts.exportPaths && opts.exportPaths.length ? opts.exportPaths : DEFAULT_EXPORTS;
    this.exports = [...new Set(list.map(normalizeExportPath))];
    this.maxMounts = Math.max(1, opts.maxMounts ?? 1024);
  }

  get mountCount(): number {
    return this.mounts.size;
  }

  get mountList(): MountRecord[] {
    return [...this.mounts.values()].map((m) => ({ ...m }));
  }

  /** The store path a client's dirpath names, or a mount status ('' and 'a/b' are read as '/', '/a/b': libnfs sends '' for the root). */
  storePathOf(dirpath: string): { ok: true; path: string } | { ok: false; status: number } {
    const wanted = normalizeExportPath(dirpath);
    let best: string | undefined;
    for (const e of this.exports) {
      const under = e === '/' || wanted === e || wanted.startsWith(`${e}/`);
      if (under && (best === undefined || e.length > best.length)) best = e;
    }
    if (best === undefined) return { ok: false, status: MNT3ERR_NOENT };
    const rest = best === '/' ? wanted : wanted.slice(best.length);
    try {
      return { ok: true, path: normalizeStorePath(rest).join('/') };
    } catch {
      return { ok: false, status: rest.length > MNTPATHLEN ? MNT3ERR_NAMETOOLONG : MNT3ERR_ACCES };
    }
  }

  replyBound(call: R.RpcCall, ctx: RpcContext): number {
    if (call.proc === MOUNTPROC.DUMP || call.proc === MOUNTPROC.EXPORT) return listRoom(ctx) + R.ACCEPTED_HEADER_SIZE + 4;
    return R.ACCEPTED_HEADER_SIZE + 128;
  }

  async handle(call: R.RpcCall, ctx: RpcContext): Promise<Buffer> {
    switch (call.proc) {
      case MOUNTPROC.NULL:
        return R.acceptedReply(call.xid, R.SUCCESS);
      case MOUNTPROC.MNT:
        return this.mnt(call, ctx);
      case MOUNTPROC.DUMP:
        return this.dump(call, ctx);
      case MOUNTPROC.UMNT: {
        const path = normalizeExportPath(call.args.string(MNTPATHLEN));
        const key = `${ctx.address}\0${path}`;
        const m = this.mounts.get(key);
        if (m) {
          this.mounts.delete(key);
          this.opts.onUmount?.({ ...m, port: ctx.port });
        }
        return R.acceptedReply(call.xid, R.SUCCESS);
      }
      case MOUNTPROC.UMNTALL: {
        for (const [key, m] of [...this.mounts]) {
          if (m.address !== ctx.address) continue;
          this.mounts.delete(key);
          this.opts.onUmount?.({ ...m, port: ctx.port });
        }
        return R.acceptedReply(call.xid, R.SUCCESS);
      }
      default:
        return this.exportList(call, ctx);
    }
  }

  private async mnt(call: R.RpcCall, ctx: RpcContext): Promise<Buffer> {
    const dirpath = call.args.string(MNTPATHLEN);
    const status = (s: number): Buffer => R.acceptedWriter(call.xid, R.SUCCESS, 64).uint32(s).finish();
    const target = this.storePathOf(dirpath);
    if (!target.ok) return status(target.status);
    let isDirectory: boolean;
    try {
      isDirectory = (await this.opts.store.stat(target.path)).isDirectory;
    } catch (err) {
      if (isStoreError(err, 'ENOENT') || isStoreError(err, 'ENOTDIR')) return status(MNT3ERR_NOENT);
      if (isStoreError(err, 'EACCES') || isStoreError(err, 'EINVAL')) return status(MNT3ERR_ACCES);
      return status(MNT3ERR_IO);
    }
    if (!isDirectory) return status(MNT3ERR_NOTDIR);
    if (call.vers < 3) return status(MNT3ERR_ACCES); // an NFSv2 handle would be of no use
    const fh = this.opts.handles.handleOf(target.path);
    const w = R.acceptedWriter(call.xid, R.SUCCESS, 96);
    w.uint32(MNT3_OK).opaqueVar(fh);
    w.uint32(2).uint32(R.AUTH_SYS).uint32(R.AUTH_NONE);
    const record: MountRecord = { address: ctx.address, port: ctx.port, path: normalizeExportPath(dirpath) };
    const key = `${record.address}\0${record.path}`;
    this.mounts.delete(key);
    this.mounts.set(key, record);
    if (this.mounts.size > this.maxMounts) this.mounts.delete(this.mounts.keys().next().value!);
    this.opts.onMount?.({ ...record });
    return w.finish();
  }

  private dump(call: R.RpcCall, ctx: RpcContext): Buffer {
    const w = R.acceptedWriter(call.xid, R.SUCCESS, 256);
    let room = listRoom(ctx);
    for (const m of this.mounts.values()) {
      const host = Buffer.from(m.address.slice(0, MNTNAMLEN), 'utf8');
      const dir = Buffer.from(m.path, 'utf8');
      const size = 4 + opaqueSize(host.length) + opaqueSize(dir.length);
      if (size > room) break;
      w.bool(true).opaqueVar(host).opaqueVar(dir);
      room -= size;
    }
    return w.bool(false).finish();
  }

  private exportList(call: R.RpcCall, ctx: RpcContext): Buffer {
    const w: XdrWriter = R.acceptedWriter(call.xid, R.SUCCESS, 256);
    let room = listRoom(ctx);
    for (const e of this.exports) {
      const dir = Buffer.from(e, 'utf8');
      const size = 4 + opaqueSize(dir.length) + 4;
      if (size > room) break;
      w.bool(true).opaqueVar(dir).bool(false); // no groups: everyone
      room -= size;
    }
    return w.bool(false).finish();
  }
}
