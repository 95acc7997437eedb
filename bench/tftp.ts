/**
 * `npm run bench:tftp`: our server against tftpd-hpa and dnsmasq, side by side in one run, each in
 * the same lab namespace on its own address (port 69) behind one veth with MTU 1500; clients run
 * in a second namespace. Every download is checked against the file's SHA-256.
 *
 *   node --import tsx bench/tftp.ts [--runs N] [--max-runs N] [--only ws1,ws16,conc,rss] [--profile] [--perf] [--rev GIT-REV] [-- extra tftp-child flags]
 *
 * --only runs just the named parts (for measuring one change); the full bench runs them all.
 *
 * Fair on a 2-CPU machine (issue 19): every server runs pinned to CPU 0 and every client (and this
 * process) to CPU 1, as on a LAN where clients are other machines. Each server sits in a cpuacct
 * cgroup of its own, joined before it starts, so its threads and forked children (tftpd-hpa forks
 * one per transfer) are all counted. The servers are interleaved run by run (ours, tftpd-hpa,
 * dnsmasq, the order rotating each round), and each figure is the median of the per-round ratios,
 * printed with its spread (CI95 of the median, IQR, rounds; bench/lib/pairs.ts). Rounds of a part go
 * on until every figure's ratio in it is settled (CI95 within ±2.5 % of the median, so two runs of
 * the bench agree within about 5 %): at least --runs (default 7) and at most --max-runs (default
 * 14, which bounds the bench at about twice its fixed-7-round length); a figure still unsettled at
 * the limit is printed "not settled". The windowsize-16 rounds pair ours (atftp, windowsize 16)
 * with dnsmasq's windowsize-1 curl download, the figure's reference, in the same rounds.
 *
 * Our server runs as production does: compiled by tsc to CommonJS (not through tsx, whose
 * transform adds helpers to hot code), with test/net/tftp-child.ts as its driver. --rev compiles
 * nodes/ as committed at GIT-REV instead of the working tree.
 *
 * Figures (floors from issues 4 and 19):
 *   tftp_curl_ws1_vs_dnsmasq          curl, blksize 1468, windowsize 1, 64 MiB: throughput ours / dnsmasq ≥ 1.0
 *   tftp_atftp_ws16_vs_dnsmasq_ws1    atftp windowsize 16 ours / dnsmasq's windowsize-1 curl figure ≥ 1.6
 *   tftp_concurrent50_vs_tftpd_hpa    50 concurrent 1 MiB curl downloads: aggregate ours / tftpd-hpa ≥ 1.0
 *   tftp_cpu_ws1_vs_tftpd_hpa         server CPU-seconds per GiB, one windowsize-1 stream: ours / tftpd-hpa ≤ 1.0
 *   tftp_cpu_ws1_vs_dnsmasq           … ours / dnsmasq ≤ 1.5
 *   tftp_cpu_concurrent50_vs_tftpd_hpa  CPU-seconds per GiB, 50 concurrent: ours / tftpd-hpa ≤ 1.0
 *   tftp_cpu_concurrent50_vs_dnsmasq    … ours / dnsmasq ≤ 1.5
 *   tftp_rss_growth_50x16MiB          RSS growth of our server during 50 concurrent 16 MiB downloads ≤ 64 MiB
 *                                     (what a transfer holds is bounded by its window and one read-ahead
 *                                     chunk whatever the file size; 16 MiB is 256 chunks each, long past
 *                                     the steady state, and keeps the run short on a loaded machine)
 *
 * --profile runs our server under `node --cpu-prof` (profiles in a /tmp folder, one per thread)
 * and prints its hottest functions afterwards. --perf records our server and dnsmasq with
 * `perf record -g` during one more windowsize-1 download each (not among the measured runs: perf
 * slows its target) and prints CPU per block, the user/kernel split and the top symbols (JS frames
 * named through node --perf-basic-prof-only-functions); the perf.data files are kept in a /tmp folder.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, labAvailable } from '../test/lab/netns';
import { waitForLine } from '../test/lab/process';
import { CpuGroup, launch, TASKSET } from '../test/net/nfs-lab';
import { fmt, median, ratioSummary, runPairs } from './lib/pairs';
import { PERF_BIN, perfSummary, recordWhile } from './lib/perf';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const argv = process.argv.slice(2);
const dashdash = argv.indexOf('--');
const own = dashdash >= 0 ? argv.slice(0, dashdash) : argv;
const childExtra = dashdash >= 0 ? argv.slice(dashdash + 1) : [];
const runsArg = own.indexOf('--runs');
/** Rounds a part runs: at least RUNS, more until its figures' medians settle, at most MAX_RUNS. */
const RUNS = runsArg >= 0 ? Math.max(1, Number(own[runsArg + 1])) : 7;
const maxRunsArg = own.indexOf('--max-runs');
const MAX_RUNS = Math.max(RUNS, maxRunsArg >= 0 ? Number(own[maxRunsArg + 1]) : 14);
const PROFILE = own.includes('--profile');
const PERF = own.includes('--perf');
const revArg = own.indexOf('--rev');
const REV = revArg >= 0 ? own[revArg + 1] : undefined;
const onlyArg = own.indexOf('--only');
const ONLY = onlyArg >= 0 ? new Set((own[onlyArg + 1] ?? '').split(',')) : undefined;
const part = (name: 'ws1' | 'ws16' | 'conc' | 'rss'): boolean => !ONLY || ONLY.has(name);
const CONCURRENT = 50;
const BIG_MIB = 64;
const RSS_MIB = 16;
/** No client outlives its run: curl gives up after this long (a starved run fails, never hangs). */
const CURL_MAX_S = 900;
const SERVER_CPU = '0';
const CLIENT_CPU = '1';
const repo = path.join(__dirname, '..');

const OURS = '10.77.0.1';
const HPA = '10.77.0.2';
const DNSMASQ = '10.77.0.3';
const CLIENT = '10.77.0.100';

type Who = 'ours' | 'tftpd-hpa' | 'dnsmasq';
const WHO: Who[] = ['ours', 'tftpd-hpa', 'dnsmasq'];
const HOST: Record<Who, string> = { ours: OURS, 'tftpd-hpa': HPA, dnsmasq: DNSMASQ };

interface Figure {
  name: string;
  value: number;
  unit: string;
  floor: number;
  /** true: value must be ≤ floor (a ceiling), else ≥. */
  ceiling?: boolean;
}

/** One timed run: wall seconds, server CPU seconds (its cgroup), bytes served. */
interface Measure {
  secs: number;
  cpu: number;
  bytes: number;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const rate = (m: Measure): number => m.bytes / MiB / m.secs;
const cpuPerGiB = (m: Measure): number => m.cpu / (m.bytes / GiB);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Compiles test/net/tftp-child.ts, the transfer worker and the nodes/ code they import with tsc
 * into `tmp`/build; with `rev`, nodes/ comes from that git revision. Returns the compiled child.
 */
function buildOurs(tmp: string, rev?: string): string {
  let src = repo;
  if (rev) {
    src = path.join(tmp, 'rev');
    fs.mkdirSync(path.join(src, 'test', 'net'), { recursive: true });
    execFileSync('/bin/sh', ['-c', `git -C "${repo}" archive "${rev}" nodes | tar -x -C "${src}"`]);
    fs.copyFileSync(path.join(repo, 'test', 'net', 'tftp-child.ts'), path.join(src, 'test', 'net', 'tftp-child.ts'));
  }
  const out = path.join(tmp, 'build');
  const tsc = path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
  const flags = ['--target', 'ES2022', '--module', 'commonjs', '--moduleResolution', 'node', '--esModuleInterop', '--skipLibCheck', '--resolveJsonModule', '--strict', '--types', 'node', '--typeRoots', path.join(repo, 'node_modules', '@types')];
  // The worker is loaded by file name, not imported: it is an entry of its own.
  const entries = [path.join(src, 'test', 'net', 'tftp-child.ts'), path.join(src, 'nodes', 'lib', 'tftp', 'worker.ts')];
  try {
    execFileSync(process.execPath, [tsc, '--outDir', out, '--rootDir', src, ...flags, ...entries], { stdio: 'pipe' });
  } catch (err) {
    const msg = String((err as { stdout?: Buffer }).stdout ?? '').split('\n').slice(0, 3).join(' | ');
    console.log(`warning: tsc reported errors (the JavaScript was emitted anyway): ${msg}`);
  }
  // The native addon is found relative to the compiled code (build/Release beside nodes/).
  fs.symlinkSync(path.join(repo, 'build'), path.join(out, 'build'));
  const child = path.join(out, 'test', 'net', 'tftp-child.js');
  if (!fs.existsSync(child)) throw new Error('tsc produced no tftp-child.js');
  return child;
}

/** Top functions by self time over every .cpuprofile in `dir` (one per thread). */
function summariseProfiles(dir: string, top = 25): string[] {
  const self = new Map<string, number>();
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
  for (const f of files) {
    const prof = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as {
      nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
      samples: number[];
      timeDeltas: number[];
    };
    const byId = new Map(prof.nodes.map((n) => [n.id, n]));
    for (let i = 0; i < prof.samples.length; i++) {
      const cf = byId.get(prof.samples[i]!)!.callFrame;
      const where = cf.url ? `${cf.url.replace(/^file:\/\//, '').replace(/^.*?\/build\//, '')}:${cf.lineNumber + 1}` : '';
      const key = `${cf.functionName || '(anonymous)'} ${where}`.trim();
      self.set(key, (self.get(key) ?? 0) + (prof.timeDeltas[i] ?? 0));
    }
  }
  const busy = [...self].filter(([k]) => k !== '(idle)').reduce((a, [, v]) => a + v, 0);
  const lines = [`CPU profile of our server (${files.length} threads, in ${dir}): ${fmt(busy / 1e6, 1)} s busy; self time as % of busy:`];
  for (const [k, v] of [...self].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${fmt((100 * v) / busy, 1).padStart(5)} %  ${fmt(v / 1e3, 0).padStart(7)} ms  ${k}`);
  }
  return lines;
}

async function main(): Promise<void> {
  const why = labAvailable();
  if (why) throw new Error(`the bench needs the network lab: ${why}`);
  for (const bin of ['/usr/sbin/in.tftpd', '/usr/sbin/dnsmasq', '/usr/bin/curl', '/usr/bin/atftp', TASKSET]) if (!fs.existsSync(bin)) throw new Error(`missing ${bin} (run .ci/install-deps.sh)`);
  if (!CpuGroup.available()) throw new Error(`cgroup v1 cpuacct is not mounted at ${CpuGroup.ROOT}`);
  if (os.cpus().length < 2) throw new Error('the bench pins servers and clients to different CPUs: it needs 2');
  if (PERF && !fs.existsSync(PERF_BIN)) throw new Error('--perf needs perf (Debian linux-perf)');
  CpuGroup.sweep();
  // This process (bookkeeping, hashing) stays off the servers' CPU.
  execFileSync(TASKSET, ['-a', '-p', '-c', CLIENT_CPU, String(process.pid)], { stdio: 'ignore' });

  const lab = Lab.create();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-tftp-bench-'));
  const root = path.join(tmp, 'root');
  fs.mkdirSync(root);
  const profDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-tftp-prof-'));
  const outDir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'pxe-tftp-out-'));
  const figures: Figure[] = [];
  const groups: CpuGroup[] = [];
  const servers: ChildProcess[] = [];
  try {
    // tftpd-hpa and dnsmasq drop privileges to nobody: the tree must be world-readable.
    fs.chmodSync(tmp, 0o755);
    fs.chmodSync(root, 0o755);
    const big = randomBytes(BIG_MIB * MiB);
    const small = randomBytes(1 * MiB);
    fs.writeFileSync(path.join(root, 'big.bin'), big, { mode: 0o644 });
    fs.writeFileSync(path.join(root, 'small.bin'), small, { mode: 0o644 });
    const bigSha = sha(big);
    const smallSha = sha(small);
    const childJs = buildOurs(tmp, REV);

    const srv = lab.netns('srv');
    const cli = lab.netns('cli');
    const { a } = lab.veth(srv, `${OURS}/24`, cli, `${CLIENT}/24`, { mtu: 1500 });
    srv.ip('addr', 'add', `${HPA}/24`, 'dev', a);
    srv.ip('addr', 'add', `${DNSMASQ}/24`, 'dev', a);

    const group = {} as Record<Who, CpuGroup>;
    for (const w of WHO) groups.push((group[w] = new CpuGroup(w.replace(/[^a-z]/g, ''))));
    const pin = (w: Who): { cpus: string; cgroup: string } => ({ cpus: SERVER_CPU, cgroup: group[w].dir });

    const nodeArgs = [...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []), ...(PERF ? ['--perf-basic-prof-only-functions'] : [])];
    const ours = launch(srv, [process.execPath, ...nodeArgs, childJs, '--root', root, '--address', OURS, '--port', '69', '--max-windowsize', '64', '--max-transfers', '200', '--max-per-client', '200', '--no-events', ...childExtra], pin('ours'), { cwd: repo });
    servers.push(ours);
    ours.stderr!.on('data', (d: Buffer) => process.stderr.write(`[ours] ${d}`));
    await waitForLine(ours, /"listening"/, 20000);
    const hpa = launch(srv, ['/usr/sbin/in.tftpd', '--foreground', '--listen', '--address', `${HPA}:69`, '--secure', root, '--user', 'nobody'], pin('tftpd-hpa'));
    servers.push(hpa);
    const pidFile = path.join(tmp, 'dnsmasq.pid');
    const dnsmasq = launch(srv, ['/usr/sbin/dnsmasq', '--no-daemon', '--conf-file=/dev/null', '--port=0', '--enable-tftp', `--tftp-root=${root}`, `--listen-address=${DNSMASQ}`, '--bind-interfaces', '--tftp-max=200', `--pid-file=${pidFile}`, '--user=nobody', '--log-facility=-'], pin('dnsmasq'));
    servers.push(dnsmasq);
    for (const c of [hpa, dnsmasq]) {
      c.stdout!.resume();
      c.stderr!.resume();
    }
    await sleep(1000);
    for (const [name, child] of [['tftpd-hpa', hpa], ['dnsmasq', dnsmasq]] as const) {
      if (child.exitCode !== null) throw new Error(`${name} exited at start (${child.exitCode})`);
    }

    const ask = async (cmd: string, re: RegExp): Promise<Record<string, unknown>> => {
      const wait = waitForLine(ours, re, 10000);
      ours.stdin!.write(cmd + '\n');
      return JSON.parse((await wait).input!) as Record<string, unknown>;
    };

    /** One download of big.bin; checks the result. */
    const stream = async (who: Who, client: 'curl' | 'atftp', windowsize: number): Promise<Measure> => {
      const out = path.join(outDir, `${client}-${who}`);
      fs.rmSync(out, { force: true });
      const server = HOST[who];
      const args =
        client === 'curl'
          ? ['/usr/bin/curl', '-s', '-S', '-m', String(CURL_MAX_S), '--tftp-blksize', '1468', '-o', out, `tftp://${server}/big.bin`]
          : ['/usr/bin/atftp', '--option', 'blksize 1468', '--option', `windowsize ${windowsize}`, '-g', '-r', 'big.bin', '-l', out, server, '69'];
      const cpu0 = group[who].seconds();
      const t0 = process.hrtime.bigint();
      const r = await cli.run(TASKSET, ['-c', CLIENT_CPU, ...args], { timeoutMs: (CURL_MAX_S + 60) * 1000 });
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpu = group[who].seconds() - cpu0;
      const got = fs.existsSync(out) ? sha(fs.readFileSync(out)) : 'missing';
      fs.rmSync(out, { force: true });
      if (r.code !== 0 || got !== bigSha) throw new Error(`${client} from ${who}: exit ${r.code}, ${got === bigSha ? 'intact' : 'CORRUPT'} ${r.stderr.trim()}`);
      return { secs, cpu, bytes: BIG_MIB * MiB };
    };

    /** N concurrent curl downloads started by one shell (on the client CPU), timed there. */
    const concurrent = async (who: Who, file: string, n: number, expect: string | null, size: number): Promise<Measure> => {
      const dir = fs.mkdtempSync(path.join(outDir, 'c-'));
      const target = (i: number): string => (expect ? path.join(dir, `o${i}`) : '/dev/null');
      const script = [
        'start=$(date +%s%N)',
        'pids=""',
        ...Array.from({ length: n }, (_, i) => `/usr/bin/curl -s -S -m ${CURL_MAX_S} --tftp-blksize 1468 -o ${target(i)} tftp://${HOST[who]}/${file} & pids="$pids $!"`),
        'fail=0; for p in $pids; do wait $p || fail=1; done',
        'end=$(date +%s%N)',
        'echo "ELAPSED $((end - start)) FAIL $fail"',
      ].join('\n');
      const cpu0 = group[who].seconds();
      const r = await cli.run(TASKSET, ['-c', CLIENT_CPU, '/bin/sh', '-c', script], { timeoutMs: (CURL_MAX_S + 60) * 1000 });
      const cpu = group[who].seconds() - cpu0;
      const m = /ELAPSED (\d+) FAIL (\d)/.exec(r.stdout);
      if (!m || m[2] !== '0') throw new Error(`concurrent downloads from ${who} failed: ${r.stdout} ${r.stderr}`);
      if (expect) {
        for (let i = 0; i < n; i++) {
          if (sha(fs.readFileSync(target(i))) !== expect) throw new Error(`concurrent download ${i} from ${who} is corrupt`);
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
      return { secs: Number(m[1]) / 1e9, cpu, bytes: n * size };
    };

    /** One ratio of a part: f(a) / f(b) within each round; with a figure, its median is one and is watched. */
    interface Ratio {
      label: string;
      a: Who;
      b: Who;
      f: (m: Measure) => number;
      figure?: Omit<Figure, 'value' | 'unit'>;
    }
    /**
     * Rounds of `measure` for every server in `who`, the order rotating each round, until every
     * figure's ratio has settled (RUNS to MAX_RUNS rounds); prints each server's medians and each
     * ratio's spread, and adds the figures.
     */
    const interleaved = async (label: string, who: Who[], measure: (w: Who) => Promise<Measure>, ratios: Ratio[], names: Partial<Record<Who, string>> = {}): Promise<void> => {
      const name = (w: Who): string => names[w] ?? w;
      const r = await runPairs({
        who,
        one: measure,
        ratios: Object.fromEntries(ratios.map((x) => [x.label, (m: Record<Who, Measure>) => x.f(m[x.a]) / x.f(m[x.b])])),
        watch: ratios.filter((x) => x.figure).map((x) => x.label),
        min: RUNS,
        max: MAX_RUNS,
        log: (l) => console.log(l),
        describe: (m, i) => `${label} round ${i + 1}: ${who.map((w) => `${name(w)} ${fmt(rate(m[w]), 1)} MiB/s ${fmt(cpuPerGiB(m[w]), 1)} CPU-s/GiB`).join(', ')}`,
      });
      for (const w of who) {
        const ms = r.runs[w];
        console.log(`${`${label}: ${name(w)}`.padEnd(52)} median ${fmt(median(ms.map(rate))).padStart(6)} MiB/s ${fmt(median(ms.map(cpuPerGiB)), 1).padStart(5)} CPU-s/GiB  runs ${ms.map((m) => `${fmt(rate(m), 1)}/${fmt(cpuPerGiB(m), 1)}`).join(' ')}`);
      }
      for (const x of ratios) {
        console.log(`  ${x.label.padEnd(50)} ${ratioSummary(r, x.label, 'rounds')}`);
        if (x.figure) figures.push({ ...x.figure, value: median(r.ratios[x.label]!), unit: 'x' });
      }
    };

    console.log(`servers on CPU ${SERVER_CPU}, clients on CPU ${CLIENT_CPU}; ${RUNS}–${MAX_RUNS} rounds a part, order rotating, until each figure's median is within ±2.5 %; load average ${os.loadavg().map((x) => fmt(x)).join(' ')} on ${os.cpus().length} CPUs`);
    console.log(`${BIG_MIB} MiB file, blksize 1468 (MiB/s and server CPU-s per GiB)`);
    if (part('ws1')) {
      await interleaved('curl windowsize 1', WHO, (w) => stream(w, 'curl', 1), [
        { label: 'ws1 throughput ours / dnsmasq', a: 'ours', b: 'dnsmasq', f: rate, figure: { name: 'tftp_curl_ws1_vs_dnsmasq', floor: 1.0 } },
        { label: 'ws1 throughput ours / tftpd-hpa', a: 'ours', b: 'tftpd-hpa', f: rate },
        { label: 'ws1 CPU per GiB ours / tftpd-hpa', a: 'ours', b: 'tftpd-hpa', f: cpuPerGiB, figure: { name: 'tftp_cpu_ws1_vs_tftpd_hpa', floor: 1.0, ceiling: true } },
        { label: 'ws1 CPU per GiB ours / dnsmasq', a: 'ours', b: 'dnsmasq', f: cpuPerGiB, figure: { name: 'tftp_cpu_ws1_vs_dnsmasq', floor: 1.5, ceiling: true } },
      ]);
    }

    if (PERF) {
      // One more download from each, recorded (not among the measured runs: perf slows its target).
      const perfDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-tftp-perf-'));
      const blocks = Math.floor((BIG_MIB * MiB) / 1468) + 1;
      for (const [who, pid] of [['ours', ours.pid!], ['dnsmasq', dnsmasq.pid!]] as const) {
        const data = path.join(perfDir, `perf-${who}.data`);
        await recordWhile(pid, data, 4999, () => stream(who, 'curl', 1));
        for (const l of perfSummary(data, who, `one curl windowsize-1 download (${blocks} blocks)`, (s) => (s * 1e6) / blocks, 'CPU-µs per block', 25)) console.log(l);
      }
      console.log(`perf data kept in ${perfDir}`);
    }

    if (part('ws16')) {
      // tftpd-hpa and dnsmasq grant windowsize 1 only: the reference is dnsmasq's curl windowsize-1
      // download, run in the same rounds as ours so that each round's ratio sees one load.
      await interleaved('atftp windowsize 16', ['ours', 'dnsmasq'], (w) => (w === 'ours' ? stream(w, 'atftp', 16) : stream(w, 'curl', 1)), [
        { label: 'ws16 ours / dnsmasq curl ws1', a: 'ours', b: 'dnsmasq', f: rate, figure: { name: 'tftp_atftp_ws16_vs_dnsmasq_ws1', floor: 1.6 } },
      ], { ours: 'ours (atftp ws16)', dnsmasq: 'dnsmasq (curl ws1)' });
    }

    if (part('conc')) {
      console.log(`${CONCURRENT} concurrent 1 MiB downloads (curl, blksize 1468), all checked`);
      await interleaved(`${CONCURRENT} concurrent`, WHO, (w) => concurrent(w, 'small.bin', CONCURRENT, smallSha, MiB), [
        { label: 'aggregate ours / tftpd-hpa', a: 'ours', b: 'tftpd-hpa', f: rate, figure: { name: 'tftp_concurrent50_vs_tftpd_hpa', floor: 1.0 } },
        { label: 'aggregate ours / dnsmasq', a: 'ours', b: 'dnsmasq', f: rate },
        { label: 'CPU per GiB ours / tftpd-hpa', a: 'ours', b: 'tftpd-hpa', f: cpuPerGiB, figure: { name: 'tftp_cpu_concurrent50_vs_tftpd_hpa', floor: 1.0, ceiling: true } },
        { label: 'CPU per GiB ours / dnsmasq', a: 'ours', b: 'dnsmasq', f: cpuPerGiB, figure: { name: 'tftp_cpu_concurrent50_vs_dnsmasq', floor: 1.5, ceiling: true } },
      ]);
    }

    // Memory: 50 concurrent downloads of a larger file from our server; peak RSS sampled in the server.
    if (part('rss')) {
      fs.writeFileSync(path.join(root, 'rss.bin'), big.subarray(0, RSS_MIB * MiB), { mode: 0o644 });
      await ask('reset', /"reset"/);
      const before = (await ask('stats', /"stats"/)).stats as { rss: number };
      const m = await concurrent('ours', 'rss.bin', CONCURRENT, null, RSS_MIB * MiB);
      const after = (await ask('stats', /"stats"/)).stats as { peakRss: number; fds: number; active: number };
      const growth = (after.peakRss - before.rss) / MiB;
      console.log(`${CONCURRENT} concurrent ${RSS_MIB} MiB downloads from ours: ${fmt(m.secs, 1)} s (${fmt(rate(m))} MiB/s, ${fmt(cpuPerGiB(m), 1)} CPU-s/GiB), RSS ${fmt(before.rss / MiB, 1)} → peak ${fmt(after.peakRss / MiB, 1)} MiB, fds after ${after.fds}, active ${after.active}`);
      figures.push({ name: `tftp_rss_growth_50x${RSS_MIB}MiB`, value: growth, unit: 'MiB', floor: 64, ceiling: true });
    }

    await ask('quit', /"closed"/);
    await new Promise<void>((r) => (ours.exitCode !== null ? r() : ours.once('exit', () => r())));
    if (PROFILE) for (const l of summariseProfiles(profDir)) console.log(l);
  } finally {
    for (const c of servers) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await lab.destroy();
    for (const g of groups) await g.remove();
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(outDir, { recursive: true, force: true });
    if (!PROFILE) fs.rmSync(profDir, { recursive: true, force: true });
  }

  let missed = false;
  for (const f of figures) {
    const ok = f.ceiling ? f.value <= f.floor : f.value >= f.floor;
    if (!ok) missed = true;
    console.log(`bench ${f.name} ${fmt(f.value)} ${f.unit} floor ${f.floor} ${ok ? 'ok' : 'MISSED'}`);
  }
  process.exit(missed ? 1 : 0);
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  process.exit(1);
});
