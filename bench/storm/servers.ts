/**
 * The two servers of `bench:storm`, each started in the server namespace, pinned to one CPU
 * (taskset) and in a cpuacct cgroup of its own (joined before exec, so forked workers count):
 *   ours  — the "Arch PXE" example in a real Node-RED 4.1, the package installed from `npm pack`;
 *   stack — dnsmasq (DHCP + TFTP, the Arch wiki's configuration) + nginx serving the extracted tree.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Netns } from '../../test/lab/netns';
import { waitForLine } from '../../test/lab/process';
import { archPxeFlow } from '../../test/e2e/arch-pxe-flow';
import { prepareFiles } from './files';
import { filesRead, type Recording } from './script';

const root = path.resolve(__dirname, '..', '..');
const CPUACCT = '/sys/fs/cgroup/cpuacct';

/** A cpuacct group for one server; removed by remove(). */
export class CpuGroup {
  readonly dir: string;
  constructor(name: string) {
    this.dir = path.join(CPUACCT, `pxestorm-${process.pid}-${name}`);
    fs.mkdirSync(this.dir, { recursive: true });
  }
  static available(): boolean {
    return fs.existsSync(path.join(CPUACCT, 'cpuacct.usage'));
  }
  /** CPU time of everything that ran in the group, in seconds. */
  seconds(): number {
    return Number(fs.readFileSync(path.join(this.dir, 'cpuacct.usage'), 'utf8')) / 1e9;
  }
  /**
   * argv that waits for a line on stdin, then pins itself to `cpu` and execs `cmd`: join() puts
   * it in the group first (`ip netns exec` mounts its own /sys, so the group is joined from here).
   */
  wrap(cpu: number, cmd: string, args: string[]): [string, string[]] {
    return ['/bin/sh', ['-c', `read go; exec /usr/bin/taskset -c ${cpu} "$@"`, 'storm', cmd, ...args]];
  }
  /** Moves a wrap()ped process into the group, then lets it start. */
  join(proc: ChildProcess): void {
    fs.writeFileSync(path.join(this.dir, 'cgroup.procs'), String(proc.pid));
    proc.stdin!.write('go\n');
  }
  remove(): void {
    try {
      fs.rmdirSync(this.dir);
    } catch {
      // still has tasks (a process that would not die) or already gone
    }
  }
}

/** Peak resident set (VmHWM) of a process and its descendants, in bytes. */
export function peakRss(pid: number): number {
  let total = 0;
  const visit = (p: number): void => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
      for (const t of fs.readdirSync(`/proc/${p}/task`)) {
        const kids = fs.readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim();
        for (const k of kids ? kids.split(/\s+/) : []) visit(Number(k));
      }
    } catch {
      // gone
    }
  };
  visit(pid);
  return total;
}

export interface Running {
  proc: ChildProcess;
  /** The server's processes (peak RSS is summed over them and their children). */
  pids: number[];
  cpu: CpuGroup;
  stop(): Promise<void>;
  log(): string;
}

function stopper(proc: ChildProcess): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
      proc.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      proc.kill('SIGTERM');
    });
}

function collect(proc: ChildProcess): () => string {
  let out = '';
  proc.stdout?.on('data', (d) => (out = (out + d).slice(-200000)));
  proc.stderr?.on('data', (d) => (out = (out + d).slice(-200000)));
  return () => out;
}

// ---------------------------------------------------------------- ours

/**
 * What a storm run needs before any server starts: the recording's files at `scale` (checked to
 * cover every file it reads), the packed package installed in a Node-RED user dir, and the
 * loader the clients ask for first.
 */
export function prepareRun(work: string, recording: Recording, scale: number): { files: ReturnType<typeof prepareFiles>; userDir: string; bootFile: string } {
  const files = prepareFiles(work, recording.iso, scale);
  const userDir = installPacked(path.join(work, 'pkg'));
  const missing = filesRead(recording.steps).filter((f) => !files.expect[f]);
  if (missing.length) throw new Error(`the recording reads files the tree lacks: ${missing.join(', ')}`);
  const firstTftp = recording.steps.find((s) => s.proto === 'tftp');
  if (!firstTftp || firstTftp.proto !== 'tftp') throw new Error('the recording has no TFTP request');
  return { files, userDir, bootFile: firstTftp.file };
}

/** `npm pack` of this checkout, installed into a fresh user dir as Node-RED's palette would (plus its native addon). */
export function installPacked(work: string): string {
  const userDir = path.join(work, 'user');
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { name: string };
  const modDir = path.join(userDir, 'node_modules', ...pkg.name.split('/'));
  fs.mkdirSync(modDir, { recursive: true });
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as { filename: string }[];
  execFileSync('tar', ['-xzf', path.join(work, packed[0]!.filename), '-C', modDir, '--strip-components=1']);
  // The package's install script (what `npm install` runs): builds the native UDP addon.
  execFileSync(process.execPath, [path.join(modDir, 'scripts', 'build-native.mjs'), '--required'], { cwd: modDir, stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
  return userDir;
}

/**
 * settings.js for the storm: the event-loop delay is measured inside Node-RED's own process with
 * perf_hooks.monitorEventLoopDelay (10 ms resolution), reset when `<lagFile>.reset` appears (the
 * storm's start; Node-RED itself exits on SIGUSR2) and written with the RSS to `lagFile` every 250 ms.
 */
export function settingsJs(lagFile: string): string {
  return `const { monitorEventLoopDelay } = require('perf_hooks');
const fs = require('fs');
const h = monitorEventLoopDelay({ resolution: 10 });
h.enable();
const resetFile = ${JSON.stringify(lagFile + '.reset')};
setInterval(() => {
  if (fs.existsSync(resetFile)) {
    fs.rmSync(resetFile, { force: true });
    h.reset();
  }
  const ms = (ns) => ns / 1e6;
  fs.writeFileSync(${JSON.stringify(lagFile)}, JSON.stringify({ p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), count: h.count, rss: process.memoryUsage.rss() }));
}, 250).unref();
module.exports = { uiHost: '127.0.0.1', uiPort: 1880, flowFile: 'flows.json', credentialSecret: false, logging: { console: { level: 'info' } } };
`;
}

export interface OursOptions {
  userDir: string;
  iso: string;
  iface: string;
  /** full: our node gives the addresses (from `pool`); proxy: an address server beside it does. */
  dhcp: 'full' | 'proxy';
  pool: { start: string; end: string };
  eventsFile: string;
  lagFile: string;
  cpu: number;
}

export async function startOurs(ns: Netns, o: OursOptions): Promise<Running> {
  // A fresh state each round: no leases or boot history from the last one.
  for (const f of ['flows.json', 'pxe-dhcp', '.config.runtime.json']) fs.rmSync(path.join(o.userDir, f), { recursive: true, force: true });
  for (const f of fs.readdirSync(o.userDir)) if (f.startsWith('pxe-')) fs.rmSync(path.join(o.userDir, f), { recursive: true, force: true });
  const flow = archPxeFlow({ iso: o.iso, iface: o.iface, mode: o.dhcp, poolStart: o.dhcp === 'full' ? o.pool.start : '', poolEnd: o.dhcp === 'full' ? o.pool.end : '', eventsFile: o.eventsFile });
  // "Debug nodes on": every debug node of the example active, as a user watching the sidebar.
  for (const n of flow) if (n.type === 'debug') n.active = true;
  fs.writeFileSync(path.join(o.userDir, 'flows.json'), JSON.stringify(flow, null, 2));
  fs.writeFileSync(path.join(o.userDir, 'settings.js'), settingsJs(o.lagFile));
  const cpu = new CpuGroup('ours');
  const [cmd, args] = cpu.wrap(o.cpu, process.execPath, [path.join(root, 'node_modules', 'node-red', 'red.js'), '--userDir', o.userDir]);
  const proc = ns.spawn(cmd, args, { env: { ...process.env, HOME: os.tmpdir() } });
  cpu.join(proc);
  const log = collect(proc);
  const stop = stopper(proc);
  try {
    await waitForLine(proc, new RegExp(`\\[pxe-dhcp:[^\\]]*\\] ${o.dhcp} mode on`), 90_000);
    await waitForLine(proc, /Started flows/, 30_000).catch(() => undefined);
  } catch (err) {
    await stop();
    cpu.remove();
    throw new Error(`Node-RED did not start serving: ${(err as Error).message}\n${log().slice(-4000)}`);
  }
  return { proc, pids: [proc.pid!], cpu, stop: async () => { await stop(); cpu.remove(); }, log };
}

// ---------------------------------------------------------------- the seed's stack

export interface StackOptions {
  tree: string;
  work: string;
  iface: string;
  address: string;
  /** full: the wiki's configuration; proxy: dnsmasq's own proxy mode beside the address server. */
  dhcp: 'full' | 'proxy';
  pool: { start: string; end: string; mask: string };
  /** What the ISO's layout needs (the wiki's lines, with this ISO's paths). */
  bootFile: string;
  option209: string;
  option210: string;
  cpu: number;
}

/**
 * Full: the Arch wiki's /etc/dnsmasq.conf, with this lab's interface, pool and the ISO's paths.
 * Proxy: dnsmasq's proxy mode (its man page's "proxy" dhcp-range and pxe-service) beside the
 * address server: a proxy offer to PXE clients' DISCOVERs, an ACK to their port-4011 REQUEST,
 * both naming the loader (dhcp-boot, which dnsmasq puts in proxy replies "for iPXE"). dnsmasq
 * sends no 209/210 in proxy replies (only option 43 and the file field); the replay asks for
 * the recorded files all the same.
 */
export function dnsmasqConf(o: StackOptions): string {
  const dhcp =
    o.dhcp === 'full'
      ? [`dhcp-range=${o.pool.start},${o.pool.end},${o.pool.mask},12h`, `dhcp-boot=${o.bootFile}`, `dhcp-option-force=209,${o.option209}`, `dhcp-option-force=210,${o.option210}`, `dhcp-option-force=66,${o.address}`]
      : [`dhcp-range=${o.address},proxy,${o.pool.mask}`, `dhcp-boot=${o.bootFile}`, `pxe-service=x86PC,"Arch Linux (PXE)",${o.bootFile.replace(/\.0$/, '')}`];
  return [
    'port=0',
    `interface=${o.iface}`,
    'bind-interfaces',
    ...dhcp,
    'enable-tftp',
    `tftp-root=${o.tree}`,
    // The lab's additions: files of this run, not the system's.
    `dhcp-leasefile=${path.join(o.work, 'dnsmasq.leases')}`,
    `pid-file=${path.join(o.work, 'dnsmasq.pid')}`,
    `log-facility=${path.join(o.work, 'dnsmasq.log')}`,
    '',
  ].join('\n');
}

export function nginxConf(o: StackOptions): string {
  const w = o.work;
  return `daemon off;
worker_processes auto;
pid ${w}/nginx.pid;
error_log ${w}/nginx-error.log;
events { worker_connections 1024; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  log_format storm '$remote_addr $request_method $uri $status "$http_range"';
  access_log ${w}/nginx-access.log storm;
  client_body_temp_path ${w}/nginx-body;
  proxy_temp_path ${w}/nginx-proxy;
  fastcgi_temp_path ${w}/nginx-fastcgi;
  uwsgi_temp_path ${w}/nginx-uwsgi;
  scgi_temp_path ${w}/nginx-scgi;
  server { listen ${o.address}:80; root ${o.tree}; }
}
`;
}

export async function startStack(ns: Netns, o: StackOptions): Promise<Running> {
  fs.rmSync(path.join(o.work, 'dnsmasq.leases'), { force: true });
  fs.writeFileSync(path.join(o.work, 'dnsmasq.conf'), dnsmasqConf(o));
  fs.writeFileSync(path.join(o.work, 'nginx.conf'), nginxConf(o));
  const cpu = new CpuGroup('stack');
  // Two processes, one group: each is stopped by its own PID (nginx's master takes its workers along).
  const procs = [
    ['/usr/sbin/dnsmasq', ['--no-daemon', `--conf-file=${o.work}/dnsmasq.conf`]],
    ['/usr/sbin/nginx', ['-c', `${o.work}/nginx.conf`]],
  ].map(([bin, args]) => {
    const [cmd, argv] = cpu.wrap(o.cpu, bin as string, args as string[]);
    const proc = ns.spawn(cmd, argv);
    cpu.join(proc);
    return proc;
  });
  const logs = procs.map(collect);
  const stops = procs.map(stopper);
  const stopAll = async (): Promise<void> => {
    await Promise.all(stops.map((f) => f()));
    cpu.remove();
  };
  // dnsmasq logs to its file (log-facility): its tail is the part that tells what TFTP did.
  const dnsmasqLog = path.join(o.work, 'dnsmasq.log');
  const log = (): string => [...logs.map((l) => l()), fs.existsSync(dnsmasqLog) ? fs.readFileSync(dnsmasqLog, 'utf8').slice(-20000) : ''].join('\n');
  // Both listening: dnsmasq binds 67/69 (and 4011 in proxy mode), nginx 80.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await ns.run('/usr/bin/ss', ['-lnu4tp']);
    if (/:67\b.*dnsmasq/.test(r.stdout) && /:69\b.*dnsmasq/.test(r.stdout) && /:80\b.*nginx/.test(r.stdout) && (o.dhcp === 'full' || /:4011\b.*dnsmasq/.test(r.stdout))) break;
    if (Date.now() > deadline || procs.some((p) => p.exitCode !== null)) {
      await stopAll();
      throw new Error(`dnsmasq/nginx did not start:\n${log()}\n${fs.existsSync(path.join(o.work, 'dnsmasq.log')) ? fs.readFileSync(path.join(o.work, 'dnsmasq.log'), 'utf8').slice(-2000) : ''}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { proc: procs[0]!, pids: procs.map((p) => p.pid!), cpu, stop: stopAll, log };
}

// ---------------------------------------------------------------- the address server (proxy mode)

export interface AddressServerOptions {
  iface: string;
  work: string;
  pool: { start: string; end: string; mask: string };
  /** Pinned here when given (the bench puts it with the clients: it stands for the home router). */
  cpu?: number;
}

/**
 * A plain DHCP server that only gives addresses (dnsmasq without any PXE or boot option), as the
 * home router beside a proxy DHCP: the same for both servers of a proxy-mode storm. no-ping: its
 * ICMP check before each offer would add the same seconds to both sides' DHCP and measure neither.
 */
export function addressServerConf(o: AddressServerOptions): string {
  return [
    'port=0',
    `interface=${o.iface}`,
    'bind-interfaces',
    `dhcp-range=${o.pool.start},${o.pool.end},${o.pool.mask},12h`,
    'no-ping',
    `dhcp-leasefile=${path.join(o.work, 'address-dnsmasq.leases')}`,
    `pid-file=${path.join(o.work, 'address-dnsmasq.pid')}`,
    `log-facility=${path.join(o.work, 'address-dnsmasq.log')}`,
    '',
  ].join('\n');
}

export async function startAddressServer(ns: Netns, o: AddressServerOptions): Promise<{ stop(): Promise<void>; logFile: string }> {
  fs.rmSync(path.join(o.work, 'address-dnsmasq.leases'), { force: true });
  const conf = path.join(o.work, 'address-dnsmasq.conf');
  fs.writeFileSync(conf, addressServerConf(o));
  const argv = ['--no-daemon', `--conf-file=${conf}`];
  const proc = o.cpu === undefined ? ns.spawn('/usr/sbin/dnsmasq', argv) : ns.spawn('/usr/bin/taskset', ['-c', String(o.cpu), '/usr/sbin/dnsmasq', ...argv]);
  const log = collect(proc);
  const stop = stopper(proc);
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await ns.run('/usr/bin/ss', ['-lnu4p']);
    if (/:67\b.*dnsmasq/.test(r.stdout)) break;
    if (Date.now() > deadline || proc.exitCode !== null) {
      await stop();
      throw new Error(`the address server (dnsmasq) did not start:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { stop, logFile: path.join(o.work, 'address-dnsmasq.log') };
}
