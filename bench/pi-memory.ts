/**
 * `npm run bench:pi-memory`: what a Raspberry Pi's memory must hold. The "Arch PXE" example in a
 * real Node-RED 4.1 (the package installed from `npm pack` with its native addon, every debug node
 * on, boot events and the notification branch active) serves 10 BIOS clients booting at once:
 * each replays the recorded boot of bench:storm (bench/storm/client.ts: DHCP, pxelinux's TFTP
 * sequence, kernel and initramfs over TFTP, the root image over HTTP), with the files at a
 * current Arch ISO's full sizes (bench/storm/files.ts). The TFTP node runs as many transfer
 * workers as it starts by itself on a 4-core Pi 4 with 1 GiB (defaultTransferWorkers: none);
 * `--workers 4` measures a Pi with 2 GiB or more.
 *
 * Figure: Node-RED's peak resident set (VmHWM of the process and any children) over the whole
 * run, ceiling 150 MiB (a 1 GiB Pi runs other flows too). Every client must finish with intact
 * files, or the figure says nothing. Last line `bench pi_rss_peak <value> MiB floor 150 ok|MISSED`,
 * exit 1 on a miss.
 *
 *   node --import tsx bench/pi-memory.ts [--clients N] [--scale S] [--workers W]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab, labAvailable, type Netns } from '../test/lab/netns';
import { waitForLine } from '../test/lab/process';
import { archPxeFlow, readEvents } from '../test/e2e/arch-pxe-flow';
import { peakRss, prepareRun, settingsJs } from './storm/servers';
import type { Recording } from './storm/script';
import type { ClientConfig, ClientResult } from './storm/client';
import { defaultTransferWorkers } from '../nodes/lib/tftp/server';

const MiB = 1024 * 1024;
const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const CLIENTS = arg('clients', 10);
const SCALE = arg('scale', 1);
if (!(CLIENTS >= 1 && CLIENTS <= 100)) throw new Error('--clients must be 1..100');
if (!(SCALE > 0 && SCALE <= 1)) throw new Error('--scale must be in (0, 1]');
/** The ceiling: a 1 GiB Pi shares its memory with the OS and the user's other flows. */
const CEILING_MIB = 150;
/** Transfer workers a 4-core, 1 GiB Pi gets by default; --workers to compare. */
const PI_WORKERS = arg('workers', defaultTransferWorkers(4, 1024 ** 3));
if (!(PI_WORKERS >= 0 && PI_WORKERS <= 8)) throw new Error('--workers must be 0..8');
const SERVER = '10.92.0.1';
const CLIENT_BASE = '10.92.255.254';
const root = path.resolve(__dirname, '..');
const fmt = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : String(x));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Current resident set of a process, in bytes (0 when it is gone). */
function rssNow(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  const why = labAvailable();
  if (why) throw new Error(`the bench needs the network lab: ${why}`);
  if (!fs.existsSync('/usr/bin/xorriso')) throw new Error('/usr/bin/xorriso missing: run .ci/install-deps.sh');
  const recording = JSON.parse(fs.readFileSync(path.join(__dirname, 'storm', 'recorded-boot.json'), 'utf8')) as Recording;
  fs.mkdirSync(path.join(root, '.cache'), { recursive: true });
  const work = fs.mkdtempSync(path.join(root, '.cache', 'pi-memory-'));
  const lab = Lab.create();
  let red: ReturnType<Netns['spawn']> | undefined;
  let peak = NaN;
  let ok = 0;
  try {
    console.log('preparing the files and installing the packed package…');
    const { files, userDir, bootFile } = prepareRun(work, recording, SCALE);
    console.log(`${CLIENTS} clients at once; files: ${Object.entries(files.sizes).map(([p, s]) => `${path.basename(p)} ${fmt(s / MiB)} MiB`).join(', ')}; TFTP workers ${PI_WORKERS}`);

    const srv = lab.netns('srv');
    const cli = lab.netns('cli');
    const { a: srvIf, b: cliIf } = lab.veth(srv, `${SERVER}/16`, cli, `${CLIENT_BASE}/16`, { mtu: 1500 });
    cli.ip('route', 'replace', 'default', 'dev', cliIf);

    const eventsFile = path.join(work, 'events.jsonl');
    const flow = archPxeFlow({ iso: files.iso, iface: srvIf, mode: 'full', poolStart: '10.92.1.1', poolEnd: '10.92.1.254', eventsFile });
    for (const n of flow) {
      if (n.type === 'debug') n.active = true;
      if (n.type === 'pxe-tftp') n.workers = PI_WORKERS;
    }
    fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(flow, null, 2));
    fs.writeFileSync(path.join(userDir, 'settings.js'), settingsJs(path.join(work, 'lag.json')));
    red = srv.spawn(process.execPath, [path.join(root, 'node_modules', 'node-red', 'red.js'), '--userDir', userDir], { env: { ...process.env, HOME: os.tmpdir() } });
    let log = '';
    red.stdout?.on('data', (d) => (log = (log + d).slice(-100000)));
    red.stderr?.on('data', (d) => (log = (log + d).slice(-100000)));
    try {
      await waitForLine(red, /\[pxe-dhcp:[^\]]*\] full mode on/, 90_000);
      await waitForLine(red, /Started flows/, 30_000).catch(() => undefined);
    } catch (err) {
      throw new Error(`Node-RED did not start serving: ${(err as Error).message}\n${log.slice(-4000)}`);
    }
    await sleep(2000);
    const idle = rssNow(red.pid!);
    console.log(`Node-RED serving, RSS ${fmt(idle / MiB)} MiB idle (Node ${process.version}, ${os.arch()})`);

    // The RSS every 100 ms during the storm, for the curve's shape; the figure is VmHWM.
    let sampled = 0;
    const sampler = setInterval(() => (sampled = Math.max(sampled, rssNow(red!.pid!))), 100);
    const cfgFile = path.join(work, 'clients.json');
    const cfg: ClientConfig = { iface: cliIf, server: SERVER, clients: CLIENTS, round: 1, spreadMs: 200, steps: recording.steps, expect: files.expect, bootFile, clientTimeoutMs: 600_000 };
    fs.writeFileSync(cfgFile, JSON.stringify(cfg));
    const r = await cli.run(process.execPath, ['--import', 'tsx', path.join(__dirname, 'storm', 'client.ts'), cfgFile], { cwd: root, timeoutMs: cfg.clientTimeoutMs + 60_000 });
    clearInterval(sampler);
    let out: { allMs?: number; results?: ClientResult[]; fatal?: string };
    try {
      out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
    } catch {
      throw new Error(`the client simulator printed no result (exit ${r.code} ${r.signal}): ${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
    }
    if (out.fatal || !out.results) throw new Error(`the client simulator failed: ${out.fatal}\n${r.stderr.slice(-2000)}`);
    const results = out.results;
    ok = results.filter((x) => x.ok && x.corrupt === 0).length;
    const macs = new Set(results.map((x) => x.mac));
    for (let i = 0; i < 50 && new Set(readEvents(eventsFile).filter((e) => e.stage === 'complete' && e.mac && macs.has(e.mac)).map((e) => e.mac)).size < CLIENTS; i++) await sleep(100);
    const complete = new Set(readEvents(eventsFile).filter((e) => e.stage === 'complete' && e.mac && macs.has(e.mac)).map((e) => e.mac)).size;
    peak = peakRss(red.pid!);
    const gib = results.reduce((s, x) => s + x.bytes, 0) / (1024 * MiB);
    console.log(`all ${CLIENTS} done in ${fmt(out.allMs! / 1000, 2)} s, ok ${ok}/${CLIENTS}, ${fmt(gib, 2)} GiB served, boot/complete ${complete}; RSS idle ${fmt(idle / MiB)} MiB, sampled max ${fmt(sampled / MiB)} MiB, peak (VmHWM) ${fmt(peak / MiB)} MiB, after ${fmt(rssNow(red.pid!) / MiB)} MiB`);
    for (const x of results.filter((y) => !y.ok).slice(0, 5)) console.log(`  client ${x.i} (${x.mac} ${x.ip}): ${x.errors.slice(0, 3).join('; ')}`);
    if (ok < CLIENTS) console.log(`Node-RED log tail:\n${log.split('\n').filter((l) => !/\[debug\]/.test(l)).slice(-15).join('\n')}`);
  } finally {
    if (red && red.exitCode === null && red.signalCode === null) {
      const gone = new Promise((res) => red!.once('exit', res));
      red.kill('SIGTERM');
      const t = setTimeout(() => red!.kill('SIGKILL'), 10000);
      await gone;
      clearTimeout(t);
    }
    await lab.destroy();
    fs.rmSync(work, { recursive: true, force: true });
  }
  // A figure from a run where clients failed would measure less work than asked: that misses too.
  const pass = ok === CLIENTS && peak / MiB <= CEILING_MIB;
  if (ok < CLIENTS) console.log(`only ${ok} of ${CLIENTS} clients booted intact`);
  console.log(`bench pi_rss_peak ${fmt(peak / MiB)} MiB floor ${CEILING_MIB} ${pass ? 'ok' : 'MISSED'}`);
  process.exit(pass ? 0 : 1);
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  console.log(`bench pi_rss_peak NaN MiB floor ${CEILING_MIB} MISSED`);
  process.exit(1);
});
