/**
 * The network test lab: throwaway network namespaces, veth pairs, bridges and tap devices, made
 * with iproute2 and always removed (after the test, on exit, on SIGINT/SIGTERM, and — for labs left
 * by a killed run — at the next start). Every DHCP/TFTP/HTTP test puts its server and its clients
 * in here, so nothing is ever sent on the machine's own interfaces.
 *
 * Links are created directly inside their namespaces, so their names only need to be unique per
 * namespace and nothing ever appears in the root namespace.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

const PREFIX = 'pxelab';
const IP = '/usr/sbin/ip';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  timeoutMs?: number;
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

function ip(...args: string[]): string {
  return execFileSync(IP, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes namespaces left by lab runs whose process is gone (a killed test run). */
export function sweepStaleLabs(): void {
  let list = '';
  try {
    list = ip('netns', 'list');
  } catch {
    return;
  }
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    const m = /^pxelab-(\d+)-/.exec(name ?? '');
    if (m && !pidAlive(Number(m[1]))) {
      try {
        ip('netns', 'del', name!);
      } catch {
        // already gone
      }
    }
  }
}

const liveLabs = new Set<Lab>();
let hooksInstalled = false;
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const lab of liveLabs) lab.destroySync();
      process.kill(process.pid, sig);
    });
  }
}

export class Netns {
  private readonly children = new Set<ChildProcess>();
  constructor(readonly name: string) {}

  /** Runs a command inside the namespace and collects its output (never throws on exit codes). */
  run(cmd: string, args: string[] = [], opts: RunOptions = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = this.spawn(cmd, args, { env: opts.env, cwd: opts.cwd });
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const timer = opts.timeoutMs
        ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs)
        : undefined;
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        resolve({ code, signal, stdout, stderr });
      });
      if (opts.input !== undefined) child.stdin!.end(opts.input);
      else child.stdin!.end();
    });
  }

  /** Starts a long-running process inside the namespace; it is killed when the lab is destroyed. */
  spawn(cmd: string, args: string[] = [], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn(IP, ['netns', 'exec', this.name, cmd, ...args], { stdio: 'pipe', ...opts });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /** `ip` inside this namespace; throws with ip's message on failure. */
  ip(...args: string[]): string {
    return ip('-n', this.name, ...args);
  }

  /** Stops what this namespace's processes are, by PID, and waits briefly for them. */
  async stopChildren(): Promise<void> {
    const waits = [...this.children].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const t = setTimeout(() => {
            c.kill('SIGKILL');
          }, 3000);
          c.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          c.kill('SIGTERM');
        }),
    );
    await Promise.all(waits);
  }

  killChildrenSync(): void {
    for (const c of this.children) c.kill('SIGKILL');
  }
}

export class Lab {
  readonly namespaces: Netns[] = [];
  private counter = 0;
  private destroyed = false;
  readonly tag: string;

  private constructor() {
    this.tag = `${PREFIX}-${process.pid}-${Date.now().toString(36)}`;
  }

  static create(): Lab {
    if (process.getuid?.() !== 0) throw new Error('the network lab needs root (ip netns)');
    sweepStaleLabs();
    installExitHooks();
    const lab = new Lab();
    liveLabs.add(lab);
    return lab;
  }

  /** A new namespace with loopback up. */
  netns(role: string): Netns {
    const ns = new Netns(`${this.tag}-${role}`);
    ip('netns', 'add', ns.name);
    this.namespaces.push(ns);
    ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  /**
   * A veth pair between two namespaces, addresses in CIDR form (or null for none), both ends up.
   * Returns the interface names (in their namespaces).
   */
  veth(a: Netns, aAddr: string | null, b: Netns, bAddr: string | null, opts: { mtu?: number; aName?: string; bName?: string } = {}): { a: string; b: string } {
    const n = this.counter++;
    const aName = opts.aName ?? `veth${n}a`;
    const bName = opts.bName ?? `veth${n}b`;
    ip('link', 'add', aName, 'netns', a.name, 'type', 'veth', 'peer', 'name', bName, 'netns', b.name);
    for (const [ns, dev, addr] of [[a, aName, aAddr], [b, bName, bAddr]] as const) {
      if (opts.mtu) ns.ip('link', 'set', dev, 'mtu', String(opts.mtu));
      if (addr) ns.ip('addr', 'add', addr, 'dev', dev);
      ns.ip('link', 'set', dev, 'up');
    }
    return { a: aName, b: bName };
  }

  /** A bridge inside `ns` (with an address if given); tap devices and veths can be attached. */
  bridge(ns: Netns, addr: string | null, name = `br${this.counter++}`): string {
    ns.ip('link', 'add', name, 'type', 'bridge');
    // No STP/forward delay: a QEMU NIC must be able to talk as soon as it comes up.
    ns.ip('link', 'set', name, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0');
    if (addr) ns.ip('addr', 'add', addr, 'dev', name);
    ns.ip('link', 'set', name, 'up');
    return name;
  }

  /** A tap device in `ns`, enslaved to `bridge`, for a QEMU NIC. */
  tap(ns: Netns, bridge: string, name = `tap${this.counter++}`): string {
    ns.ip('tuntap', 'add', 'dev', name, 'mode', 'tap');
    ns.ip('link', 'set', name, 'master', bridge);
    ns.ip('link', 'set', name, 'up');
    return name;
  }

  /** A veth from `other` (with `addr`) into `bridge` in `ns`. Returns the name in `other`. */
  attach(ns: Netns, bridge: string, other: Netns, addr: string | null, opts: { mtu?: number } = {}): string {
    const { a, b } = this.veth(ns, null, other, addr, opts);
    ns.ip('link', 'set', a, 'master', bridge);
    return b;
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    await Promise.all(this.namespaces.map((ns) => ns.stopChildren()));
    this.destroySync();
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    liveLabs.delete(this);
    for (const ns of this.namespaces.reverse()) {
      ns.killChildrenSync();
      try {
        ip('netns', 'del', ns.name);
      } catch {
        // already gone
      }
    }
  }
}

/** Whether this machine can run the lab (root, iproute2 with netns). */
export function labAvailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  try {
    ip('netns', 'list');
  } catch (err) {
    return `ip netns unavailable: ${(err as Error).message}`;
  }
  return null;
}
