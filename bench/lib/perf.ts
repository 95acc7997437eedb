/**
 * `--perf` for the benches: `perf record -g` of one server process while one more run of the
 * workload goes (not a measured run: perf slows its target), then what the recording says — CPU
 * per unit of work, its kernel/user split, and the top binaries and symbols.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';

export const PERF_BIN = '/usr/bin/perf';

const fmt = (x: number, d = 2): string => x.toFixed(d);

/** Records `pid` at `hz` samples a second into `data` while `work` runs. */
export async function recordWhile(pid: number, data: string, hz: number, work: () => Promise<unknown>): Promise<void> {
  const rec = spawn(PERF_BIN, ['record', '-g', '-F', String(hz), '-p', String(pid), '-o', data], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500)); // perf attaches
  try {
    await work();
  } finally {
    rec.kill('SIGINT');
    await new Promise((r) => (rec.exitCode !== null ? r(null) : rec.once('exit', r)));
  }
}

/**
 * The lines to print for one recording: "perf, <who>, <what>: <cost> <unit> sampled — kernel …,
 * user …; by binary: …", then the top symbols, each with its share and its part of the cost.
 * `cost` turns the CPU-seconds sampled into the bench's unit (per GiB, per block …).
 */
export function perfSummary(data: string, who: string, what: string, cost: (cpuSeconds: number) => number, unit: string, top = 20): string[] {
  if (!fs.existsSync(data)) return [`${who}: no perf data`];
  const report = (args: string[]): string => execFileSync(PERF_BIN, ['report', '-i', data, '--stdio', '--no-children', '-g', 'none', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 });
  const rows = (text: string): [number, string][] =>
    text
      .split('\n')
      .map((l) => /^\s*([\d.]+)%\s+(.*\S)\s*$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [Number(m[1]), m[2]!.replace(/\s+/g, ' ')]);
  const byDso = report(['--sort', 'dso']);
  const total = cost(Number(/Event count \(approx\.\): (\d+)/.exec(byDso)?.[1] ?? 0) / 1e9); // cpu-clock counts ns
  const dsos = rows(byDso);
  const kernel = dsos.filter(([, d]) => d.includes('kernel')).reduce((a, [p]) => a + p, 0) / 100;
  const lines = [`perf, ${who}, ${what}: ${fmt(total)} ${unit} sampled — kernel ${fmt(kernel * total)}, user ${fmt((1 - kernel) * total)}; by binary: ${dsos.slice(0, 5).map(([p, d]) => `${d} ${fmt(p, 1)} %`).join(', ')}`];
  for (const [p, sym] of rows(report(['--sort', 'dso,sym'])).slice(0, top)) lines.push(`  ${fmt(p, 1).padStart(5)} %  ${fmt((p / 100) * total).padStart(6)}  ${sym.slice(0, 140)}`);
  return lines;
}
