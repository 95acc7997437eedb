/**
 * The portmapper, program 100000 version 2 (RFC 1833 §3): how klibc's nfsmount (and libnfs, and
 * the kernel's mount helper) find the MOUNT and NFS ports. Served procedures: NULL, SET, UNSET
 * (both only from a loopback address), GETPORT, DUMP; CALLIT is PROC_UNAVAIL (it would make us
 * a reflector). rpcbind versions 3 and 4 are not served (PROG_MISMATCH(2, 2)): every client we
 * care about asks version 2 first.
 *
 * Also a small client for PMAPPROC_SET/UNSET/GETPORT over UDP, to register our programs with a
 * system rpcbind that already owns port 111.
 *
 * Trust policy: arguments are four uint32s, read with a bounded reader (short → GARBAGE_ARGS).
 * The table holds at most MAX_MAPPINGS entries (SET beyond it answers FALSE); DUMP answers at
 * most what fits the transport's reply size.
 */
import * as dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import type { RpcContext, RpcProgram } from './dispatch';
import { IPPROTO_TCP, IPPROTO_UDP, PMAP_PROG } from './nfs3-const';
import * as R from './rpc';
import { XdrReader, XdrWriter } from './xdr';

export const PMAP_VERS = 2;
export const PMAPPROC = { NULL: 0, SET: 1, UNSET: 2, GETPORT: 3, DUMP: 4, CALLIT: 5 } as const;
export const MAX_MAPPINGS = 256;

export interface PortMapping {
  prog: number;
  vers: number;
  /** IPPROTO_TCP (6) or IPPROTO_UDP (17). */
  prot: number;
  port: number;
}

export function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

function readMapping(r: XdrReader): PortMapping {
  return { prog: r.uint32(), vers: r.uint32(), prot: r.uint32(), port: r.uint32() };
}

function writeMapping(w: XdrWriter, m: PortMapping): XdrWriter {
  return w.uint32(m.prog).uint32(m.vers).uint32(m.prot).uint32(m.port);
}

const MAPPING_ENTRY = 4 + 16;

export class PortmapProgram implements RpcProgram {
  readonly prog = PMAP_PROG;
  readonly name = 'portmap';
  readonly low = PMAP_VERS;
  readonly high = PMAP_VERS;
  readonly procs = 6;
  private readonly table: PortMapping[] = [];

  get mappings(): readonly PortMapping[] {
    return this.table;
  }

  /** Adds a mapping; false when (prog, vers, prot) is already mapped or the table is full. */
  set(m: PortMapping): boolean {
    if (m.prot !== IPPROTO_TCP && m.prot !== IPPROTO_UDP) return false;
    if (this.table.some((t) => t.prog === m.prog && t.vers === m.vers && t.prot === m.prot)) return false;
    if (this.table.length >= MAX_MAPPINGS) return false;
    this.table.push({ ...m });
    return true;
  }

  /** Removes every mapping of (prog, vers), whatever its protocol (RFC 1833). */
  unset(prog: number, vers: number): boolean {
    let removed = false;
    for (let i = this.table.length - 1; i >= 0; i--) {
      const t = this.table[i]!;
      if (t.prog === prog && t.vers === vers) {
        this.table.splice(i, 1);
        removed = true;
      }
    }
    return removed;
  }

  getport(prog: number, vers: number, prot: number): number {
    return this.table.find((t) => t.prog === prog && t.vers === vers && t.prot === prot)?.port ?? 0;
  }

  replyBound(call: R.RpcCall, ctx: RpcContext): number {
    if (call.proc === PMAPPROC.DUMP) return Math.min(ctx.maxReply, (this.table.length + 1) * MAPPING_ENTRY + 8) + R.ACCEPTED_HEADER_SIZE;
    return R.ACCEPTED_HEADER_SIZE + 8;
  }

  handle(call: R.RpcCall, ctx: RpcContext): Buffer {
    const ok = (): XdrWriter => R.acceptedWriter(call.xid, R.SUCCESS, 64);
    switch (call.proc) {
      case PMAPPROC.NULL:
        return ok().finish();
      case PMAPPROC.SET: {
        const m = readMapping(call.args);
        return ok()
          .bool(isLoopback(ctx.address) && this.set(m))
          .finish();
      }
      case PMAPPROC.UNSET: {
        const m = readMapping(call.args);
        return ok()
          .bool(isLoopback(ctx.address) && this.unset(m.prog, m.vers))
          .finish();
      }
      case PMAPPROC.GETPORT: {
        const m = readMapping(call.args);
        return ok().uint32(this.getport(m.prog, m.vers, m.prot)).finish();
      }
      case PMAPPROC.DUMP: {
        const w = R.acceptedWriter(call.xid, R.SUCCESS, 64 + this.table.length * MAPPING_ENTRY);
        let room = ctx.maxReply - 24 - 4;
        for (const m of this.table) {
          if (room < MAPPING_ENTRY) break;
          writeMapping(w.bool(true), m);
          room -= MAPPING_ENTRY;
        }
        return w.bool(false).finish();
      }
      default:
        return R.acceptedReply(call.xid, R.PROC_UNAVAIL);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The client: talking to a system rpcbind/portmapper over UDP.

export interface PmapClientOptions {
  host?: string;
  port?: number;
  /** Time to wait for each attempt (default 500 ms). */
  timeoutMs?: number;
  /** Attempts (default 3). */
  tries?: number;
}

export class PortmapError extends Error {
  override name = 'PortmapError';
}

/** One portmapper call over UDP; resolves to the reply's result reader. */
export function pmapCall(proc: number, args: Buffer, opts: PmapClientOptions = {}): Promise<XdrReader> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 111;
  const timeoutMs = opts.timeoutMs ?? 500;
  const tries = Math.max(1, opts.tries ?? 3);
  const xid = randomInt(0, 0xffffffff);
  const msg = R.encodeCall({ xid, prog: PMAP_PROG, vers: PMAP_VERS, proc, args });
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    let attempt = 0;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (err: Error | null, r?: XdrReader): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(r!);
    };
    const send = (): void => {
      if (attempt++ >= tries) {
        finish(new PortmapError(`no answer from the portmapper at ${host}:${port}`));
        return;
      }
      sock.send(msg, port, host, (err) => {
        if (err) finish(err);
      });
      timer = setTimeout(send, timeoutMs);
    };
    sock.on('error', (err) => finish(err));
    sock.on('message', (data) => {
      let reply: R.RpcReply;
      try {
        reply = R.parseReply(data);
      } catch {
        return;
      }
      if (reply.xid !== xid) return;
      if (!reply.accepted) finish(new PortmapError(`the portmapper at ${host}:${port} denied the call (reject_stat ${reply.rejectStat})`));
      else if (reply.stat !== R.SUCCESS) finish(new PortmapError(`the portmapper at ${host}:${port} answered accept_stat ${reply.stat}`));
      else finish(null, reply.body);
    });
    sock.bind(0, () => send());
  });
}

function mappingArgs(m: PortMapping): Buffer {
  return writeMapping(new XdrWriter(16), m).finish();
}

export async function pmapSet(m: PortMapping, opts?: PmapClientOptions): Promise<boolean> {
  return (await pmapCall(PMAPPROC.SET, mappingArgs(m), opts)).bool();
}

export async function pmapUnset(prog: number, vers: number, opts?: PmapClientOptions): Promise<boolean> {
  return (await pmapCall(PMAPPROC.UNSET, mappingArgs({ prog, vers, prot: 0, port: 0 }), opts)).bool();
}

export async function pmapGetport(prog: number, vers: number, prot: number, opts?: PmapClientOptions): Promise<number> {
  return (await pmapCall(PMAPPROC.GETPORT, mappingArgs({ prog, vers, prot, port: 0 }), opts)).uint32();
}
