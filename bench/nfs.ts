/**
 * `npm run bench:nfs`: our NFSv3 server serving an ISO image in place against nfs-ganesha (VFS
 * FSAL, with rpcbind) serving the same files extracted from that ISO. Each server has a lab
 * namespace of its own with a veth (MTU 1500) to the client namespace, where libnfs's nfs-cp and
 * nfs-ls run. Servers are pinned to CPU 0 (with rpcbind, ganesha's portmapper), clients to CPU 1;
 * server CPU time comes from a cpuacct cgroup per server (cgroup v1). The machine is shared, so
 * loads vary: ours and ganesha run in pairs (A B, then B A, …), and each figure is the median of
 * the per-pair ratios, printed with its spread (interquartile range and a 95 % confidence interval
 * of the median from order statistics). Pairs go on until that interval is within ±2.5 % of the
 * median (two runs then agree within about 5 %), at least --pairs and at most --max-pairs of them
 * (default 7–21: the rounds of bench/lib/pairs.ts).
 * CPU-seconds per GiB (server CPU, from the cgroups) are printed beside every throughput: they
 * move much less with the machine's load than wall-clock figures do.
 *
 *   node --import tsx bench/nfs.ts [--pairs N] [--max-pairs N] [--rev GIT-REV] [--baseline GIT-REV] [--only cp|ls|conc] [--profile] [--perf]
 *
 * Our server runs as production does: compiled by tsc to CommonJS (with test/net/nfs-child.ts as
 * its driver) into a temporary folder — not through tsx, whose transform adds helpers (__name …)
 * to hot code. --rev builds nodes/ as committed at GIT-REV (git archive) instead of the working
 * tree, to bench a stable state while others edit. --baseline REV adds our server as committed
 * at REV as a third contestant, in the same rotation (A B C, B C A, …): before/after figures of a
 * change from one run, under one load. The bench's own process is pinned to the client CPU.
 *
 * Figures (the last lines, `bench <figure> <value> <unit> floor <floor> ok|MISSED`, exit 1 if one
 * is missed):
 *   nfs_cp_256MiB_vs_ganesha        nfs-cp of a 256 MiB file, throughput ours / ganesha ≥ 1.0
 *   nfs_ls_R_2000_vs_ganesha        nfs-ls -R of 2,000 files, speed (1 / time per listing; each run repeats
 *                                   listings for ≥ 1 s) ours / ganesha ≥ 1.0
 *   nfs_cp_20x256MiB_vs_ganesha     20 concurrent nfs-cp of that file, aggregate ours / ganesha ≥ 1.0
 *   nfs_rss_growth_20x256MiB        our server's peak RSS during those runs − RSS before ≤ 64 MiB
 *
 * --profile runs our server under `node --cpu-prof` and prints its hottest functions (self time)
 * afterwards. --perf records both servers with `perf record -g` during the single-copy runs and
 * prints user/kernel CPU per GiB and the top symbols of each (JS frames named through
 * --perf-basic-prof-only-functions): where to look when a figure is missed.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, labAvailable } from '../test/lab/netns';
import { ARCHISO_FLAGS, extract, xorrisoImage } from '../test/helpers/iso-images';
import { CI_TARGET, fmt, median, ratioSummary, runPairs, spread } from './lib/pairs';
import { PERF_BIN, perfSummary, recordWhile } from './lib/perf';
import { CpuGroup, GANESHA, launch, NFS_CP, NFS_LS, RPCBIND, rssOf, startGanesha, startRpcbind, TASKSET, type GaneshaHandle, type RpcbindHandle, waitRpcbindFree } from '../test/net/nfs-lab';

const MiB = 1 << 20;
const GiB = 1 << 30;
const BIG_MIB = 256;
const TREE_FILES = 2000;
const CONCURRENT = 20;
const OURS = '10.95.1.1';
const REF = '10.95.2.1';
const EXPORT = '/run/archiso/bootmnt';
const SERVER_CPU = '0';
const CLIENT_CPU = '1';
const root = path.dirname(__dirname);

const numArg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Math.max(1, Number(process.argv[i + 1])) : dflt;
};
/** Pairs per figure: at least MIN_PAIRS, more until the median's CI is within ±CI_TARGET, at most MAX_PAIRS. */
const MIN_PAIRS = numArg('--pairs', numArg('--runs', 7));
const MAX_PAIRS = Math.max(MIN_PAIRS, numArg('--max-pairs', 21));
const PROFILE = process.argv.includes('--profile');
const PERF = process.argv.includes('--perf');
const revIndex = process.argv.indexOf('--rev');
const REV = revIndex >= 0 ? process.argv[revIndex + 1] : undefined;
const baseIndex = process.argv.indexOf('--baseline');
const BASE_REV = baseIndex >= 0 ? process.argv[baseIndex + 1] : undefined;
const BASE = '10.95.3.1';
const onlyIndex = process.argv.indexOf('--only');
/** --only cp|ls|conc: that figure alone (profiling one workload). */
const ONLY = onlyIndex >= 0 ? process.argv[onlyIndex + 1] : undefined;

/**
 * Compiles test/net/nfs-child.ts and the nodes/ code it imports with tsc (the build's options) into
 * `tmp`/build; with `rev`, nodes/ comes from that git revision. Returns the compiled child.
 */
function buildOurs(tmp: string, rev?: string, name = ''): string {
  let src = root;
  if (rev) {
    src = path.join(tmp, `rev${name}`);
    fs.mkdirSync(path.join(src, 'test', 'net'), { recursive: true });
    execFileSync('/bin/sh', ['-c', `git -C "${root}" archive "${rev}" nodes | tar -x -C "${src}"`]);
    fs.copyFileSync(path.join(root, 'test', 'net', 'nfs-child.ts'), path.join(src, 'test', 'net', 'nfs-child.ts'));
  }
  const out = path.join(tmp, `build${name}`);
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const flags = ['--target', 'ES2022', '--module', 'commonjs', '--moduleResolution', 'node', '--esModuleInterop', '--skipLibCheck', '--resolveJsonModule', '--strict', '--types', 'node', '--typeRoots', path.join(root, 'node_modules', '@types')];
  try {
    execFileSync(process.execPath, [tsc, '--outDir', out, '--rootDir', src, ...flags, path.join(src, 'test', 'net', 'nfs-child.ts')], { stdio: 'pipe' });
  } catch (err) {
    // Type errors still emit JavaScript (someone's work in progress); say so and go on.
    const msg = String((err as { stdout?: Buffer }).stdout ?? '').split('\n').slice(0, 3).join(' | ');
    console.log(`warning: tsc reported errors (the JavaScript was emitted anyway): ${msg}`);
  }
  const child = path.join(out, 'test', 'net', 'nfs-child.js');
  if (!fs.existsSync(child)) throw new Error('tsc produced no nfs-child.js');
  return child;
}

type Who = 'ours' | 'ganesha' | 'base';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(8 * MiB);
  for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  fs.closeSync(fd);
  return h.digest('hex');
}

interface Measure {
  secs: number;
  cpu: number;
}

/** Our child's stdin/stdout protocol (test/net/nfs-child.ts). */
class OurChild {
  private lines: Record<string, unknown>[] = [];
  private buf = '';
  constructor(readonly proc: ChildProcess) {
    proc.stdout!.on('data', (d: Buffer) => {
      this.buf += d.toString();
      const parts = this.buf.split('\n');
      this.buf = parts.pop() ?? '';
      for (const p of parts) {
        try {
          this.lines.push(JSON.parse(p) as Record<string, unknown>);
        } catch {
          // not ours
        }
      }
    });
    proc.stderr!.on('data', (d: Buffer) => process.stderr.write(`[ours] ${d}`));
  }
  async wait(key: string, from: number, timeoutMs = 30000): Promise<Record<string, unknown>> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      for (let i = from; i < this.lines.length; i++) if (key in this.lines[i]!) return this.lines[i]![key] as Record<string, unknown>;
      if (this.proc.exitCode !== null) throw new Error(`our server exited (${this.proc.exitCode})`);
      if (Date.now() > end) throw new Error(`our server did not answer ${key}`);
      await sleep(20);
    }
  }
  async ask(cmd: string, key: string): Promise<Record<string, unknown>> {
    const from = this.lines.length;
    this.proc.stdin!.write(cmd + '\n');
    return this.wait(key, from);
  }
}

/** Top functions by self time in a V8 .cpuprofile. */
function summariseProfile(file: string, top = 25): string[] {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }[];
    samples: number[];
    timeDeltas: number[];
    startTime: number;
    endTime: number;
  };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  for (let i = 0; i < prof.samples.length; i++) {
    const n = byId.get(prof.samples[i]!)!;
    const cf = n.callFrame;
    const where = cf.url ? `${cf.url.replace(/^file:\/\//, '').replace(/^.*?\/build\//, '').replace(root + '/', '')}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + (prof.timeDeltas[i] ?? 0));
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const idle = self.get('(idle)') ?? 0;
  const busy = total - idle;
  const lines = [`CPU profile of our server: ${fmt(total / 1e6, 1)} s sampled, ${fmt(busy / 1e6, 1)} s busy; self time as % of busy:`];
  for (const [k, v] of [...self].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${fmt((100 * v) / busy, 1).padStart(5)} %  ${fmt(v / 1e3, 0).padStart(7)} ms  ${k}`);
  }
  // By file: how much of the busy time is our code, Node's internals, GC, native.
  const byFile = new Map<string, number>();
  for (const [k, v] of self) {
    if (k === '(idle)') continue;
    const m = / (\S+):\d+$/.exec(k);
    const f = m ? (m[1]!.startsWith('node:') ? 'node:internals' : m[1]!) : k.replace(/ .*$/, '');
    byFile.set(f, (byFile.get(f) ?? 0) + v);
  }
  lines.push('  by file:');
  for (const [f, v] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 12)) lines.push(`  ${fmt((100 * v) / busy, 1).padStart(5)} %  ${f}`);
  return lines;
}

async function main(): Promise<void> {
  const why = labAvailable();
  if (why) throw new Error(`the bench needs the network lab: ${why}`);
  for (const bin of [NFS_CP, NFS_LS, GANESHA, RPCBIND, TASKSET, '/usr/bin/xorriso']) if (!fs.existsSync(bin)) throw new Error(`missing ${bin} (run .ci/install-deps.sh)`);
  if (!CpuGroup.available()) throw new Error(`cgroup v1 cpuacct is not mounted at ${CpuGroup.ROOT}`);
  CpuGroup.sweep();
  if (os.cpus().length < 2) throw new Error('the bench pins servers and clients to different CPUs: it needs 2');
  const blocked = await waitRpcbindFree(Number(process.env.PXE_NFS_BENCH_WAIT_S ?? 120) * 1000);
  if (blocked) throw new Error(`ganesha needs an rpcbind of its own: ${blocked}`);
  if (PERF && !fs.existsSync(PERF_BIN)) throw new Error('--perf needs perf (Debian linux-perf)');
  const t0 = Date.now();
  // This process (sampling, bookkeeping) stays off the servers' CPU.
  execFileSync(TASKSET, ['-a', '-p', '-c', CLIENT_CPU, String(process.pid)], { stdio: 'ignore' });

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-nfs-bench-'));
  fs.chmodSync(tmp, 0o755);
  const outDir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'pxe-nfs-bench-out-'));
  const profDir = path.join(tmp, 'prof');
  const lab = Lab.create();
  const groups: CpuGroup[] = [];
  let rpcbind: RpcbindHandle | undefined;
  let ganesha: GaneshaHandle | undefined;
  let ours: OurChild | undefined;
  let base: OurChild | undefined;
  const results: string[] = [];
  let missed = false;
  const figure = (name: string, value: number, unit: string, floor: number, atMost = false): void => {
    const ok = atMost ? value <= floor : value >= floor;
    if (!ok) missed = true;
    results.push(`bench ${name} ${fmt(value)} ${unit} floor ${floor} ${ok ? 'ok' : 'MISSED'}`);
  };
  try {
    // The content: one 256 MiB random file and a tree of 2,000 small files, in an ISO image.
    const src = path.join(tmp, 'src');
    fs.mkdirSync(src);
    const fd = fs.openSync(path.join(src, 'big.bin'), 'w');
    const chunk = Buffer.allocUnsafe(16 * MiB);
    for (let i = 0; i < BIG_MIB / 16; i++) fs.writeSync(fd, randomFillSync(chunk));
    fs.closeSync(fd);
    const bigSha = sha256File(path.join(src, 'big.bin'));
    for (let i = 0; i < TREE_FILES; i++) {
      const dir = path.join(src, 'tree', `dir-${String(i % 40).padStart(2, '0')}`);
      if (i < 40) fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, `file-${String(i).padStart(4, '0')}.txt`), `${i}\n`);
    }
    const childJs = buildOurs(tmp, REV);
    const baseJs = BASE_REV ? buildOurs(tmp, BASE_REV, '-base') : undefined;
    const iso = xorrisoImage(src, path.join(tmp, 'bench.iso'), ARCHISO_FLAGS, 'PXE_NFS_BENCH');
    fs.rmSync(src, { recursive: true });
    const extracted = extract(iso, path.join(tmp, 'extracted'));
    execChmod(extracted);
    console.log(`content: ${BIG_MIB} MiB file + ${TREE_FILES} files in ${TREE_FILES / 50} dirs, ISO ${fmt(fs.statSync(iso).size / MiB, 0)} MiB; our server compiled from ${REV ? `revision ${REV}` : 'the working tree'}${BASE_REV ? `, baseline from revision ${BASE_REV}` : ''}; ready in ${fmt((Date.now() - t0) / 1000, 1)} s`);

    const ourNs = lab.netns('ours');
    const refNs = lab.netns('ref');
    const cli = lab.netns('cli');
    lab.veth(ourNs, `${OURS}/24`, cli, '10.95.1.2/24', { mtu: 1500 });
    lab.veth(refNs, `${REF}/24`, cli, '10.95.2.2/24', { mtu: 1500 });
    const baseNs = BASE_REV ? lab.netns('base') : undefined;
    if (baseNs) lab.veth(baseNs, `${BASE}/24`, cli, '10.95.3.2/24', { mtu: 1500 });

    const gOurs = new CpuGroup('ours');
    groups.push(gOurs);
    const gRef = new CpuGroup('ganesha');
    groups.push(gRef);
    const gBase = new CpuGroup('base');
    groups.push(gBase);

    const nodeArgs = [...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []), ...(PERF ? ['--perf-basic-prof-only-functions'] : [])];
    const ourArgv = [process.execPath, ...nodeArgs, childJs, iso, '--address', OURS, '--portmap', 'own', '--no-events'];
    ours = new OurChild(launch(ourNs, ourArgv, { cpus: SERVER_CPU, cgroup: gOurs.dir }, { cwd: root }));
    await ours.wait('listening', 0);
    if (baseNs) {
      base = new OurChild(launch(baseNs, [process.execPath, baseJs!, iso, '--address', BASE, '--portmap', 'own', '--no-events'], { cpus: SERVER_CPU, cgroup: gBase.dir }, { cwd: root }));
      await base.wait('listening', 0);
    }
    rpcbind = await startRpcbind(refNs, { cpus: SERVER_CPU, cgroup: gRef.dir });
    ganesha = await startGanesha(refNs, { address: REF, root: extracted, workDir: tmp, cpus: SERVER_CPU, cgroup: gRef.dir });
    const host: Record<Who, string> = { ours: OURS, ganesha: REF, base: BASE };
    const group: Record<Who, CpuGroup> = { ours: gOurs, ganesha: gRef, base: gBase };
    const who3: Who[] = BASE_REV ? ['ours', 'ganesha', 'base'] : ['ours', 'ganesha'];

    let outN = 0;
    /** `n` nfs-cp of big.bin at once (pinned to the client CPU), timed inside the client namespace. */
    const copies = async (who: Who, n: number, check: 'all' | 'one' | 'none' = 'one'): Promise<Measure> => {
      const outs = Array.from({ length: n }, () => path.join(outDir, `o${outN++}`));
      const script = [
        'start=$(date +%s%N); pids=""',
        ...outs.map((o) => `${NFS_CP} nfs://${host[who]}${EXPORT}/big.bin ${o} >/dev/null & pids="$pids $!"`),
        'fail=0; for p in $pids; do wait $p || fail=1; done',
        'end=$(date +%s%N); echo "ELAPSED $((end - start)) FAIL $fail"',
      ].join('\n');
      const cpu0 = group[who].seconds();
      const r = await cli.run(TASKSET, ['-c', CLIENT_CPU, '/bin/sh', '-c', script], { timeoutMs: 600000 });
      const cpu = group[who].seconds() - cpu0;
      const m = /ELAPSED (\d+) FAIL (\d)/.exec(r.stdout);
      try {
        if (!m || m[2] !== '0') throw new Error(`nfs-cp from ${who} failed: ${r.stdout} ${r.stderr}`);
        // Every copy has the right size; its bytes are checked for one copy a run (after the timing).
        const pick = Math.floor(Math.random() * outs.length);
        outs.forEach((o, i) => {
          if (fs.statSync(o).size !== BIG_MIB * MiB) throw new Error(`nfs-cp from ${who}: ${o} has ${fs.statSync(o).size} bytes`);
          if ((check === 'all' || (check === 'one' && i === pick)) && sha256File(o) !== bigSha) throw new Error(`nfs-cp from ${who}: copy ${i + 1} of ${n} differs from the file`);
        });
      } finally {
        for (const o of outs) fs.rmSync(o, { force: true });
      }
      return { secs: Number(m![1]) / 1e9, cpu };
    };
    /** Listings of one timed run: repeated back to back until at least LS_MIN_S, and at least LS_MIN_N. */
    const LS_MIN_S = 1;
    const LS_MIN_N = 5;
    /**
     * nfs-ls -R of the tree, repeated until the run lasts ≥ LS_MIN_S (one listing takes tens of ms,
     * too short to time alone); secs and cpu are per listing. Each listing is a whole nfs-ls process
     * (mount, walk, exit), the same for both servers.
     */
    const listing = async (who: Who, expectFiles: number, minSecs = LS_MIN_S): Promise<Measure & { n: number }> => {
      const script = [
        `n=0; start=$(date +%s%N)`,
        `while :; do ${NFS_LS} -R nfs://${host[who]}${EXPORT}/tree > /dev/null || exit 1; n=$((n + 1)); now=$(date +%s%N); [ $n -ge ${LS_MIN_N} ] && [ $((now - start)) -ge ${Math.round(minSecs * 1e9)} ] && break; done`,
        `${NFS_LS} -R nfs://${host[who]}${EXPORT}/tree | grep -c '^-'; echo "ELAPSED $((now - start)) N $n"`,
      ].join('\n');
      const cpu0 = group[who].seconds();
      const r = await cli.run(TASKSET, ['-c', CLIENT_CPU, '/bin/sh', '-c', script], { timeoutMs: 300000 });
      // The check listing after the timed ones is in the CPU time too: count it.
      const cpu = group[who].seconds() - cpu0;
      const m = /^(\d+)\nELAPSED (\d+) N (\d+)/m.exec(r.stdout);
      if (r.code !== 0 || !m) throw new Error(`nfs-ls -R from ${who} failed: ${r.stdout} ${r.stderr}`);
      if (Number(m[1]) !== expectFiles) throw new Error(`nfs-ls -R from ${who} listed ${m[1]} files, not ${expectFiles}`);
      const n = Number(m[3]);
      return { secs: Number(m[2]) / 1e9 / n, cpu: cpu / (n + 1), n };
    };

    // Correctness and warm caches first (all read from the page cache afterwards).
    for (const who of who3) {
      await copies(who, 1, 'all');
      await listing(who, TREE_FILES, 0);
    }
    console.log(`servers up and checked (sha256 of the copy, ${TREE_FILES} files listed); ${MIN_PAIRS}–${MAX_PAIRS} pairs a figure until its median is within ±${CI_TARGET * 100} %; servers on CPU ${SERVER_CPU}, clients on CPU ${CLIENT_CPU}`);

    const perGiB = (m: Measure, bytes: number): number => m.cpu / (bytes / GiB);
    type Runs = Record<Who, Measure[]>;
    interface Series {
      runs: Runs;
      /** ganesha time / our time per pair (> 1: ours faster), and the same for the baseline. */
      ratio: number[];
      baseRatio: number[];
      /** baseline time / our time, per pair: the change's own effect. */
      gain: number[];
    }
    /** Pairs (or triples) of `one` until the ratio's median is settled; `line` prints each. */
    const series = async (key: string, what: string, one: (who: Who) => Promise<Measure>, line: (m: Record<Who, Measure>) => string): Promise<Series> => {
      if (ONLY && ONLY !== key) return { runs: { ours: [], ganesha: [], base: [] }, ratio: [], baseRatio: [], gain: [] };
      const r = await runPairs({
        who: who3,
        one,
        ratios: {
          ratio: (m) => m.ganesha.secs / m.ours.secs,
          ...(BASE_REV ? { baseRatio: (m: Record<Who, Measure>) => m.ganesha.secs / m.base.secs, gain: (m: Record<Who, Measure>) => m.base.secs / m.ours.secs } : {}),
        },
        watch: BASE_REV ? ['ratio', 'baseRatio'] : ['ratio'],
        min: MIN_PAIRS,
        max: MAX_PAIRS,
        log: (l) => console.log(l),
        describe: (m, i, x) => `${what} pair ${i + 1}: ${line(m)}, ratio ${fmt(x.ratio!)}${BASE_REV ? `, baseline ratio ${fmt(x.baseRatio!)}` : ''}`,
      });
      const out: Series = { runs: { ...r.runs, base: r.runs.base ?? [] }, ratio: r.ratios.ratio!, baseRatio: r.ratios.baseRatio ?? [], gain: r.ratios.gain ?? [] };
      console.log(`${what}: ours / ganesha ${ratioSummary(r, 'ratio')}`);
      if (BASE_REV) console.log(`${what}: baseline ${BASE_REV} / ganesha ${ratioSummary(r, 'baseRatio')}; ours / baseline ${spread(out.gain)}`);
      return out;
    };
    const tput = (m: Measure, mib: number, bytes: number): string => `${fmt(mib / m.secs, 0)} MiB/s ${fmt(perGiB(m, bytes))} CPU-s/GiB`;
    const named = (m: Record<Who, Measure>, f: (x: Measure) => string): string => who3.map((w) => `${w} ${f(m[w])}`).join(', ');

    // 1. One nfs-cp of 256 MiB.
    const cp = await series('cp', `nfs-cp ${BIG_MIB} MiB`, (who) => copies(who, 1), (m) => named(m, (x) => tput(x, BIG_MIB, BIG_MIB * MiB)));

    // 2. nfs-ls -R of 2,000 files.
    const ls = await series('ls', `nfs-ls -R ${TREE_FILES} files`, (who) => listing(who, TREE_FILES), (m) =>
      named(m, (x) => `${fmt(x.secs * 1000, 1)} ms ${fmt(x.cpu * 1000, 1)} CPU-ms per listing (${(x as Measure & { n: number }).n})`),
    );

    // 3. 20 concurrent nfs-cp, with our server's RSS watched.
    const rssBefore = (await ours.ask('stats', 'stats')).rss as number;
    let ourPeak = rssBefore;
    let refPeak = 0;
    const refBefore = rssOf(ganesha.pid);
    const refSampler = setInterval(() => {
      try {
        refPeak = Math.max(refPeak, rssOf(ganesha!.pid));
      } catch {
        // gone
      }
    }, 50);
    const cb = CONCURRENT * BIG_MIB * MiB;
    const conc = await series(
      'conc',
      `${CONCURRENT} x nfs-cp`,
      async (who) => {
        if (who === 'ours') await ours!.ask('reset', 'reset');
        const m = await copies(who, CONCURRENT);
        if (who === 'ours') ourPeak = Math.max(ourPeak, (await ours!.ask('stats', 'stats')).peakRss as number);
        return m;
      },
      (m) => named(m, (x) => tput(x, CONCURRENT * BIG_MIB, cb)),
    );
    clearInterval(refSampler);
    const st = await ours.ask('stats', 'stats');
    const growth = (ourPeak - rssBefore) / MiB;
    console.log(
      `RSS during ${CONCURRENT} readers: ours ${fmt(rssBefore / MiB, 1)} → peak ${fmt(ourPeak / MiB, 1)} MiB (server reply bytes peak ${fmt(((st.server as { replyBytesPeak: number }).replyBytesPeak ?? 0) / MiB, 1)} MiB), ganesha ${fmt(refBefore / MiB, 1)} → peak ${fmt(refPeak / MiB, 1)} MiB`,
    );

    const med = (ms: Measure[], f: (m: Measure) => number): number => median(ms.map(f));
    const col = (r: Runs, w: Who, mib: number, bytes: number): string => `${fmt(mib / med(r[w], (m) => m.secs), 0).padStart(5)} MiB/s ${fmt(med(r[w], (m) => perGiB(m, bytes))).padStart(5)} CPU-s/GiB`;
    console.log('');
    console.log(`summary (medians)                    ${who3.map((w) => w.padEnd(29)).join('')}`);
    console.log(`nfs-cp ${BIG_MIB} MiB                     ${who3.map((w) => col(cp.runs, w, BIG_MIB, BIG_MIB * MiB) + '   ').join('')}`);
    console.log(`nfs-ls -R ${TREE_FILES} files, per listing   ${who3.map((w) => `${fmt(med(ls.runs[w], (m) => m.secs) * 1000, 1).padStart(5)} ms ${fmt(med(ls.runs[w], (m) => m.cpu) * 1000, 1).padStart(5)} CPU-ms            `).join('')}`);
    console.log(`${CONCURRENT} x nfs-cp ${BIG_MIB} MiB (aggregate)    ${who3.map((w) => col(conc.runs, w, CONCURRENT * BIG_MIB, cb) + '   ').join('')}`);
    console.log(`ratios ours / ganesha: nfs-cp ${spread(cp.ratio)}; nfs-ls ${spread(ls.ratio)}; ${CONCURRENT} x nfs-cp ${spread(conc.ratio)}`);
    if (BASE_REV) console.log(`ratios ours / baseline ${BASE_REV}: nfs-cp ${spread(cp.gain)}; nfs-ls ${spread(ls.gain)}; ${CONCURRENT} x nfs-cp ${spread(conc.gain)}`);

    if (cp.ratio.length) figure(`nfs_cp_${BIG_MIB}MiB_vs_ganesha`, median(cp.ratio), 'x', 1.0);
    if (ls.ratio.length) figure(`nfs_ls_R_${TREE_FILES}_vs_ganesha`, median(ls.ratio), 'x', 1.0);
    if (conc.ratio.length) figure(`nfs_cp_${CONCURRENT}x${BIG_MIB}MiB_vs_ganesha`, median(conc.ratio), 'x', 1.0);
    if (conc.ratio.length) figure(`nfs_rss_growth_${CONCURRENT}x${BIG_MIB}MiB`, growth, 'MiB', 64, true);

    if (PERF) {
      // One more copy from each, recorded (not among the measured runs: perf slows its target).
      const pid: Record<'ours' | 'ganesha', number> = { ours: ours.proc.pid!, ganesha: ganesha.pid };
      for (const who of ['ours', 'ganesha'] as const) {
        const data = path.join(tmp, `perf-${who}.data`);
        await recordWhile(pid[who], data, 1999, () => copies(who, 1, 'none'));
        for (const l of perfSummary(data, who, `one nfs-cp of ${BIG_MIB} MiB`, (s) => s / (BIG_MIB / 1024), 'CPU-s/GiB', 18)) console.log(l);
      }
    }
    await ours.ask('quit', 'quit');
    if (base) await base.ask('quit', 'quit');
    if (PROFILE) {
      await new Promise((r) => (ours!.proc.exitCode !== null ? r(null) : ours!.proc.once('exit', r)));
      const prof = fs.existsSync(profDir) ? fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')) : [];
      if (prof.length) for (const l of summariseProfile(path.join(profDir, prof[0]!))) console.log(l);
      else console.log('no CPU profile was written');
    }
  } finally {
    for (const proc of [ours?.proc, base?.proc]) {
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
    }
    await ganesha?.stop();
    await rpcbind?.stop();
    await lab.destroy();
    for (const g of groups) await g.remove();
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(outDir, { recursive: true, force: true });
  }
  console.log(`total ${fmt((Date.now() - t0) / 1000, 0)} s`);
  for (const r of results) console.log(r);
  process.exit(missed ? 1 : 0);
}

/** xorriso extracts read-only files and directories; ganesha and cleanup want them readable/removable. */
function execChmod(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      fs.chmodSync(p, 0o755);
      execChmod(p);
    } else fs.chmodSync(p, 0o644);
  }
  fs.chmodSync(dir, 0o755);
}

main().catch((err: Error) => {
  console.error(`bench nfs: ${err.stack ?? err.message}`);
  process.exit(1);
});
