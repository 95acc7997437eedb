/**
 * The attacks of the hostile suite (issue 15), each in a lab of its own: the server in one
 * namespace pinned to CPU 0, the well-behaved client and the attackers in another pinned to CPU 1
 * (2 CPUs: a client must not be measured against the server it loads). Shared by
 * test/net/hostile-*.test.ts (small counts, assertions) and bench/hostile/*.ts (the issue's counts,
 * bench lines). Every run removes its namespaces, processes and files, also when it fails.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, type Netns } from '../lab/netns';
import { waitForLine } from '../lab/process';

export const ROOT = path.resolve(__dirname, '../..');
const TASKSET = '/usr/bin/taskset';
const CURL = '/usr/bin/curl';
const MiB = 1 << 20;

/** The server's CPU and the clients' (different ones, as bench/http.ts's single-stream figures assume). */
export const SERVER_CPU = '0';
export const CLIENT_CPU = os.availableParallelism() > 1 ? '1' : '0';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

export function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** Peak RSS of `pid` sampled every 25 ms until stopped. */
export function rssSampler(pid: number): { stop(): number } {
  let peak = rssBytes(pid);
  const t = setInterval(() => {
    try {
      peak = Math.max(peak, rssBytes(pid));
    } catch {
      // gone
    }
  }, 25);
  return {
    stop: () => {
      clearInterval(t);
      return peak;
    },
  };
}

/** Sends `cmd` on the child's stdin and resolves with the first JSON line matching `key`. */
export async function ask<T>(child: ChildProcess, cmd: string, key: string, timeoutMs = 20_000): Promise<T> {
  const wait = waitForLine(child, new RegExp(`^\\{"${key}"`), timeoutMs);
  child.stdin!.write(cmd + '\n');
  return (JSON.parse((await wait).input!) as Record<string, T>)[key]!;
}

function randomFile(file: string, bytes: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(MiB);
  for (let done = 0; done < bytes; done += MiB) fs.writeSync(fd, randomFillSync(chunk), 0, Math.min(MiB, bytes - done));
  fs.closeSync(fd);
}

/** Runs `fn` with a fresh lab and temp folder, always removed afterwards. */
export async function withLab<T>(prefix: string, fn: (lab: Lab, tmp: string) => Promise<T>): Promise<T> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `pxe-hostile-${prefix}-`));
  fs.chmodSync(tmp, 0o755);
  const lab = Lab.create();
  try {
    return await fn(lab, tmp);
  } finally {
    await lab.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** A server and a client namespace on one veth; `extra` more client addresses (.10, .11, …). */
function pair(lab: Lab, net: string, extra: number): { srv: Netns; cli: Netns; srvIp: string; cliIp: string; extraIps: string[] } {
  const srv = lab.netns('srv');
  const cli = lab.netns('cli');
  const srvIp = `${net}.1`;
  const cliIp = `${net}.2`;
  const { b } = lab.veth(srv, `${srvIp}/24`, cli, `${cliIp}/24`);
  const extraIps = Array.from({ length: extra }, (_, i) => `${net}.${10 + i}`);
  for (const ip of extraIps) cli.ip('addr', 'add', `${ip}/24`, 'dev', b);
  return { srv, cli, srvIp, cliIp, extraIps };
}

/** curl's download speed in bytes/s, 0 if it failed or timed out (`--max-time`). */
async function curlSpeed(cli: Netns, url: string, size: number, maxTimeS: number): Promise<number> {
  const r = await cli.run(TASKSET, ['-c', CLIENT_CPU, CURL, '-s', '--max-time', String(maxTimeS), '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{speed_download}', url], {
    timeoutMs: (maxTimeS + 10) * 1000,
  });
  const [code, got, speed] = r.stdout.trim().split(' ');
  return code === '200' && Number(got) === size ? Number(speed) : 0;
}

export interface HttpAttackOptions {
  /** Clients that send a range request and read nothing more. */
  stalled: number;
  /** Spread over this many client addresses (within the per-address limits, so all are admitted). */
  addresses: number;
  /** Size of the file the normal client downloads, MiB. */
  fileMiB: number;
  /** Third octets of the lab's 10.x.0.0/24. */
  net: string;
  /** Downloads timed per phase (the best counts). */
  rounds?: number;
  /** A download that takes longer is a failure (0 speed). */
  maxTimeS?: number;
}

export interface HttpAttackResult {
  idleSpeed: number;
  attackSpeed: number;
  /** Server RSS growth from before the attack to its peak during it, MiB. */
  rssGrowthMiB: number;
  /** What the attackers got: how many had response headers, and with which statuses. */
  stalled: { opened: number; answered: number; statuses: Record<string, number>; closed: number };
  /** Downloads the server counted during the attack, and once the attackers had gone. */
  activeDuring: number;
  activeAfter: number;
  fdsBefore: number;
  fdsAfter: number;
}

/**
 * Item 1: a normal client's download, idle and while `stalled` clients hold range requests they
 * never read, against test/net/http-child.ts over a folder store.
 */
export function httpStalledAttack(o: HttpAttackOptions): Promise<HttpAttackResult> {
  return withLab('http', async (lab, tmp) => {
    const size = o.fileMiB * MiB;
    const root = path.join(tmp, 'www');
    randomFile(path.join(root, 'arch/x86_64/airootfs.sfs'), size);
    const { srv, cli, srvIp, extraIps } = pair(lab, `10.${o.net}.0`, o.addresses);
    const port = 8080;
    const server = srv.spawn(TASKSET, ['-c', SERVER_CPU, process.execPath, '--import', 'tsx', 'test/net/http-child.ts', root, srvIp, String(port), '--quiet'], { cwd: ROOT });
    await waitForLine(server, /"listening"/, 30_000);
    const pid = server.pid!;
    const url = `http://${srvIp}:${port}/arch/x86_64/airootfs.sfs`;
    const maxTimeS = o.maxTimeS ?? 30;
    const rounds = o.rounds ?? 2;
    await curlSpeed(cli, url, size, maxTimeS); // warm-up: page cache, pool, JIT
    let idleSpeed = 0;
    for (let i = 0; i < rounds; i++) idleSpeed = Math.max(idleSpeed, await curlSpeed(cli, url, size, maxTimeS));
    await sleep(200);
    const rssBefore = rssBytes(pid);
    const fdsBefore = fdCount(pid);
    const sampler = rssSampler(pid);
    const attackers = cli.spawn(
      TASKSET,
      ['-c', CLIENT_CPU, process.execPath, '--import', 'tsx', 'test/net/hostile-http-clients.ts', '--host', srvIp, '--port', String(port), '--path', '/arch/x86_64/airootfs.sfs',
        '--count', String(o.stalled), '--from', extraIps.join(','), '--range', 'bytes=1048576-', '--wait', '15000'],
      { cwd: ROOT },
    );
    let stalled: HttpAttackResult['stalled'];
    let attackSpeed = 0;
    let activeDuring = 0;
    try {
      const line = await waitForLine(attackers, /^\{"stalled"/, 60_000);
      stalled = (JSON.parse(line.input!) as { stalled: HttpAttackResult['stalled'] }).stalled;
      await sleep(500);
      for (let i = 0; i < rounds; i++) {
        const speed = await curlSpeed(cli, url, size, maxTimeS);
        attackSpeed = Math.max(attackSpeed, speed);
        if (speed === 0) break; // starved: no need to wait out the other rounds
      }
      activeDuring = (await ask<{ active: number }>(server, 'stats', 'stats')).active;
    } finally {
      attackers.stdin!.write('close\n');
      await new Promise<void>((r) => (attackers.exitCode !== null ? r() : attackers.once('exit', () => r())));
    }
    const peak = sampler.stop();
    // Released: every transfer ends and every descriptor is closed once the attackers are gone.
    let activeAfter = -1;
    for (let i = 0; i < 100; i++) {
      activeAfter = (await ask<{ active: number }>(server, 'stats', 'stats')).active;
      if (activeAfter === 0 && fdCount(pid) <= fdsBefore) break;
      await sleep(100);
    }
    const fdsAfter = fdCount(pid);
    // Idle again: other load on the machine only ever slows a download down, so the best of the
    // runs before and after the attack is the idle speed.
    for (let i = 0; i < rounds; i++) idleSpeed = Math.max(idleSpeed, await curlSpeed(cli, url, size, maxTimeS));
    return { idleSpeed, attackSpeed, rssGrowthMiB: (peak - rssBefore) / MiB, stalled, activeDuring, activeAfter, fdsBefore, fdsAfter };
  });
}

export interface TftpFifoOptions {
  /** Requests for the FIFO (and as many for a device node, when one can be made). */
  requests: number;
  /** Of them at once (the server's per-client limit is 8). */
  concurrency: number;
  net: string;
}

export interface TftpFifoResult {
  /** What the FIFO requests got: TFTP error codes, and how many got no answer within 1 s. */
  fifo: { answered: Record<string, number>; silent: number; ms: number };
  /** The same for a character device node in the folder (null: mknod not possible here). */
  device: { answered: Record<string, number>; silent: number; ms: number } | null;
  /** The normal file after them: ms from its request to its last byte, or -1 if it never came. */
  normalMs: number;
  normalOk: boolean;
  rssGrowthMiB: number;
  activeAfter: number;
  fdsBefore: number;
  fdsAfter: number;
}

/**
 * Item 4: `requests` read requests for a FIFO (then a character device) in a folder store, then
 * a normal file, against test/net/tftp-child.ts (workers as configured by default).
 */
export function tftpFifoAttack(o: TftpFifoOptions): Promise<TftpFifoResult> {
  return withLab('tftp', async (lab, tmp) => {
    const root = path.join(tmp, 'tftp');
    randomFile(path.join(root, 'boot/kernel'), 256 * 1024);
    execFileSync('mkfifo', [path.join(root, 'fifo')]);
    let device = true;
    try {
      execFileSync('mknod', [path.join(root, 'null-device'), 'c', '1', '3']); // what /dev/null is
    } catch {
      device = false;
    }
    const { srv, cli, srvIp } = pair(lab, `10.${o.net}.0`, 0);
    const server = srv.spawn(TASKSET, ['-c', SERVER_CPU, process.execPath, '--import', 'tsx', 'test/net/tftp-child.ts', '--root', root, '--address', srvIp, '--port', '69', '--no-events'], { cwd: ROOT });
    try {
      await waitForLine(server, /"listening"/, 30_000);
      const pid = server.pid!;
      const client = (args: string[]): Promise<Record<string, unknown>> =>
        cli
          .run(TASKSET, ['-c', CLIENT_CPU, process.execPath, '--import', 'tsx', 'test/net/hostile-tftp-client.ts', srvIp, ...args], { cwd: ROOT, timeoutMs: 120_000 })
          .then((r) => {
            const line = r.stdout.trim().split('\n').pop() ?? '';
            try {
              return JSON.parse(line) as Record<string, unknown>;
            } catch {
              throw new Error(`hostile-tftp-client ${args.join(' ')}: ${r.stdout}${r.stderr}`);
            }
          });
      // Warm-up: the store, the workers, the page cache.
      await client(['get', 'boot/kernel']);
      await sleep(200);
      const rssBefore = rssBytes(pid);
      const fdsBefore = fdCount(pid);
      const sampler = rssSampler(pid);
      const flood = async (name: string): Promise<TftpFifoResult['fifo']> => {
        const r = await client(['flood', name, String(o.requests), String(o.concurrency)]);
        return r.flood as TftpFifoResult['fifo'];
      };
      const fifo = await flood('fifo');
      const dev = device ? await flood('null-device') : null;
      const normal = (await client(['get', 'boot/kernel'])).get as { ms: number; bytes: number };
      const peak = sampler.stop();
      let activeAfter = -1;
      let fdsAfter = -1;
      // Released within 5 s (a stats answer itself may take a second while transfers close).
      for (const end = Date.now() + 5000; Date.now() < end; ) {
        const st = await ask<{ active: number; fds: number }>(server, 'stats', 'stats');
        activeAfter = st.active;
        fdsAfter = fdCount(pid);
        if (activeAfter === 0 && fdsAfter <= fdsBefore) break;
        await sleep(100);
      }
      return {
        fifo,
        device: dev,
        normalMs: normal.ms,
        normalOk: normal.bytes === 256 * 1024,
        rssGrowthMiB: (peak - rssBefore) / MiB,
        activeAfter,
        fdsBefore,
        fdsAfter,
      };
    } finally {
      // An open() still blocked on the FIFO (the fault this attack is about) holds the server's
      // process: a writer lets it return so the server can exit.
      try {
        fs.closeSync(fs.openSync(path.join(root, 'fifo'), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      } catch {
        // nobody blocked on it
      }
    }
  });
}

export interface MemoryStats {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  active: number;
}

export interface StoreProbe {
  status: number;
  body: string;
}

/**
 * Starts test/net/hostile-store-child.ts on `store` in a lab and hands `fn` a way to fetch
 * paths with curl (status and body) and the server's pid and stats.
 */
export function withStoreServer<T>(
  net: string,
  store: (tmp: string) => string,
  fn: (s: {
    fetch(p: string): Promise<StoreProbe>;
    cli: Netns;
    url: (p: string) => string;
    pid: number;
    stats(): Promise<MemoryStats>;
    /** The same after a full garbage collection: what the server retains. */
    retained(): Promise<MemoryStats>;
    fails: Array<{ status: number; path: string; error: string }>;
    tmp: string;
  }) => Promise<T>,
): Promise<T> {
  return withLab('store', async (lab, tmp) => {
    const source = store(tmp);
    const { srv, cli, srvIp } = pair(lab, `10.${net}.0`, 0);
    const server = srv.spawn(TASKSET, ['-c', SERVER_CPU, process.execPath, '--expose-gc', '--import', 'tsx', 'test/net/hostile-store-child.ts', source, srvIp, '8080'], { cwd: ROOT });
    const fails: Array<{ status: number; path: string; error: string }> = [];
    let buf = '';
    server.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) if (l.startsWith('{"fail"')) fails.push((JSON.parse(l) as { fail: (typeof fails)[number] }).fail);
    });
    await waitForLine(server, /"listening"/, 30_000);
    const url = (p: string): string => `http://${srvIp}:8080${p}`;
    const fetch = async (p: string): Promise<StoreProbe> => {
      const r = await cli.run(CURL, ['-s', '--max-time', '20', '-w', '\n%{http_code}', url(p)], { timeoutMs: 30_000 });
      const i = r.stdout.lastIndexOf('\n');
      return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
    };
    return fn({ fetch, cli, url, pid: server.pid!, stats: () => ask(server, 'stats', 'stats'), retained: () => ask(server, 'gc', 'gc'), fails, tmp });
  });
}
