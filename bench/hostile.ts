/**
 * `npm run bench:hostile [-- <name>…]`: the servers under hostile clients (issue 15), one module per
 * server in bench/hostile/<name>.ts, run one after the other (all of them, or the names given).
 * Each module exports `run(): Promise<BenchLine[]>`, does its own lab (namespaces, children, temp
 * files) and removes it before returning, even on failure. Printed last, one per figure:
 * `bench <figure> <value> <unit> floor <floor> ok|MISSED`; the exit code is 1 if a floor is missed
 * or a module failed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** One figure of a hostile bench. */
export interface BenchLine {
  /** 'hostile-http-stalled-speed-ratio', say: unique over the whole bench. */
  figure: string;
  value: number;
  unit: string;
  floor: number;
  /** The floor is a ceiling: ok when value <= floor (RSS, latency). Default: ok when value >= floor. */
  atMost?: boolean;
}

/** What each bench/hostile/<name>.ts exports. */
export type HostileBench = () => Promise<BenchLine[]>;

export function formatLine(l: BenchLine): { text: string; ok: boolean } {
  const ok = Number.isFinite(l.value) && (l.atMost ? l.value <= l.floor : l.value >= l.floor);
  return { text: `bench ${l.figure} ${l.value.toFixed(2)} ${l.unit} floor ${l.floor} ${ok ? 'ok' : 'MISSED'}`, ok };
}

async function main(): Promise<void> {
  const dir = path.join(__dirname, 'hostile');
  const available = (fs.existsSync(dir) ? fs.readdirSync(dir) : [])
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -3))
    .sort();
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  for (const w of wanted) if (!available.includes(w)) throw new Error(`no bench/hostile/${w}.ts (have: ${available.join(', ')})`);
  const names = wanted.length > 0 ? wanted : available;
  const lines: string[] = [];
  let failed = false;
  for (const name of names) {
    console.log(`info hostile ${name}: starting`);
    try {
      const mod = (await import(path.join(dir, `${name}.ts`))) as { run?: HostileBench };
      if (typeof mod.run !== 'function') throw new Error(`bench/hostile/${name}.ts exports no run()`);
      for (const l of await mod.run()) {
        const { text, ok } = formatLine(l);
        if (!ok) failed = true;
        lines.push(text);
      }
    } catch (err) {
      // One server's failure must not hide the others' figures.
      failed = true;
      console.error(`hostile ${name} failed: ${(err as Error).stack ?? String(err)}`);
    }
  }
  for (const l of lines) console.log(l);
  process.exit(failed ? 1 : 0);
}

if (require.main === module) {
  main().catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
}
