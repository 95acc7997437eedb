/**
 * RPC programs and the dispatch of a decoded call to one of them: program → version → procedure,
 * with the RFC 5531 answers for what is not served (PROG_UNAVAIL, PROG_MISMATCH(low, high),
 * PROC_UNAVAIL), GARBAGE_ARGS when the arguments do not decode (XdrError), SYSTEM_ERR when the
 * procedure fails otherwise.
 */
import * as R from './rpc';
import { XdrError } from './xdr';

export interface RpcContext {
  transport: 'tcp' | 'udp';
  /** The client's address, plain IPv4 for IPv4 clients. */
  address: string;
  port: number;
  /** The largest reply message this transport carries, in bytes. */
  maxReply: number;
  /** The TCP connection the call came on (absent for UDP): state a program may keep per client. */
  session?: ConnectionSession;
}

/** What a program may do with the connection a call came on. */
export interface ConnectionSession {
  /** Calls of this connection running now, the caller's included. */
  readonly inflight: number;
  readonly closed: boolean;
  /** Takes `n` bytes of reply memory (connection and server budgets) if free now; never waits. */
  tryReserve(n: number): boolean;
  unreserve(n: number): void;
  /** Work the connection must wait for before it counts as closed (a read ahead). */
  track(p: Promise<unknown>): void;
  /** Runs `fn` once when the connection closes (at once if it has). */
  onClose(fn: () => void): void;
}

export interface RpcProgram {
  readonly prog: number;
  readonly name: string;
  /** Versions served: low..high. */
  readonly low: number;
  readonly high: number;
  /** Procedures: 0..procs-1 (others are PROC_UNAVAIL). */
  readonly procs: number;
  /**
   * The most bytes the reply to `call` can take (mark space included), for the memory budget
   * reserved before the call runs. Must not consume `call.args` (use clone()).
   */
  replyBound(call: R.RpcCall, ctx: RpcContext): number;
  /** Answers a call of a served version and procedure: the reply with mark space, or null for none. */
  handle(call: R.RpcCall, ctx: RpcContext): Promise<Buffer | null> | Buffer | null;
}

/** Room for any reply that is not READ/READDIR data: the largest fixed results are ~300 bytes. */
export const SMALL_REPLY = 1024;

/** The answer when the call is not for a served program/version/procedure; null if it is. */
export function checkServed(programs: ReadonlyMap<number, RpcProgram>, call: R.RpcCall): Buffer | null {
  const p = programs.get(call.prog);
  if (!p) return R.acceptedReply(call.xid, R.PROG_UNAVAIL);
  if (call.vers < p.low || call.vers > p.high) return R.progMismatchReply(call.xid, p.low, p.high);
  if (call.proc >= p.procs) return R.acceptedReply(call.xid, R.PROC_UNAVAIL);
  return null;
}

/** The budget bound of a call's reply (small for calls that are refused). */
export function replyBound(programs: ReadonlyMap<number, RpcProgram>, call: R.RpcCall, ctx: RpcContext): number {
  const p = programs.get(call.prog);
  if (!p || call.vers < p.low || call.vers > p.high || call.proc >= p.procs) return R.ACCEPTED_HEADER_SIZE + 8;
  try {
    return Math.max(R.ACCEPTED_HEADER_SIZE + 8, p.replyBound(call, ctx));
  } catch {
    return SMALL_REPLY;
  }
}

/**
 * Runs a call; resolves to the reply (mark space in front) or null. `onError` hears about
 * procedures that failed (they are answered SYSTEM_ERR).
 */
export async function dispatch(
  programs: ReadonlyMap<number, RpcProgram>,
  call: R.RpcCall,
  ctx: RpcContext,
  onError: (err: Error) => void,
): Promise<Buffer | null> {
  const refused = checkServed(programs, call);
  if (refused) return refused;
  const p = programs.get(call.prog)!;
  try {
    const reply = await p.handle(call, ctx);
    if (reply && reply.length - R.MARK_SPACE > ctx.maxReply) {
      onError(new Error(`${p.name} procedure ${call.proc}: reply of ${reply.length} bytes exceeds ${ctx.maxReply}`));
      return R.acceptedReply(call.xid, R.SYSTEM_ERR);
    }
    return reply;
  } catch (err) {
    if (err instanceof XdrError) return R.acceptedReply(call.xid, R.GARBAGE_ARGS);
    onError(err as Error);
    return R.acceptedReply(call.xid, R.SYSTEM_ERR);
  }
}
