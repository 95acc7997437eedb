/**
 * `npm run bench:nfs`: our NFSv3 server serving an ISO image in place against nfs-ganesha (VFS
 * FSAL, with rpcbind) serving the same files extracted from that ISO. Each server has a lab
 * namespace of its own with a veth (MTU 1500) to the client namespace, where libnfs's nfs-cp and
 * nfs-ls run. Servers are pinned to CPU 0 (with rpcbind, ganesha's portmapper), clients to CPU 1;
 * server CPU time comes from a cpuacct cgroup per server (cgroup v1). Ours and ganesha alternate
 * run by run (which goes first alternates too); figures are medians of per-run ratios.
 *
 *   node --import tsx bench/nfs.ts [--runs N] [--rev GIT-REV] [--profile] [--perf]
 *
 * Our server runs as production does: compiled by tsc to CommonJS (with test/net/nfs-child.ts as
 * its driver) into a temporary folder — not through tsx, whose transform adds helpers (__name …)
 * to hot code. --rev builds nodes/ as committed at GIT-REV (git archive) instead of the working
 * tree, to bench a stable state while others edit. The bench's own process is pinned to the
 * client CPU.
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
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, labAvailable } from '../test/lab/netns';
import { ARCHISO_FLAGS, extract, xorrisoImage } from '../test/helpers/iso-images';
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

const argIndex = process.argv.indexOf('--runs');
const RUNS = argIndex >= 0 ? Math.max(1, Number(process.argv[argIndex + 1])) : 3;
const PROFILE = process.argv.includes('--profile');
const PERF = process.argv.includes('--perf');
const revIndex = process.argv.indexOf('--rev');
const REV = revIndex >= 0 ? process.argv[revIndex + 1] : undefined;
const PERF_BIN = '/usr/bin/perf';

/**
 * Compiles test/net/nfs-child.ts and the nodes/ code it imports with tsc (the build's options) into
 * `tmp`/build; with `rev`, nodes/ comes from that git revision. Returns the compiled child.
 */
function buildOurs(tmp: string, rev?: string): string {
  let src = root;
  if (rev) {
    src = path.join(tmp, 'rev');
    fs.mkdirSync(path.join(src, 'test', 'net'), { recursive: true });
    execFileSync('/bin/sh', ['-c', `git -C "${root}" archive "${rev}" nodes | tar -x -C "${src}"`]);
    fs.copyFileSync(path.join(root, 'test', 'net', 'nfs-child.ts'), path.join(src, 'test', 'net', 'nfs-child.ts'));
  }
  const out = path.join(tmp, 'build');
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

type Who = 'ours' | 'ganesha';
const fmt = (x: number, d = 2): string => x.toFixed(d);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
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

/** User/kernel split and top symbols of one `perf record` of a server during one nfs-cp. */
function perfSummary(file: string, who: string, bytes: number, top = 18): string[] {
  if (!fs.existsSync(file)) return [`${who}: no perf data`];
  const report = (args: string[]): string => execFileSync(PERF_BIN, ['report', '-i', file, '--stdio', '--no-children', '-g', 'none', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 });
  const total = Number(/Event count \(approx\.\): (\d+)/.exec(report(['--sort', 'dso']))?.[1] ?? 0) / 1e9; // cpu-clock: ns
  const rows = (text: string): [number, string][] =>
    text
      .split('\n')
      .map((l) => /^\s*([\d.]+)%\s+(.*\S)\s*$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [Number(m[1]), m[2]!.replace(/\s+/g, ' ')]);
  const dsos = rows(report(['--sort', 'dso']));
  const kernel = dsos.filter(([, d]) => d.includes('kernel')).reduce((a, [p]) => a + p, 0);
  const lines = [`perf, ${who}, one nfs-cp of ${bytes / MiB} MiB: ${fmt(total / (bytes / GiB))} CPU-s/GiB sampled — kernel ${fmt((kernel / 100) * (total / (bytes / GiB)))}, user ${fmt(((100 - kernel) / 100) * (total / (bytes / GiB)))}; by binary: ${dsos.slice(0, 5).map(([p, d]) => `${d} ${fmt(p, 1)} %`).join(', ')}`];
  for (const [p, sym] of rows(report(['--sort', 'dso,sym'])).slice(0, top)) lines.push(`  ${fmt(p, 1).padStart(5)} %  ${sym.slice(0, 140)}`);
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
    const iso = xorrisoImage(src, path.join(tmp, 'bench.iso'), ARCHISO_FLAGS, 'PXE_NFS_BENCH');
    fs.rmSync(src, { recursive: true });
    const extracted = extract(iso, path.join(tmp, 'extracted'));
    execChmod(extracted);
    console.log(`content: ${BIG_MIB} MiB file + ${TREE_FILES} files in ${TREE_FILES / 50} dirs, ISO ${fmt(fs.statSync(iso).size / MiB, 0)} MiB; our server compiled from ${REV ? `revision ${REV}` : 'the working tree'}; ready in ${fmt((Date.now() - t0) / 1000, 1)} s`);

    const ourNs = lab.netns('ours');
    const refNs = lab.netns('ref');
    const cli = lab.netns('cli');
    lab.veth(ourNs, `${OURS}/24`, cli, '10.95.1.2/24', { mtu: 1500 });
    lab.veth(refNs, `${REF}/24`, cli, '10.95.2.2/24', { mtu: 1500 });

    const gOurs = new CpuGroup('ours');
    groups.push(gOurs);
    const gRef = new CpuGroup('ganesha');
    groups.push(gRef);

    const nodeArgs = [...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []), ...(PERF ? ['--perf-basic-prof-only-functions'] : [])];
    const ourArgv = [process.execPath, ...nodeArgs, childJs, iso, '--address', OURS, '--portmap', 'own', '--no-events'];
    ours = new OurChild(launch(ourNs, ourArgv, { cpus: SERVER_CPU, cgroup: gOurs.dir }, { cwd: root }));
    await ours.wait('listening', 0);
    rpcbind = await startRpcbind(refNs, { cpus: SERVER_CPU, cgroup: gRef.dir });
    ganesha = await startGanesha(refNs, { address: REF, root: extracted, workDir: tmp, cpus: SERVER_CPU, cgroup: gRef.dir });
    const host: Record<Who, string> = { ours: OURS, ganesha: REF };
    const group: Record<Who, CpuGroup> = { ours: gOurs, ganesha: gRef };

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

    // Correctness and warm caches first (both read from the page cache afterwards).
    for (const who of ['ours', 'ganesha'] as const) {
      await copies(who, 1, 'all');
      await listing(who, TREE_FILES, 0);
    }
    console.log(`servers up and checked (sha256 of the copy, ${TREE_FILES} files listed); runs: ${RUNS}; servers on CPU ${SERVER_CPU}, clients on CPU ${CLIENT_CPU}`);

    const order = (i: number): Who[] => (i % 2 ? ['ganesha', 'ours'] : ['ours', 'ganesha']);
    const perGiB = (m: Measure, bytes: number): number => m.cpu / (bytes / GiB);

    // 1. One nfs-cp of 256 MiB.
    const cp: Record<Who, Measure[]> = { ours: [], ganesha: [] };
    const cpRatio: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      for (const who of order(i)) cp[who].push(await copies(who, 1));
      const o = cp.ours[i]!;
      const g = cp.ganesha[i]!;
      cpRatio.push(g.secs / o.secs);
      console.log(`nfs-cp ${BIG_MIB} MiB run ${i + 1}: ours ${fmt(BIG_MIB / o.secs, 0)} MiB/s (${fmt(perGiB(o, BIG_MIB * MiB))} CPU-s/GiB), ganesha ${fmt(BIG_MIB / g.secs, 0)} MiB/s (${fmt(perGiB(g, BIG_MIB * MiB))} CPU-s/GiB), ratio ${fmt(g.secs / o.secs)}`);
    }

    // 2. nfs-ls -R of 2,000 files.
    const ls: Record<Who, (Measure & { n: number })[]> = { ours: [], ganesha: [] };
    const lsRatio: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      for (const who of order(i)) ls[who].push(await listing(who, TREE_FILES));
      const o = ls.ours[i]!;
      const g = ls.ganesha[i]!;
      lsRatio.push(g.secs / o.secs);
      console.log(`nfs-ls -R ${TREE_FILES} files run ${i + 1}: ours ${fmt(o.secs * 1000, 1)} ms per listing (${o.n} listings, ${fmt(o.cpu * 1000, 1)} CPU-ms each), ganesha ${fmt(g.secs * 1000, 1)} ms per listing (${g.n} listings, ${fmt(g.cpu * 1000, 1)} CPU-ms each), ratio ${fmt(g.secs / o.secs)}`);
    }

    // 3. 20 concurrent nfs-cp, with our server's RSS watched.
    const conc: Record<Who, Measure[]> = { ours: [], ganesha: [] };
    const concRatio: number[] = [];
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
    for (let i = 0; i < RUNS; i++) {
      for (const who of order(i)) {
        if (who === 'ours') await ours.ask('reset', 'reset');
        conc[who].push(await copies(who, CONCURRENT));
        if (who === 'ours') ourPeak = Math.max(ourPeak, (await ours.ask('stats', 'stats')).peakRss as number);
      }
      const o = conc.ours[i]!;
      const g = conc.ganesha[i]!;
      concRatio.push(g.secs / o.secs);
      const bytes = CONCURRENT * BIG_MIB * MiB;
      console.log(`${CONCURRENT} x nfs-cp run ${i + 1}: ours ${fmt((CONCURRENT * BIG_MIB) / o.secs, 0)} MiB/s (${fmt(perGiB(o, bytes))} CPU-s/GiB), ganesha ${fmt((CONCURRENT * BIG_MIB) / g.secs, 0)} MiB/s (${fmt(perGiB(g, bytes))} CPU-s/GiB), ratio ${fmt(g.secs / o.secs)}`);
    }
    clearInterval(refSampler);
    const st = await ours.ask('stats', 'stats');
    const growth = (ourPeak - rssBefore) / MiB;
    console.log(
      `RSS during ${CONCURRENT} readers: ours ${fmt(rssBefore / MiB, 1)} → peak ${fmt(ourPeak / MiB, 1)} MiB (server reply bytes peak ${fmt(((st.server as { replyBytesPeak: number }).replyBytesPeak ?? 0) / MiB, 1)} MiB), ganesha ${fmt(refBefore / MiB, 1)} → peak ${fmt(refPeak / MiB, 1)} MiB`,
    );

    const med = (ms: Measure[], f: (m: Measure) => number): number => median(ms.map(f));
    console.log('');
    console.log(`summary (medians)                    ours                       ganesha`);
    console.log(`nfs-cp ${BIG_MIB} MiB                   ${fmt(BIG_MIB / med(cp.ours, (m) => m.secs), 0).padStart(5)} MiB/s ${fmt(med(cp.ours, (m) => perGiB(m, BIG_MIB * MiB))).padStart(5)} CPU-s/GiB   ${fmt(BIG_MIB / med(cp.ganesha, (m) => m.secs), 0).padStart(5)} MiB/s ${fmt(med(cp.ganesha, (m) => perGiB(m, BIG_MIB * MiB))).padStart(5)} CPU-s/GiB`);
    console.log(`nfs-ls -R ${TREE_FILES} files, per listing ${fmt(med(ls.ours, (m) => m.secs) * 1000, 1).padStart(5)} ms ${fmt(med(ls.ours, (m) => m.cpu) * 1000, 1).padStart(5)} CPU-ms      ${fmt(med(ls.ganesha, (m) => m.secs) * 1000, 1).padStart(5)} ms ${fmt(med(ls.ganesha, (m) => m.cpu) * 1000, 1).padStart(5)} CPU-ms`);
    const cb = CONCURRENT * BIG_MIB * MiB;
    console.log(`${CONCURRENT} x nfs-cp ${BIG_MIB} MiB (aggregate)  ${fmt((CONCURRENT * BIG_MIB) / med(conc.ours, (m) => m.secs), 0).padStart(5)} MiB/s ${fmt(med(conc.ours, (m) => perGiB(m, cb))).padStart(5)} CPU-s/GiB   ${fmt((CONCURRENT * BIG_MIB) / med(conc.ganesha, (m) => m.secs), 0).padStart(5)} MiB/s ${fmt(med(conc.ganesha, (m) => perGiB(m, cb))).padStart(5)} CPU-s/GiB`);

    figure(`nfs_cp_${BIG_MIB}MiB_vs_ganesha`, median(cpRatio), 'x', 1.0);
    figure(`nfs_ls_R_${TREE_FILES}_vs_ganesha`, median(lsRatio), 'x', 1.0);
    figure(`nfs_cp_${CONCURRENT}x${BIG_MIB}MiB_vs_ganesha`, median(concRatio), 'x', 1.0);
    figure(`nfs_rss_growth_${CONCURRENT}x${BIG_MIB}MiB`, growth, 'MiB', 64, true);

    if (PERF) {
      // One more copy from each, recorded (not among the measured runs: perf slows its target).
      const pid: Record<Who, number> = { ours: ours.proc.pid!, ganesha: ganesha.pid };
      for (const who of ['ours', 'ganesha'] as const) {
        const data = path.join(tmp, `perf-${who}.data`);
        const rec = spawn(PERF_BIN, ['record', '-g', '-F', '1999', '-p', String(pid[who]), '-o', data], { stdio: 'ignore' });
        await sleep(500);
        await copies(who, 1, 'none');
        rec.kill('SIGINT');
        await new Promise((r) => rec.once('exit', r));
        for (const l of perfSummary(data, who, BIG_MIB * MiB)) console.log(l);
      }
    }
    await ours.ask('quit', 'quit');
    if (PROFILE) {
      await new Promise((r) => (ours!.proc.exitCode !== null ? r(null) : ours!.proc.once('exit', r)));
      const prof = fs.existsSync(profDir) ? fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')) : [];
      if (prof.length) for (const l of summariseProfile(path.join(profDir, prof[0]!))) console.log(l);
      else console.log('no CPU profile was written');
    }
  } finally {
    const proc = ours?.proc;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
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
