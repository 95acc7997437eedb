/**
 * Pieces the NFS lab test and bench share: the reference NFS server (rpcbind + nfs-ganesha with its
 * VFS FSAL) started inside a lab namespace, the machine-wide rpcbind guard, launching a server
 * pinned to a CPU and in a cpuacct cgroup, and reading a process's RSS / descriptors.
 *
 * rpcbind is machine-wide even inside a network namespace: its socket (/run/rpcbind.sock) and its
 * lock (/run/rpcbind.lock) live in the shared file system, so only one may run at a time. We
 * therefore take our own lock (/run/pxe-lab-rpcbind.lock, holder's PID inside, reclaimed when that
 * PID is gone), refuse when any rpcbind already runs, start it without -w (so it never loads a warm
 * start file), and afterwards remove the files it left: the socket, its lock, and the warm-start
 * files it writes on SIGTERM (/run/rpcbind/{rpcbind,portmap}.xdr) — a later `rpcbind -w` (Debian's
 * default) would otherwise resurrect our namespace's registrations.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Netns } from '../lab/netns';

export const RPCBIND = '/usr/sbin/rpcbind';
export const RPCINFO = '/usr/sbin/rpcinfo';
export const GANESHA = '/usr/bin/ganesha.nfsd';
export const NFS_LS = '/usr/bin/nfs-ls';
export const NFS_CAT = '/usr/bin/nfs-cat';
export const NFS_CP = '/usr/bin/nfs-cp';
export const TASKSET = '/usr/bin/taskset';
const GUARD = '/run/pxe-lab-rpcbind.lock';
const RPCBIND_FILES = ['/run/rpcbind.sock', '/run/rpcbind.lock', '/run/rpcbind/rpcbind.xdr', '/run/rpcbind/portmap.xdr'];

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** PIDs (any namespace) of live processes whose command name is `comm`. */
export function pidsNamed(comm: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/comm`, 'utf8').trim() === comm && pidAlive(Number(d))) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

/** Whether something accepts connections on /run/rpcbind.sock (an rpcbind somewhere on the machine). */
export function rpcbindSocketLive(): Promise<boolean> {
  return new Promise((resolve) => {
    if (!fs.existsSync('/run/rpcbind.sock')) return resolve(false);
    const s = net.connect('/run/rpcbind.sock');
    const t = setTimeout(() => {
      s.destroy();
      resolve(true);
    }, 1000);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

/** Why no rpcbind of ours can run now (another one runs on the machine), or null. */
export async function rpcbindBlocked(): Promise<string | null> {
  const others = pidsNamed('rpcbind');
  if (others.length) return `an rpcbind already runs on this machine (pid ${others.join(', ')}); its /run/rpcbind.sock is shared by every namespace`;
  if (await rpcbindSocketLive()) return 'something accepts connections on /run/rpcbind.sock';
  return null;
}

/** Waits up to `waitMs` for another rpcbind on the machine to go away; the reason if it does not. */
export async function waitRpcbindFree(waitMs: number): Promise<string | null> {
  const end = Date.now() + waitMs;
  for (;;) {
    const why = await rpcbindBlocked();
    if (!why || Date.now() > end) return why;
    await sleep(1000);
  }
}

export interface RpcbindHandle {
  pid: number;
  stop(): Promise<void>;
}

let exitHookInstalled = false;
const liveRpcbinds = new Set<{ child: ChildProcess; restore: () => void }>();
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const r of liveRpcbinds) {
      r.child.kill('SIGKILL');
      r.restore();
    }
  });
}

/** Takes the lab's rpcbind lock, waiting up to `waitMs` for another lab run to release it. */
async function takeGuard(waitMs: number): Promise<void> {
  const end = Date.now() + waitMs;
  for (;;) {
    try {
      fs.writeFileSync(GUARD, String(process.pid), { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number(fs.readFileSync(GUARD, 'utf8').trim());
    if (!holder || !pidAlive(holder)) {
      fs.rmSync(GUARD, { force: true });
      continue;
    }
    if (Date.now() > end) throw new Error(`${GUARD} is held by pid ${holder} (another lab run uses rpcbind)`);
    await sleep(500);
  }
}

/**
 * Starts rpcbind in `ns` (foreground, no warm start) under the guard; resolves once it answers on
 * 127.0.0.1:111 there. stop() ends it by PID and removes the files it left behind.
 */
export async function startRpcbind(ns: Netns, opts: { waitMs?: number } & LaunchOptions = {}): Promise<RpcbindHandle> {
  await takeGuard(opts.waitMs ?? 120_000);
  const blocked = await waitRpcbindFree(opts.waitMs ?? 120_000);
  if (blocked) {
    fs.rmSync(GUARD, { force: true });
    throw new Error(blocked);
  }
  const saved = new Map<string, Buffer | null>();
  // The socket and lock only matter by their presence; the warm-start files by their content.
  for (const f of RPCBIND_FILES) saved.set(f, !fs.existsSync(f) ? null : f.endsWith('.xdr') ? fs.readFileSync(f) : Buffer.alloc(0));
  const restore = (): void => {
    for (const [f, content] of saved) {
      try {
        if (content === null || f.endsWith('.sock') || f.endsWith('.lock')) {
          if (content === null) fs.rmSync(f, { force: true });
        } else fs.writeFileSync(f, content);
      } catch {
        // best effort
      }
    }
    try {
      if (fs.readFileSync(GUARD, 'utf8').trim() === String(process.pid)) fs.rmSync(GUARD, { force: true });
    } catch {
      // not ours / gone
    }
  };
  installExitHook();
  const child = launch(ns, [RPCBIND, '-f'], opts);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.resume();
  const entry = { child, restore };
  liveRpcbinds.add(entry);
  const stop = async (): Promise<void> => {
    if (!liveRpcbinds.has(entry)) return;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    liveRpcbinds.delete(entry);
    restore();
  };
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`rpcbind exited at start: ${stderr.trim()}`);
    }
    const r = await ns.run(RPCINFO, ['-p', '127.0.0.1'], { timeoutMs: 3000 });
    if (r.code === 0 && /portmapper/.test(r.stdout)) break;
    if (i > 50) {
      await stop();
      throw new Error(`rpcbind did not answer: ${r.stderr} ${stderr}`);
    }
    await sleep(100);
  }
  return { pid: child.pid!, stop };
}

/** `rpcinfo -p host` parsed: one row per registration. */
export async function rpcinfoDump(ns: Netns, host: string): Promise<{ ok: boolean; rows: { prog: number; vers: number; proto: string; port: number }[]; text: string }> {
  const r = await ns.run(RPCINFO, ['-p', host], { timeoutMs: 10000 });
  const rows = [...r.stdout.matchAll(/^\s*(\d+)\s+(\d+)\s+(tcp|udp)\s+(\d+)/gm)].map((m) => ({ prog: Number(m[1]), vers: Number(m[2]), proto: m[3]!, port: Number(m[4]) }));
  return { ok: r.code === 0, rows, text: r.stdout + r.stderr };
}

/**
 * How a server process is launched: pinned to CPUs with taskset, and/or placed in a cgroup. The
 * cgroup is joined before the server starts: a shell in the root mount namespace (`ip netns exec`
 * mounts a sysfs of its own, without the cgroup hierarchy) writes its PID to cgroup.procs, then
 * execs `ip netns exec … taskset … server` — the same PID all along, so every thread and child of
 * the server is accounted there from its first instruction.
 */
export interface LaunchOptions {
  cpus?: string;
  cgroup?: string;
}

const launched = new Set<ChildProcess>();
let launchHook = false;

/** Starts `argv` inside `ns` as LaunchOptions say; the returned process is the server itself. */
export function launch(ns: Netns, argv: string[], opts: LaunchOptions = {}, spawnOpts: SpawnOptions = {}): ChildProcess {
  const cmd = opts.cpus ? [TASKSET, '-c', opts.cpus, ...argv] : argv;
  if (!opts.cgroup) return ns.spawn(cmd[0]!, cmd.slice(1), spawnOpts);
  const child = spawn('/bin/sh', ['-c', `echo $$ > ${opts.cgroup}/cgroup.procs && exec "$@"`, 'sh', '/usr/sbin/ip', 'netns', 'exec', ns.name, ...cmd], { stdio: 'pipe', ...spawnOpts });
  launched.add(child);
  child.on('exit', () => launched.delete(child));
  if (!launchHook) {
    launchHook = true;
    process.on('exit', () => {
      for (const c of launched) c.kill('SIGKILL');
    });
  }
  return child;
}

export interface GaneshaHandle {
  pid: number;
  child: ChildProcess;
  log: string;
  stop(): Promise<void>;
}

/**
 * nfs-ganesha (VFS FSAL) serving `root` read-only over NFSv3 (TCP and UDP) at `address`, with the
 * v3 mount path taken from the pseudo path (Mount_Path_Pseudo) so clients use the same URL as for
 * our server. Needs rpcbind running in `ns` (ganesha registers there and refuses to start without).
 */
export async function startGanesha(
  ns: Netns,
  opts: { address: string; root: string; exportPath?: string; workDir: string } & LaunchOptions,
): Promise<GaneshaHandle> {
  const exportPath = opts.exportPath ?? '/run/archiso/bootmnt';
  const recovery = path.join(opts.workDir, 'ganesha-recovery');
  fs.mkdirSync(recovery, { recursive: true });
  const conf = path.join(opts.workDir, 'ganesha.conf');
  const log = path.join(opts.workDir, 'ganesha.log');
  const pidFile = path.join(opts.workDir, 'ganesha.pid');
  fs.writeFileSync(
    conf,
    `NFS_CORE_PARAM {
  Protocols = 3; NFS_Port = 2049; MNT_Port = 20048; Bind_addr = ${opts.address};
  Enable_NLM = false; Enable_RQUOTA = false; Mount_Path_Pseudo = true;
}
NFSV4 { Graceless = true; RecoveryRoot = "${recovery}"; }
EXPORT {
  Export_Id = 1; Path = "${opts.root}"; Pseudo = "${exportPath}";
  Access_Type = RO; Protocols = 3; Transports = UDP, TCP; SecType = sys; Squash = No_Root_Squash;
  FSAL { Name = VFS; }
}
`,
  );
  // ganesha makes these itself; remember whether they were there, to leave the machine as it was.
  const made = ['/run/ganesha', '/var/lib/nfs/ganesha'].filter((d) => !fs.existsSync(d));
  const child = launch(ns, [GANESHA, '-F', '-f', conf, '-L', log, '-p', pidFile], opts);
  child.stdout!.resume();
  child.stderr!.resume();
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(t);
    }
    for (const d of made) fs.rmSync(d, { recursive: true, force: true });
  };
  for (let i = 0; ; i++) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`ganesha.nfsd exited at start; log: ${fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(-2000) : '(none)'}`);
    }
    const r = await ns.run(RPCINFO, ['-t', opts.address, 'nfs', '3'], { timeoutMs: 3000 });
    if (r.code === 0) break;
    if (i > 100) {
      await stop();
      throw new Error(`ganesha.nfsd did not come up: ${r.stderr}`);
    }
    await sleep(200);
  }
  return { pid: child.pid!, child, log, stop };
}

/** Resident set size of a process in bytes (from /proc). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

export function fdCountOf(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** Sockets listening (TCP) or bound (UDP) in `ns`, as `ss -Hlntup` prints them. */
export function listeningIn(ns: Netns): string[] {
  const out = execFileSync('/usr/sbin/ip', ['netns', 'exec', ns.name, '/usr/bin/ss', '-Hlntupa'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.trim() && !/ESTAB|TIME-WAIT|CLOSE-WAIT|FIN-WAIT|SYN-|LAST-ACK|CLOSING/.test(l));
}

/** A cpuacct cgroup of our own (cgroup v1), removed by remove(). */
export class CpuGroup {
  static readonly ROOT = '/sys/fs/cgroup/cpuacct';
  readonly dir: string;
  constructor(name: string) {
    this.dir = path.join(CpuGroup.ROOT, `pxelab-${process.pid}-${name}`);
    fs.mkdirSync(this.dir);
  }
  static available(): boolean {
    return fs.existsSync(path.join(CpuGroup.ROOT, 'cpuacct.usage'));
  }
  /** Removes empty groups left by lab runs whose process is gone (a killed bench). */
  static sweep(): void {
    for (const d of fs.existsSync(CpuGroup.ROOT) ? fs.readdirSync(CpuGroup.ROOT) : []) {
      const m = /^pxelab-(\d+)-/.exec(d);
      if (!m || pidAlive(Number(m[1]))) continue;
      try {
        fs.rmdirSync(path.join(CpuGroup.ROOT, d));
      } catch {
        // still has processes, or gone
      }
    }
  }
  /** CPU time of everything in the group so far, seconds. */
  seconds(): number {
    return Number(fs.readFileSync(path.join(this.dir, 'cpuacct.usage'), 'utf8').trim()) / 1e9;
  }
  /** Removes the group once its processes are gone (waits a little for them). */
  async remove(): Promise<void> {
    for (let i = 0; i < 50; i++) {
      try {
        fs.rmdirSync(this.dir);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return;
        await sleep(100);
      }
    }
  }
}
