/**
 * The non-reading NBD clients attack, in lab namespaces, shared by test/net/hostile-nbd.test.ts
 * and bench/hostile/nbd.ts. Our server (nbd-child.ts) runs in `srv`; a normal client (nbdcopy) in
 * `cli`; the attacker (nbd-hostile-client.ts) in `atk` with 8 addresses, so the per-address limit
 * does not simply refuse it. Steps: idle nbdcopy speed; the attack (every attacker connection sends
 * large reads and never reads); the server's RSS while it lasts; nbdcopy speed and a byte-exact copy
 * meanwhile; then the attacker is killed and the server's RSS must come back down.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab } from '../lab/netns';
import { waitForLine } from '../lab/process';

export interface HostileNbdOptions {
  /** Attacker connections (default 64). */
  connections?: number;
  /** Reads each attacker connection sends (default 4) and their length (default 32 MiB). */
  reads?: number;
  readLength?: number;
  /** Image size (default 128 MiB). */
  imageMiB?: number;
  /** nbdcopy runs per phase, median taken (default 3). */
  runs?: number;
  /** The attack is called off once the server has grown this much (default 1024 MiB), so a bad server cannot take the machine down. */
  abortGrowthMiB?: number;
  log?: (line: string) => void;
}

export interface HostileNbdResult {
  attackers: { attached: number; refused: number };
  idleSeconds: number;
  attackSeconds: number;
  /** Idle time / time under attack: >= 0.5 means at least half the idle speed. */
  speedRatio: number;
  copyMatches: boolean;
  /** The nbdcopy run under attack failed (refused, reset): its error, else null. */
  copyError: string | null;
  baselineRssMiB: number;
  peakRssMiB: number;
  growthMiB: number;
  aborted: boolean;
  /** RSS once the attacker is gone and the garbage collected, and what is left above the baseline. */
  afterRssMiB: number;
  leftMiB: number;
  /** Above the baseline 5 s after the attacker left, before any forced GC (garbage V8 has not collected yet). */
  lingerMiB: number;
  /** The server's own figures at the end: reply bytes held (0 when every byte went back), Buffer memory. */
  after: { connections?: number; replyBytes?: number; arrayBuffers?: number } | null;
  evicted: number;
  refused: number;
}

const SRV_CLI = '10.97.1.1';
const CLI = '10.97.1.2';
const SRV_ATK = '10.97.2.1';
const ATK = Array.from({ length: 8 }, (_, i) => `10.97.2.${10 + i}`);
const PORT = 10809;
const MiB = 1024 * 1024;
const HERE = __dirname;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) / 1024;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function writeRandomFile(file: string, bytes: number): string {
  const fd = fs.openSync(file, 'w', 0o644);
  const chunk = Buffer.allocUnsafe(16 * MiB);
  const hash = createHash('sha256');
  for (let done = 0; done < bytes; done += chunk.length) {
    const part = chunk.subarray(0, Math.min(chunk.length, bytes - done));
    randomFillSync(part);
    hash.update(part);
    fs.writeSync(fd, part);
  }
  fs.closeSync(fd);
  return hash.digest('hex');
}

function sha256(file: string): string {
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(16 * MiB);
  for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
  fs.closeSync(fd);
  return hash.digest('hex');
}

/** JSON lines of a child's stdout, kept for the run. */
function lines(child: ChildProcess): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const ls = buf.split('\n');
    buf = ls.pop()!;
    for (const l of ls) if (l.startsWith('{')) out.push(JSON.parse(l) as Record<string, unknown>);
  });
  return out;
}

export async function runHostileNbd(opts: HostileNbdOptions = {}): Promise<HostileNbdResult> {
  const connections = opts.connections ?? 64;
  const reads = opts.reads ?? 4;
  const readLength = opts.readLength ?? 32 * MiB;
  const imageMiB = opts.imageMiB ?? 128;
  const runs = opts.runs ?? 3;
  const abortGrowth = opts.abortGrowthMiB ?? 1024;
  const log = opts.log ?? (() => undefined);

  const lab = Lab.create();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-nbd-hostile-'));
  let attacker: ChildProcess | undefined;
  try {
    const srv = lab.netns('srv');
    const cli = lab.netns('cli');
    const atk = lab.netns('atk');
    lab.veth(srv, `${SRV_CLI}/24`, cli, `${CLI}/24`);
    const { b: atkDev } = lab.veth(srv, `${SRV_ATK}/24`, atk, null);
    for (const a of ATK) atk.ip('addr', 'add', `${a}/24`, 'dev', atkDev);
    const iso = path.join(tmp, 'x.iso');
    const digest = writeRandomFile(iso, imageMiB * MiB);

    // --expose-gc only for the "gc" command: what the server still holds vs what V8 has not collected yet.
    const server = srv.spawn(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(HERE, 'nbd-child.ts'), iso, 'archiso', '0.0.0.0', String(PORT), '1000']);
    const events = lines(server);
    server.stderr!.resume();
    await waitForLine(server, /"listening"/, 30000);
    const pid = server.pid!;
    const stats = async (command = 'stats'): Promise<HostileNbdResult['after']> => {
      const before = events.length;
      server.stdin!.write(`${command}\n`);
      for (let i = 0; i < 100; i++) {
        const s = events.slice(before).find((e) => e.stats);
        if (s) return s.stats as HostileNbdResult['after'];
        await sleep(20);
      }
      return null;
    };

    const uri = `nbd://${SRV_CLI}:${PORT}/archiso`;
    const copy = async (dest = 'null:'): Promise<number> => {
      const t0 = process.hrtime.bigint();
      const r = await cli.run('/usr/bin/nbdcopy', [uri, dest], { timeoutMs: 120000 });
      if (r.code !== 0) throw new Error(`nbdcopy failed (${r.code ?? r.signal}): ${r.stderr.trim()}`);
      return Number(process.hrtime.bigint() - t0) / 1e9;
    };

    // Idle: one warm-up (page cache, JIT), then the measured runs.
    await copy();
    const idle: number[] = [];
    for (let i = 0; i < runs; i++) idle.push(await copy());
    const idleSeconds = median(idle);
    log(`idle nbdcopy of ${imageMiB} MiB: ${idle.map((t) => t.toFixed(3)).join(', ')} s`);
    await stats('gc');
    await sleep(500);
    const baselineRssMiB = rssMiB(pid);

    attacker = atk.spawn(process.execPath, [
      '--import', 'tsx', path.join(HERE, 'nbd-hostile-client.ts'),
      SRV_ATK, String(PORT), 'archiso', String(connections), ATK.join(','), String(reads), String(readLength),
    ]);
    attacker.stderr!.resume();
    let peakRssMiB = baselineRssMiB;
    let aborted = false;
    const sampler = setInterval(() => {
      try {
        peakRssMiB = Math.max(peakRssMiB, rssMiB(pid));
      } catch {
        return;
      }
      if (peakRssMiB - baselineRssMiB > abortGrowth && !aborted) {
        aborted = true;
        attacker?.kill('SIGKILL');
      }
    }, 50);
    let attackers = { attached: 0, refused: connections };
    let underAttack: number[] = [];
    let copyMatches = false;
    let copyError: string | null = null;
    try {
      const ready = await waitForLine(attacker, /^\{"ready"/, 120000).catch((err: Error) => {
        if (aborted) return null;
        throw err;
      });
      if (ready) attackers = (JSON.parse(ready.input!) as { ready: typeof attackers }).ready;
      log(`attacker: ${attackers.attached} connections attached, ${attackers.refused} refused`);
      // Long enough for the attacker's connections to count as stalled (evictableAfterMs, 5 s):
      // nbdcopy's own connections need slots on a full server.
      for (let t = 0; t < 60 && !aborted; t++) await sleep(100);
      if (!aborted) {
        try {
          for (let i = 0; i < runs && !aborted; i++) underAttack.push(await copy());
          const out = path.join(tmp, 'copy.img');
          if (!aborted) await copy(out);
          copyMatches = !aborted && sha256(out) === digest;
          fs.rmSync(out, { force: true });
        } catch (err) {
          copyError = (err as Error).message;
        }
      }
    } finally {
      clearInterval(sampler);
    }
    if (underAttack.length === 0) underAttack = [Infinity];
    const attackSeconds = median(underAttack);
    log(`nbdcopy under attack: ${underAttack.map((t) => t.toFixed(3)).join(', ')} s; server RSS ${baselineRssMiB.toFixed(0)} → peak ${peakRssMiB.toFixed(0)} MiB`);

    // The attacker goes: every one of its connections is reset.
    attacker.kill('SIGKILL');
    await new Promise((r) => (attacker!.exitCode !== null || attacker!.signalCode !== null ? r(null) : attacker!.once('exit', r)));
    let after = await stats();
    for (let t = 0; t < 100 && (after?.connections ?? 0) > 0; t++) {
      await sleep(100);
      after = await stats();
    }
    // What V8 has not collected on its own after a few seconds of quiet (nothing references it)...
    await sleep(5000);
    const lingerRssMiB = rssMiB(pid);
    // ...and what is left once it has: what the server (or the allocator) really keeps.
    after = await stats('gc');
    await sleep(500);
    const afterRssMiB = rssMiB(pid);
    log(`after the attacker left: RSS ${lingerRssMiB.toFixed(0)} MiB, ${afterRssMiB.toFixed(0)} MiB after a GC; ${JSON.stringify(after)}`);
    return {
      attackers,
      idleSeconds,
      attackSeconds,
      speedRatio: idleSeconds / attackSeconds,
      copyMatches,
      copyError,
      baselineRssMiB,
      peakRssMiB,
      growthMiB: peakRssMiB - baselineRssMiB,
      aborted,
      afterRssMiB,
      leftMiB: afterRssMiB - baselineRssMiB,
      lingerMiB: lingerRssMiB - baselineRssMiB,
      after,
      evicted: events.filter((e) => e.event === 'evicted').length,
      refused: events.filter((e) => e.event === 'refused').length,
    };
  } finally {
    attacker?.kill('SIGKILL');
    await lab.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** The lab is usable and nbdcopy is installed: null, else why not. */
export function hostileNbdSkip(labWhy: string | null): string | null {
  if (labWhy) return labWhy;
  return fs.existsSync('/usr/bin/nbdcopy') ? null : 'needs libnbd-bin (nbdcopy)';
}
