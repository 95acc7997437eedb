/**
 * Who owns a NAT table/chain of ours, and whether that owner still lives. Every rule we write
 * carries a mark of the process that wrote it (PID, its start time since boot, its PID namespace),
 * so that any later start can tell the leftovers of a killed Node-RED (remove them) from the rules
 * of one that runs (leave them alone), whichever node id it had.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export interface OwnerMark {
  pid: number;
  /** Start time of the process, in clock ticks since boot (/proc/<pid>/stat field 22): tells a reused PID. */
  start: string;
  /** Inode of its PID namespace: a PID means something only in its own namespace. */
  pidns: string;
}

/** 'unknown' is treated as alive: a table we cannot judge is never removed. */
export type Liveness = 'alive' | 'dead' | 'unknown';

export function formatMark(m: OwnerMark): string {
  return `${m.pid}.${m.start}.${m.pidns}`;
}

export function parseMark(text: string): OwnerMark | null {
  const m = /^(\d{1,10})\.(\d{1,20})\.(\d{1,20})$/.exec(text);
  return m ? { pid: Number(m[1]), start: m[2]!, pidns: m[3]! } : null;
}

export function sameMark(a: OwnerMark, b: OwnerMark): boolean {
  return a.pid === b.pid && a.start === b.start && a.pidns === b.pidns;
}

/** Field 22 (starttime) of a /proc/<pid>/stat line; the command name may hold spaces and parentheses. */
export function statStartTime(stat: string): string | null {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const v = fields[19];
  return v && /^\d+$/.test(v) ? v : null;
}

function nsInode(link: string): string | null {
  return /^pid:\[(\d+)\]$/.exec(link)?.[1] ?? null;
}

/** Reads a process's mark through a procfs root (for tests); null when /proc does not say. */
export function markOf(pid: number | 'self', proc = '/proc'): OwnerMark | null {
  try {
    const start = statStartTime(readFileSync(`${proc}/${pid}/stat`, 'utf8'));
    const pidns = nsInode(readlinkSync(`${proc}/${pid}/ns/pid`));
    const realPid = pid === 'self' ? process.pid : pid;
    return start && pidns ? { pid: realPid, start, pidns } : null;
  } catch {
    return null;
  }
}

/**
 * Whether the process of a mark still runs, as seen from `self`'s PID namespace. A process of our
 * namespace is alive if its PID runs with the same start time. Of another namespace we only know
 * that it is dead when no process we can see is in that namespace any more; otherwise 'unknown'.
 */
export function processLiveness(mark: OwnerMark, self: OwnerMark, proc = '/proc'): Liveness {
  if (mark.pidns === self.pidns) {
    let stat: string;
    try {
      stat = readFileSync(`${proc}/${mark.pid}/stat`, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // hidepid=2 hides other users' processes: their absence proves nothing.
      if (code === 'ENOENT' || code === 'ESRCH') return procHidesOthers(proc) ? 'unknown' : 'dead';
      return 'unknown';
    }
    return statStartTime(stat) === mark.start ? 'alive' : 'dead';
  }
  let entries: string[];
  try {
    entries = readdirSync(proc).filter((e) => /^\d+$/.test(e));
  } catch {
    return 'unknown';
  }
  let unreadable = false;
  for (const e of entries) {
    try {
      if (nsInode(readlinkSync(`${proc}/${e}/ns/pid`)) === mark.pidns) return 'alive';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') unreadable = true;
    }
  }
  return unreadable || procHidesOthers(proc) ? 'unknown' : 'dead';
}

function procHidesOthers(proc: string): boolean {
  // root sees every process whatever the mount says.
  if (process.getuid?.() === 0) return false;
  try {
    const line = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[1] === proc);
    return /(^|,)hidepid=(2|invisible)(,|$)/.test(line?.split(' ')[3] ?? '');
  } catch {
    return false;
  }
}
