/** NFS version 3 (RFC 1813) and MOUNT / portmapper numbers used across the NFS library. */

export const PMAP_PROG = 100000;
export const MOUNT_PROG = 100005;
export const NFS_PROG = 100003;
export const NFS_V3 = 3;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** nfsstat3 */
export const NFS3_OK = 0;
export const NFS3ERR_PERM = 1;
export const NFS3ERR_NOENT = 2;
export const NFS3ERR_IO = 5;
export const NFS3ERR_NXIO = 6;
export const NFS3ERR_ACCES = 13;
export const NFS3ERR_EXIST = 17;
export const NFS3ERR_NOTDIR = 20;
export const NFS3ERR_ISDIR = 21;
export const NFS3ERR_INVAL = 22;
export const NFS3ERR_FBIG = 27;
export const NFS3ERR_ROFS = 30;
export const NFS3ERR_NAMETOOLONG = 63;
export const NFS3ERR_NOTEMPTY = 66;
export const NFS3ERR_STALE = 70;
export const NFS3ERR_BADHANDLE = 10001;
export const NFS3ERR_BAD_COOKIE = 10003;
export const NFS3ERR_NOTSUPP = 10004;
export const NFS3ERR_TOOSMALL = 10005;
export const NFS3ERR_SERVERFAULT = 10006;

/** Procedures of program 100003 version 3. */
export const NFSPROC3 = {
  NULL: 0,
  GETATTR: 1,
  SETATTR: 2,
  LOOKUP: 3,
  ACCESS: 4,
  READLINK: 5,
  READ: 6,
  WRITE: 7,
  CREATE: 8,
  MKDIR: 9,
  SYMLINK: 10,
  MKNOD: 11,
  REMOVE: 12,
  RMDIR: 13,
  RENAME: 14,
  LINK: 15,
  READDIR: 16,
  READDIRPLUS: 17,
  FSSTAT: 18,
  FSINFO: 19,
  PATHCONF: 20,
  COMMIT: 21,
} as const;

/** ftype3 */
export const NF3REG = 1;
export const NF3DIR = 2;

/** ACCESS3 bits */
export const ACCESS3_READ = 0x0001;
export const ACCESS3_LOOKUP = 0x0002;
export const ACCESS3_MODIFY = 0x0004;
export const ACCESS3_EXTEND = 0x0008;
export const ACCESS3_DELETE = 0x0010;
export const ACCESS3_EXECUTE = 0x0020;

/** FSINFO properties */
export const FSF3_LINK = 0x0001;
export const FSF3_SYMLINK = 0x0002;
export const FSF3_HOMOGENEOUS = 0x0008;
export const FSF3_CANSETTIME = 0x0010;

/** Largest file handle on the wire (RFC 1813 NFS3_FHSIZE). */
export const NFS3_FHSIZE = 64;
/** Longest name a client may send before we stop parsing it (a longer one is GARBAGE_ARGS). */
export const MAX_NAME_WIRE = 4096;
/** Longest name served: NAME_MAX of Linux (longer → NFS3ERR_NAMETOOLONG). */
export const NAME_MAX = 255;
/** MOUNT's dirpath<MNTPATHLEN>. */
export const MNTPATHLEN = 1024;
/** MOUNT's name<MNTNAMLEN>. */
export const MNTNAMLEN = 255;

/** mountstat3 */
export const MNT3_OK = 0;
export const MNT3ERR_NOENT = 2;
export const MNT3ERR_IO = 5;
export const MNT3ERR_ACCES = 13;
export const MNT3ERR_NOTDIR = 20;
export const MNT3ERR_INVAL = 22;
export const MNT3ERR_NAMETOOLONG = 63;
