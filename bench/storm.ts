/**
 * `npm run bench:storm`: a room of BIOS machines PXE-booting at once. N simulated clients
 * (bench/storm/client.ts) start within one second, each replaying what a real BIOS client did
 * in a full Arch boot of our own end-to-end lab (bench/storm/recorded-boot.json, recorded by
 * bench/storm/record.ts): DHCP DISCOVER/REQUEST, pxelinux's TFTP sequence with its not-found
 * probes (tsize queries and aborted transfers too when a recording has them: the committed one,
 * an iPXE NIC ROM with lpxelinux.0, has none), kernel and initramfs over TFTP with the options
 * recorded (blksize 1408, tsize), then archiso's HTTP requests for the root image (a 1-byte range
 * probe, an airootfs.erofs probe, the image).
 *
 * Two servers, one after the other in each pair of rounds (A B A B …, the order swapped every
 * pair), same files, same namespaces, each pinned to CPU 0 with the clients on CPU 1:
 *   ours:  the "Arch PXE" example in a real Node-RED 4.1 (the package installed from `npm pack`,
 *          boot events and the notification branch active, every debug node on), full DHCP;
 *   stack: the seed's stack, dnsmasq (DHCP + TFTP, the wiki's configuration) + nginx serving the
 *          ISO's extracted tree (the wiki's darkhttpd is not packaged in Debian 12).
 *
 *   node --import tsx bench/storm.ts [--clients N] [--pairs P] [--max-pairs Q] [--scale S] [--only ours|stack] [--dhcp full|proxy]
 *
 * --dhcp proxy replays the proxy-mode recording (bench/storm/recorded-boot-proxy.json): the
 * namespace gets a plain address-only DHCP server (dnsmasq, no PXE, its own namespace on the same
 * bridge, pinned with the clients: it stands for the home router, the same for both sides), ours
 * runs the example in proxy mode and the stack is dnsmasq's own proxy mode (proxy dhcp-range,
 * pxe-service, dhcp-boot) with its TFTP + nginx. Each client takes its address from the address
 * server and its boot file from the proxy's offer: the recorded BIOS client (QEMU's iPXE ROM) sent
 * no port-4011 REQUEST, the proxy offer already naming next-server and boot file.
 * Without dnsmasq's DHCP pings to spread them (the address server has no-ping) the 50 clients
 * reach TFTP together, and dnsmasq 2.90 starts a second transfer for every retransmitted request
 * (pxelinux resends after 110 ms) and holds an unacknowledged one about 30 s: with its default
 * tftp-max of 50 the table fills and its TFTP stalls in 30-s waves, and a stack round can lose
 * every client (reported as lost stack clients; its configuration is left as the wiki has it).
 *
 * --only runs one server's rounds (P of them) and prints its figures without the ratio: the
 * 200-client check of ours (no lost client, bounded memory, no false boot/stalled) needs no stack
 * rounds, which at 200 clients only wait out the clients' 10-minute timeout (dnsmasq's wiki
 * configuration serves at most 50 TFTP transfers).
 *
 * Figures: all-complete time stack/ours (median of pair ratios, floor 1.0 for N ≤ 50, none
 * above), p50/p95 per-client boot time, Node-RED event-loop delay p99 (≤ 100 ms), Node-RED peak
 * RSS (≤ 300 MiB), lost or corrupt transfers (0), boot/complete events (N per round) and
 * boot/stalled events (0). Last lines `bench <figure> <value> <unit> floor <floor> ok|MISSED`,
 * exit 1 on a miss.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, labAvailable, type Netns } from '../test/lab/netns';
import { readEvents } from '../test/e2e/arch-pxe-flow';
import { CpuGroup, peakRss, prepareRun, startAddressServer, startOurs, startStack, type Running } from './storm/servers';
import { describeSteps, recordingFile, type Recording } from './storm/script';
import { FULL_SIZES } from './storm/files';
import { median, ratioSummary, runPairs, type PairsResult } from './lib/pairs';
import type { ClientConfig, ClientResult } from './storm/client';

const MiB = 1024 * 1024;
const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const CLIENTS = arg('clients', 50);
// Pair ratios near 1.0 moved 0.92–1.49 with 2–3 pairs (dnsmasq's DHCP pings dominate its time):
// at least five pairs by default, more (up to --max-pairs, default 9: about 10 minutes) until the
// median of the pair ratios is settled (bench/lib/pairs.ts), the figure that median.
const PAIRS = arg('pairs', CLIENTS > 50 ? 1 : 5);
const MAX_PAIRS = Math.max(PAIRS, arg('max-pairs', CLIENTS > 50 ? PAIRS : 9));
const onlyArg = process.argv.indexOf('--only');
const ONLY = onlyArg >= 0 ? (process.argv[onlyArg + 1] as 'ours' | 'stack') : undefined;
if (ONLY !== undefined && ONLY !== 'ours' && ONLY !== 'stack') throw new Error('--only takes ours or stack');
const SCALE = arg('scale', 1 / 8);
const dhcpArg = process.argv.indexOf('--dhcp');
const DHCP = (dhcpArg >= 0 ? process.argv[dhcpArg + 1] : 'full') as 'full' | 'proxy';
if (DHCP !== 'full' && DHCP !== 'proxy') throw new Error('--dhcp takes full or proxy');
if (!(CLIENTS >= 1 && CLIENTS <= 250)) throw new Error('--clients must be 1..250 (one /24 of client addresses per round)');
if (!(PAIRS >= 1 && MAX_PAIRS <= 20)) throw new Error('--pairs must be 1..20, --max-pairs at most 20');
if (!(SCALE > 0 && SCALE <= 1)) throw new Error('--scale must be in (0, 1]');

/** Figure names: storm50_…, storm50_proxy_… */
const TAG = DHCP === 'full' ? `storm${CLIENTS}` : `storm${CLIENTS}_proxy`;
const SERVER = '10.91.0.1';
/** Proxy mode's address server (the home router). */
const ROUTER = '10.91.0.2';
const CLIENT_BASE = '10.91.255.254';
const SERVER_CPU = 0;
const CLIENT_CPU = 1;
const root = path.resolve(__dirname, '..');

interface Round {
  server: 'ours' | 'stack';
  round: number;
  allMs: number;
  results: ClientResult[];
  cpuSeconds: number;
  peakRssBytes: number;
  lag?: { p50: number; p99: number; max: number; count: number };
  complete?: number;
  stalled?: number;
  bytes: number;
}

const fmt = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : String(x));
const pct = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : NaN;
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function runClients(cli: Netns, cfgFile: string, cfg: ClientConfig): Promise<{ allMs: number; results: ClientResult[] }> {
  fs.writeFileSync(cfgFile, JSON.stringify(cfg));
  const r = await cli.run('/usr/bin/taskset', ['-c', String(CLIENT_CPU), process.execPath, '--import', 'tsx', path.join(__dirname, 'storm', 'client.ts'), cfgFile], { cwd: root, timeoutMs: cfg.clientTimeoutMs + 60_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let out: { allMs?: number; results?: ClientResult[]; fatal?: string };
  try {
    out = JSON.parse(line);
  } catch {
    throw new Error(`the client simulator printed no result (exit ${r.code} ${r.signal}): ${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
  }
  if (out.fatal || !out.results) throw new Error(`the client simulator failed: ${out.fatal}\n${r.stderr.slice(-2000)}`);
  return { allMs: out.allMs!, results: out.results };
}

function resetClientAddresses(cli: Netns, dev: string): void {
  cli.ip('addr', 'flush', 'dev', dev);
  cli.ip('addr', 'add', `${CLIENT_BASE}/16`, 'dev', dev);
  // The last address leaving took the device's routes with it. Limited broadcasts (DHCP
  // DISCOVER to 255.255.255.255) need a route out of the client namespace.
  cli.ip('route', 'replace', 'default', 'dev', dev);
}

async function main(): Promise<void> {
  const why = labAvailable();
  if (why) throw new Error(`the bench needs the network lab: ${why}`);
  if (!CpuGroup.available()) throw new Error('cgroup v1 cpuacct is not mounted at /sys/fs/cgroup/cpuacct');
  if (os.cpus().length < 2) throw new Error('the bench pins servers and clients to different CPUs: it needs 2');
  for (const bin of ['/usr/sbin/dnsmasq', '/usr/sbin/nginx', '/usr/bin/taskset', '/usr/bin/xorriso']) if (!fs.existsSync(bin)) throw new Error(`${bin} missing: run .ci/install-deps.sh`);
  const recording = JSON.parse(fs.readFileSync(recordingFile(DHCP), 'utf8')) as Recording;
  const proxySteps = recording.steps.filter((s) => s.proto === 'dhcp' && s.proxy).length;
  if ((DHCP === 'proxy') !== proxySteps > 0) throw new Error(`${recordingFile(DHCP)} is not a ${DHCP}-DHCP recording`);
  fs.mkdirSync(path.join(root, '.cache'), { recursive: true });
  const work = fs.mkdtempSync(path.join(root, '.cache', 'storm-'));
  const lab = Lab.create();
  const rounds: Round[] = [];
  let running: Running | undefined;
  try {
    console.log('preparing the files and installing the packed package…');
    const { files, userDir, bootFile } = prepareRun(work, recording, SCALE);

    const srv = lab.netns('srv');
    const cli = lab.netns('cli');
    // Full: one veth. Proxy: a bridge in the server namespace, the clients and the address
    // server each on a veth into it (their broadcasts reach both DHCP servers).
    let srvIf: string;
    let cliIf: string;
    let router: Netns | undefined;
    let routerIf = '';
    if (DHCP === 'full') ({ a: srvIf, b: cliIf } = lab.veth(srv, `${SERVER}/16`, cli, `${CLIENT_BASE}/16`, { mtu: 1500 }));
    else {
      srvIf = lab.bridge(srv, `${SERVER}/16`);
      cliIf = lab.attach(srv, srvIf, cli, `${CLIENT_BASE}/16`, { mtu: 1500 });
      router = lab.netns('router');
      routerIf = lab.attach(srv, srvIf, router, `${ROUTER}/16`, { mtu: 1500 });
    }

    const sizesText = Object.entries(files.sizes).map(([p, s]) => `${path.basename(p)} ${fmt(s / MiB)} MiB`).join(', ');
    console.log(`${CLIENTS} clients started within 1 s, ${ONLY ? `${PAIRS} round(s) of ${ONLY}` : `${PAIRS}–${MAX_PAIRS} pairs of rounds, until the median ratio is settled`}; files scaled ×${fmt(SCALE, 3)} from kernel ${FULL_SIZES.kernel / MiB} MiB, initramfs ${FULL_SIZES.initramfs / MiB} MiB, rootfs ${FULL_SIZES.rootfs / MiB} MiB: ${sizesText}`);
    console.log(`each client replays ${describeSteps(recording.steps)} (recorded ${recording.date} by ${recording.recordedWith}: ${recording.how})`);
    const dnsmasqVersion = execFileSync('/usr/sbin/dnsmasq', ['--version'], { encoding: 'utf8' }).split(/\s+/)[2];
    console.log(
      DHCP === 'full'
        ? `servers on CPU ${SERVER_CPU}, clients on CPU ${CLIENT_CPU}; full DHCP; stack = dnsmasq ${dnsmasqVersion} (DHCP + TFTP, the wiki's dnsmasq.conf) + nginx (the wiki's darkhttpd is not packaged in Debian 12)`
        : `servers on CPU ${SERVER_CPU}, clients and the address server on CPU ${CLIENT_CPU}; proxy DHCP beside an address-only dnsmasq ${dnsmasqVersion} (no PXE options, no-ping); ours = the example in proxy mode; stack = dnsmasq's proxy mode (proxy dhcp-range, pxe-service, dhcp-boot; it sends no 209/210 in proxy replies) + its TFTP + nginx (the wiki's darkhttpd is not packaged in Debian 12)`,
    );
    console.log(`load average ${os.loadavg().map((x) => fmt(x)).join(' ')} on ${os.cpus().length} CPUs`);

    let round = 0;
    const bytesPerClient = (rs: ClientResult[]): number => rs.reduce((s, r) => s + r.bytes, 0);
    const runRound = async (server: 'ours' | 'stack'): Promise<Round> => {
      round++;
      resetClientAddresses(cli, cliIf);
      const pool = { start: `10.91.${round}.1`, end: `10.91.${round}.254`, mask: '255.255.0.0' };
      // Proxy: each round's addresses from a fresh address server (no leases from the last one).
      const addressServer = router ? await startAddressServer(router, { iface: routerIf, work, pool, cpu: CLIENT_CPU }) : undefined;
      const eventsFile = path.join(work, `events-${round}.jsonl`);
      const lagFile = path.join(work, `lag-${round}.json`);
      running =
        server === 'ours'
          ? await startOurs(srv, { userDir, iso: files.iso, iface: srvIf, dhcp: DHCP, pool, eventsFile, lagFile, cpu: SERVER_CPU })
          : await startStack(srv, { tree: files.tree, work, iface: srvIf, address: SERVER, dhcp: DHCP, pool, bootFile: files.layout.dhcp.bootFile, option209: files.layout.dhcp.option209, option210: files.layout.dhcp.option210, cpu: SERVER_CPU });
      await sleep(1000);
      if (server === 'ours') {
        // The lag histogram starts with the storm (settings.js resets it within 250 ms).
        fs.writeFileSync(`${lagFile}.reset`, '');
        for (let i = 0; i < 20 && fs.existsSync(`${lagFile}.reset`); i++) await sleep(50);
      }
      const cpu0 = running.cpu.seconds();
      const cfg: ClientConfig = { iface: cliIf, server: SERVER, clients: CLIENTS, round, spreadMs: 1000, steps: recording.steps, expect: files.expect, bootFile, clientTimeoutMs: 600_000 };
      const { allMs, results } = await runClients(cli, path.join(work, `client-${round}.json`), cfg);
      const r: Round = { server, round, allMs, results, cpuSeconds: running.cpu.seconds() - cpu0, peakRssBytes: running.pids.reduce((sum, pid) => sum + peakRss(pid), 0), bytes: bytesPerClient(results) };
      if (server === 'ours') {
        // The last events follow the last byte: wait (bounded) for every client's boot/complete.
        const macs = new Set(results.map((x) => x.mac));
        const count = (stage: string): number => new Set(readEvents(eventsFile).filter((e) => e.stage === stage && e.mac && macs.has(e.mac)).map((e) => e.mac)).size;
        for (let i = 0; i < 50 && count('complete') < CLIENTS; i++) await sleep(100);
        r.complete = count('complete');
        r.stalled = count('stalled');
        await sleep(300);
        r.lag = JSON.parse(fs.readFileSync(lagFile, 'utf8'));
      }
      if (results.some((x) => !x.ok)) console.log(`  ${server} log tail:\n${running.log().split('\n').filter((l) => !/\[debug\]/.test(l)).slice(-15).join('\n')}`);
      await running.stop();
      running = undefined;
      await addressServer?.stop();
      const ok = results.filter((x) => x.ok).length;
      const ms = results.map((x) => x.ms);
      const gib = r.bytes / (1024 * MiB);
      console.log(
        `round ${round} ${server.padEnd(5)}: all ${CLIENTS} done in ${fmt(allMs / 1000)} s, ok ${ok}/${CLIENTS}, per client p50 ${fmt(pct(ms, 0.5) / 1000)} s p95 ${fmt(pct(ms, 0.95) / 1000)} s ` +
          `(p50 DHCP ${fmt(pct(results.map((x) => x.phases.dhcp), 0.5) / 1000)} s, TFTP ${fmt(pct(results.map((x) => x.phases.tftp), 0.5) / 1000)} s, HTTP ${fmt(pct(results.map((x) => x.phases.http), 0.5) / 1000)} s), ` +
          `${fmt(r.bytes / MiB / (allMs / 1000), 1)} MiB/s, server CPU ${fmt(r.cpuSeconds)} s (${fmt(r.cpuSeconds / gib, 1)} CPU-s/GiB), peak RSS ${fmt(r.peakRssBytes / MiB, 1)} MiB, TFTP client retransmits ${results.reduce((s, x) => s + x.tftpRetries, 0)}, DHCP NAKs ${results.reduce((s, x) => s + (x.dhcpNaks ?? 0), 0)}` +
          (r.lag ? `, event-loop delay p50 ${fmt(r.lag.p50, 1)} p99 ${fmt(r.lag.p99, 1)} max ${fmt(r.lag.max, 1)} ms, boot/complete ${r.complete}, boot/stalled ${r.stalled}` : ''),
      );
      for (const x of results.filter((y) => !y.ok).slice(0, 5)) console.log(`  client ${x.i} (${x.mac} ${x.ip}): ${x.errors.slice(0, 3).join('; ')}`);
      rounds.push(r);
      return r;
    };

    let paired: PairsResult<'ours' | 'stack', Round> | undefined;
    if (ONLY) {
      for (let p = 0; p < PAIRS; p++) await runRound(ONLY);
    } else {
      // Rotated pairs (ours stack, stack ours, …) until the ratio's median is settled.
      paired = await runPairs({
        who: ['ours', 'stack'] as const,
        one: (side) => runRound(side),
        ratios: { all: (m) => m.stack.allMs / m.ours.allMs },
        min: PAIRS,
        max: MAX_PAIRS,
        describe: (_m, i, r) => `pair ${i + 1}: stack/ours ${fmt(r.all!)}`,
        log: (line) => console.log(line),
      });
    }

    // ---------------------------------------------------------------- figures
    const ours = rounds.filter((r) => r.server === 'ours');
    const stack = rounds.filter((r) => r.server === 'stack');
    const times = (rs: Round[]): number[] => rs.flatMap((r) => r.results.map((x) => x.ms / 1000));
    const bad = (rs: Round[]): number => rs.reduce((s, r) => s + r.results.filter((x) => !x.ok).length, 0);
    const corrupt = (rs: Round[]): number => rs.reduce((s, r) => s + r.results.reduce((t, x) => t + x.corrupt, 0), 0);
    const cpuPerGib = (rs: Round[]): number => rs.reduce((s, r) => s + r.cpuSeconds, 0) / (rs.reduce((s, r) => s + r.bytes, 0) / (1024 * MiB));
    // With --only one side has no rounds: its parts are left out (not printed as NaN).
    const sides = (f: (rs: Round[], name: string) => string): string =>
      ([['ours', ours], ['stack', stack]] as [string, Round[]][]).filter(([, rs]) => rs.length).map(([name, rs]) => f(rs, name)).join(', ');
    console.log(`all-complete ${sides((rs, n) => `${n} ${rs.map((r) => fmt(r.allMs / 1000)).join(' ')} s`)}` + (paired ? `; stack/ours per pair ${paired.ratios.all!.map((x) => fmt(x)).join(' ')}: ${ratioSummary(paired, 'all')}` : ''));
    console.log(`per-client boot p50/p95: ${sides((rs, n) => `${n} ${fmt(pct(times(rs), 0.5))}/${fmt(pct(times(rs), 0.95))} s`)}`);
    // dnsmasq pings every address before offering it (the wiki leaves that on): the transfer phases alone, for the servers' TFTP and HTTP.
    const transfer = (rs: Round[]): number[] => rs.flatMap((r) => r.results.filter((x) => x.ok).map((x) => (x.phases.tftp + x.phases.http) / 1000));
    const dhcpP50 = (rs: Round[]): number => pct(rs.flatMap((r) => r.results.map((x) => x.phases.dhcp / 1000)), 0.5);
    console.log(`per-client DHCP p50: ${sides((rs, n) => `${n} ${fmt(dhcpP50(rs))} s`)}; TFTP + HTTP phases p50/p95: ${sides((rs, n) => `${n} ${fmt(pct(transfer(rs), 0.5))}/${fmt(pct(transfer(rs), 0.95))} s`)}`);
    console.log(`server CPU per GiB served: ${sides((rs, n) => `${n} ${fmt(cpuPerGib(rs), 1)} CPU-s/GiB`)}` + (stack.length ? `; stack lost or corrupt clients ${bad(stack)}, peak RSS (dnsmasq + nginx) ${fmt(Math.max(...stack.map((r) => r.peakRssBytes)) / MiB, 1)} MiB` : ''));
    console.log('event-loop delay: perf_hooks.monitorEventLoopDelay (10 ms resolution) started by settings.js inside the Node-RED process, reset at the storm start, read at its end');

    const timeFloor = CLIENTS <= 50 ? 1.0 : 0;
    // With --only, the other side's figures (and the ratio) are left out, not reported as missed.
    if (paired) figure(`${TAG}_all_complete_stack_over_ours`, median(paired.ratios.all!), 'x', timeFloor);
    if (ours.length) {
      figure(`${TAG}_client_boot_p50_ours`, pct(times(ours), 0.5), 's', 0, 'none');
      figure(`${TAG}_client_boot_p95_ours`, pct(times(ours), 0.95), 's', 0, 'none');
    }
    if (stack.length) {
      figure(`${TAG}_client_boot_p50_stack`, pct(times(stack), 0.5), 's', 0, 'none');
      figure(`${TAG}_client_boot_p95_stack`, pct(times(stack), 0.95), 's', 0, 'none');
    }
    if (paired) figure(`${TAG}_client_transfer_p95_stack_over_ours`, pct(transfer(stack), 0.95) / pct(transfer(ours), 0.95), 'x', 0, 'none');
    if (ours.length) {
      figure(`${TAG}_nodered_event_loop_delay_p99`, Math.max(...ours.map((r) => r.lag?.p99 ?? Infinity)), 'ms', 100, 'ceiling');
      figure(`${TAG}_nodered_peak_rss`, Math.max(...ours.map((r) => r.peakRssBytes)) / MiB, 'MiB', 300, 'ceiling');
      figure(`${TAG}_lost_or_corrupt_clients_ours`, bad(ours) + corrupt(ours), 'clients', 0, 'ceiling');
      figure(`${TAG}_boot_complete_events_min`, Math.min(...ours.map((r) => r.complete ?? 0)), 'events', CLIENTS);
      figure(`${TAG}_boot_stalled_events`, ours.reduce((s, r) => s + (r.stalled ?? 0), 0), 'events', 0, 'ceiling');
      figure(`${TAG}_server_cpu_per_gib_ours`, cpuPerGib(ours), 'CPU-s/GiB', 0, 'none');
    }
    if (stack.length) figure(`${TAG}_server_cpu_per_gib_stack`, cpuPerGib(stack), 'CPU-s/GiB', 0, 'none');
  } finally {
    await running?.stop().catch(() => undefined);
    await lab.destroy();
    fs.rmSync(work, { recursive: true, force: true });
  }
  for (const l of lines) console.log(l);
  process.exit(missed ? 1 : 0);
}

const lines: string[] = [];
let missed = false;
/** kind: 'floor' value ≥ floor, 'ceiling' value ≤ floor, 'none' a figure without a floor (always ok). */
function figure(name: string, value: number, unit: string, floor: number, kind: 'floor' | 'ceiling' | 'none' = 'floor'): void {
  // A figure without a floor never fails the bench (NaN when, say, no stack client finished).
  const ok = kind === 'none' ? true : kind === 'ceiling' ? value <= floor : value >= floor;
  if (!ok) missed = true;
  lines.push(`bench ${name} ${fmt(value)} ${unit} floor ${kind === 'none' ? 'none' : (kind === 'ceiling' ? '≤' : '') + floor} ${ok ? 'ok' : 'MISSED'}`);
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  for (const l of lines) console.log(l);
  process.exit(1);
});
