/**
 * TFTP bench: our server against tftpd-hpa and dnsmasq, side by side in one run, each in the
 * same lab namespace on its own address (port 69) behind one veth with MTU 1500; clients run in
 * a second namespace. Every download is checked against the file's SHA-256.
 *
 *   node --import tsx bench/tftp.ts [--runs N]
 *
 * Figures (floors from issue 4):
 *   curl, blksize 1468, windowsize 1, 64 MiB: ours / dnsmasq ≥ 1.0
 *   atftp, blksize 1468, windowsize 16, 64 MiB: ours / dnsmasq's windowsize-1 figure (the curl
 *     figure above) ≥ 1.6; atftp against dnsmasq (granted windowsize 1) is printed too
 *   50 concurrent 1 MiB downloads (curl, blksize 1468): aggregate ours / tftpd-hpa ≥ 1.0
 *   RSS growth of our server during 50 concurrent 64 MiB downloads ≤ 64 MiB
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, labAvailable } from '../test/lab/netns';
import { waitForLine } from '../test/lab/process';

const MiB = 1024 * 1024;
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg >= 0 ? Number(process.argv[runsArg + 1]) : 5;
const CONCURRENT = 50;

const OURS = '10.77.0.1';
const HPA = '10.77.0.2';
const DNSMASQ = '10.77.0.3';
const CLIENT = '10.77.0.100';

interface Figure {
  name: string;
  value: number;
  unit: string;
  floor: number;
  /** true: value must be ≤ floor (a ceiling), else ≥. */
  ceiling?: boolean;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (x: number, d = 2): string => x.toFixed(d);

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function main(): Promise<void> {
  const why = labAvailable();
  if (why) throw new Error(`the bench needs the network lab: ${why}`);
  const lab = Lab.create();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-tftp-bench-'));
  const outDir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'pxe-tftp-out-'));
  const figures: Figure[] = [];
  try {
    // tftpd-hpa and dnsmasq drop privileges to nobody: the tree must be world-readable.
    fs.chmodSync(root, 0o755);
    const big = randomBytes(64 * MiB);
    const small = randomBytes(1 * MiB);
    fs.writeFileSync(path.join(root, 'big.bin'), big, { mode: 0o644 });
    fs.writeFileSync(path.join(root, 'small.bin'), small, { mode: 0o644 });
    const bigSha = sha(big);
    const smallSha = sha(small);

    const srv = lab.netns('srv');
    const cli = lab.netns('cli');
    const { a } = lab.veth(srv, `${OURS}/24`, cli, `${CLIENT}/24`, { mtu: 1500 });
    srv.ip('addr', 'add', `${HPA}/24`, 'dev', a);
    srv.ip('addr', 'add', `${DNSMASQ}/24`, 'dev', a);

    const ours = srv.spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'test', 'net', 'tftp-child.ts'), '--root', root, '--address', OURS, '--port', '69', '--max-windowsize', '64', '--max-transfers', '200', '--max-per-client', '200', '--no-events'], { cwd: path.join(__dirname, '..') });
    await waitForLine(ours, /"listening"/, 20000);
    const hpa = srv.spawn('/usr/sbin/in.tftpd', ['--foreground', '--listen', '--address', `${HPA}:69`, '--secure', root, '--user', 'nobody']);
    const pidFile = path.join(os.tmpdir(), `pxe-bench-dnsmasq-${process.pid}.pid`);
    const dnsmasq = srv.spawn('/usr/sbin/dnsmasq', ['--no-daemon', '--conf-file=/dev/null', '--port=0', '--enable-tftp', `--tftp-root=${root}`, `--listen-address=${DNSMASQ}`, '--bind-interfaces', '--tftp-max=200', `--pid-file=${pidFile}`, '--user=nobody', '--log-facility=-']);
    await sleep(1000);
    for (const [name, child] of [['tftpd-hpa', hpa], ['dnsmasq', dnsmasq]] as const) {
      if (child.exitCode !== null) throw new Error(`${name} exited at start (${child.exitCode})`);
    }

    const ask = async (cmd: string, re: RegExp): Promise<Record<string, unknown>> => {
      const wait = waitForLine(ours, re, 10000);
      ours.stdin!.write(cmd + '\n');
      return JSON.parse((await wait).input!) as Record<string, unknown>;
    };

    /** One download; returns seconds, and checks the result. */
    const download = async (client: 'curl' | 'atftp', server: string, file: string, expect: string, windowsize: number): Promise<number> => {
      const out = path.join(outDir, `${client}-${server}-${file}`);
      fs.rmSync(out, { force: true });
      const args =
        client === 'curl'
          ? ['-s', '-S', '--tftp-blksize', '1468', '-o', out, `tftp://${server}/${file}`]
          : ['--option', 'blksize 1468', '--option', `windowsize ${windowsize}`, '-g', '-r', file, '-l', out, server, '69'];
      const t0 = process.hrtime.bigint();
      const r = await cli.run(client === 'curl' ? '/usr/bin/curl' : '/usr/bin/atftp', args, { timeoutMs: 300000 });
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const got = fs.existsSync(out) ? sha(fs.readFileSync(out)) : 'missing';
      fs.rmSync(out, { force: true });
      if (r.code !== 0 || got !== expect) throw new Error(`${client} from ${server}: exit ${r.code}, ${got === expect ? 'intact' : 'CORRUPT'} ${r.stderr.trim()}`);
      return secs;
    };

    const rate = async (label: string, client: 'curl' | 'atftp', server: string, windowsize: number): Promise<number> => {
      const mbps: number[] = [];
      for (let i = 0; i < RUNS; i++) mbps.push(64 / (await download(client, server, 'big.bin', bigSha, windowsize)));
      const m = median(mbps);
      console.log(`${label.padEnd(44)} median ${fmt(m)} MiB/s  runs ${mbps.map((x) => fmt(x, 1)).join(' ')}`);
      return m;
    };

    console.log(`64 MiB file, blksize 1468, ${RUNS} runs each; load average ${os.loadavg().map((x) => fmt(x)).join(' ')} on ${os.cpus().length} CPUs`);
    const curlOurs = await rate('curl windowsize 1: ours', 'curl', OURS, 1);
    const curlDnsmasq = await rate('curl windowsize 1: dnsmasq', 'curl', DNSMASQ, 1);
    const curlHpa = await rate('curl windowsize 1: tftpd-hpa', 'curl', HPA, 1);
    const atftpOurs = await rate('atftp windowsize 16: ours', 'atftp', OURS, 16);
    const atftpDnsmasq = await rate('atftp windowsize 16 (dnsmasq grants 1): dnsmasq', 'atftp', DNSMASQ, 16);
    const atftpHpa = await rate('atftp windowsize 16 (tftpd-hpa grants 1): tftpd-hpa', 'atftp', HPA, 16);
    console.log(
      `ratios: curl ours/dnsmasq ${fmt(curlOurs / curlDnsmasq)}, ours/tftpd-hpa ${fmt(curlOurs / curlHpa)}; ` +
        `atftp ws16 ours / dnsmasq curl ws1 ${fmt(atftpOurs / curlDnsmasq)}, / dnsmasq atftp ws1 ${fmt(atftpOurs / atftpDnsmasq)}, / tftpd-hpa atftp ws1 ${fmt(atftpOurs / atftpHpa)}`,
    );
    figures.push({ name: 'tftp_curl_ws1_vs_dnsmasq', value: curlOurs / curlDnsmasq, unit: 'x', floor: 1.0 });
    figures.push({ name: 'tftp_atftp_ws16_vs_dnsmasq_ws1', value: atftpOurs / curlDnsmasq, unit: 'x', floor: 1.6 });

    // N concurrent curl downloads started by one shell inside the client namespace, timed there.
    const concurrent = async (server: string, file: string, n: number, expect: string | null): Promise<number> => {
      const dir = fs.mkdtempSync(path.join(outDir, 'c-'));
      const target = (i: number): string => (expect ? path.join(dir, `o${i}`) : '/dev/null');
      const script = [
        'start=$(date +%s%N)',
        'pids=""',
        ...Array.from({ length: n }, (_, i) => `/usr/bin/curl -s -S --tftp-blksize 1468 -o ${target(i)} tftp://${server}/${file} & pids="$pids $!"`),
        'fail=0; for p in $pids; do wait $p || fail=1; done',
        'end=$(date +%s%N)',
        'echo "ELAPSED $((end - start)) FAIL $fail"',
      ].join('\n');
      const r = await cli.run('/bin/sh', ['-c', script], { timeoutMs: 600000 });
      const m = /ELAPSED (\d+) FAIL (\d)/.exec(r.stdout);
      if (!m || m[2] !== '0') throw new Error(`concurrent downloads from ${server} failed: ${r.stdout} ${r.stderr}`);
      if (expect) {
        for (let i = 0; i < n; i++) {
          if (sha(fs.readFileSync(target(i))) !== expect) throw new Error(`concurrent download ${i} from ${server} is corrupt`);
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
      return Number(m[1]) / 1e9;
    };

    const agg = async (label: string, server: string): Promise<number> => {
      const xs: number[] = [];
      for (let i = 0; i < RUNS; i++) xs.push(CONCURRENT / (await concurrent(server, 'small.bin', CONCURRENT, smallSha)));
      const m = median(xs);
      console.log(`${label.padEnd(44)} median ${fmt(m)} MiB/s  runs ${xs.map((x) => fmt(x, 1)).join(' ')}`);
      return m;
    };
    console.log(`${CONCURRENT} concurrent 1 MiB downloads (curl, blksize 1468), all checked`);
    const concOurs = await agg('aggregate: ours', OURS);
    const concHpa = await agg('aggregate: tftpd-hpa', HPA);
    const concDnsmasq = await agg('aggregate: dnsmasq', DNSMASQ);
    console.log(`ratios: ours/tftpd-hpa ${fmt(concOurs / concHpa)}, ours/dnsmasq ${fmt(concOurs / concDnsmasq)}`);
    figures.push({ name: 'tftp_concurrent50_vs_tftpd_hpa', value: concOurs / concHpa, unit: 'x', floor: 1.0 });

    // Memory: 50 concurrent 64 MiB downloads from our server; peak RSS sampled in the server.
    await ask('reset', /"reset"/);
    const before = (await ask('stats', /"stats"/)).stats as { rss: number };
    const secs = await concurrent(OURS, 'big.bin', CONCURRENT, null);
    const after = (await ask('stats', /"stats"/)).stats as { peakRss: number; fds: number; active: number };
    const growth = (after.peakRss - before.rss) / MiB;
    console.log(`${CONCURRENT} concurrent 64 MiB downloads from ours: ${fmt(secs, 1)} s (${fmt((64 * CONCURRENT) / secs)} MiB/s), RSS ${fmt(before.rss / MiB, 1)} → peak ${fmt(after.peakRss / MiB, 1)} MiB, fds after ${after.fds}, active ${after.active}`);
    figures.push({ name: 'tftp_rss_growth_50x64MiB', value: growth, unit: 'MiB', floor: 64, ceiling: true });

    await ask('quit', /"closed"/);
  } finally {
    await lab.destroy();
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(outDir, { recursive: true, force: true });
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
