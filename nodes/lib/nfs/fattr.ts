/**
 * NFS v3 file attributes (fattr3, RFC 1813 §2.6) of store entries. Everything is read-only:
 * regular files 0444 with one link, directories 0555 with two, owned by root; the times are the
 * store's mtime (atime = mtime = ctime); fsid is one constant per store.
 */
import { NF3DIR, NF3REG } from './nfs3-const';
import type { XdrWriter } from './xdr';

/** What the attributes of one entry are made of. */
export interface NodeAttrs {
  fileid: number;
  isDirectory: boolean;
  size: number;
  mtime: Date;
}

/** fattr3 on the wire. */
export const FATTR_SIZE = 84;
/** post_op_attr with attributes. */
export const POST_OP_ATTR_SIZE = 4 + FATTR_SIZE;
/** What directories report as their size (stores report 0). */
export const DIR_SIZE = 4096;

const MAX_U32 = 0xffffffff;

/** nfstime3 of a Date: seconds clamped into 0..2^32-1, nanoseconds from the milliseconds. */
export function writeTime(w: XdrWriter, t: Date): void {
  const ms = t.getTime();
  if (!Number.isFinite(ms) || ms < 0) {
    w.uint32(0).uint32(0);
    return;
  }
  const s = Math.floor(ms / 1000);
  if (s > MAX_U32) {
    w.uint32(MAX_U32).uint32(0);
    return;
  }
  w.uint32(s).uint32((ms - s * 1000) * 1_000_000);
}

export function writeFattr(w: XdrWriter, a: NodeAttrs, fsid: number): void {
  const size = a.isDirectory ? DIR_SIZE : a.size;
  w.uint32(a.isDirectory ? NF3DIR : NF3REG);
  w.uint32(a.isDirectory ? 0o555 : 0o444);
  w.uint32(a.isDirectory ? 2 : 1); // nlink
  w.uint32(0).uint32(0); // uid, gid
  w.uint64(size);
  w.uint64(size); // used
  w.uint32(0).uint32(0); // rdev
  w.uint64(fsid);
  w.uint64(a.fileid);
  writeTime(w, a.mtime); // atime
  writeTime(w, a.mtime);
  writeTime(w, a.mtime); // ctime
}

/** post_op_attr: the attributes when known, else FALSE. */
export function writePostOpAttr(w: XdrWriter, a: NodeAttrs | undefined, fsid: number): void {
  if (!a) {
    w.bool(false);
    return;
  }
  w.bool(true);
  writeFattr(w, a, fsid);
}

/** wcc_data of an object that was not changed: no pre-op attributes, the current ones after. */
export function writeWcc(w: XdrWriter, a: NodeAttrs | undefined, fsid: number): void {
  w.bool(false); // pre_op_attr
  writePostOpAttr(w, a, fsid);
}
