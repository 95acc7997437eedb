/**
 * bench:hostile, HTTP (issue 15, item 1): a normal client's 64 MiB download, on an idle server and
 * while 200 clients (from 8 addresses, all admitted) hold range requests they never read; server
 * on CPU 0, clients on CPU 1. Figures: the attacked download's speed over the idle one (best of 5
 * each; other load on the machine only slows a run down), the server's RSS growth, and whether
 * every transfer was released once the attackers left.
 */
import type { BenchLine } from '../hostile';
import { httpStalledAttack } from '../../test/net/hostile-lab';

export async function run(): Promise<BenchLine[]> {
  const r = await httpStalledAttack({ stalled: 200, addresses: 8, fileMiB: 64, net: '97', rounds: 5, maxTimeS: 30 });
  console.log(
    `info hostile http: idle ${(r.idleSpeed / 1e6).toFixed(0)} MB/s, with 200 stalled ${(r.attackSpeed / 1e6).toFixed(0)} MB/s, ` +
      `RSS +${r.rssGrowthMiB.toFixed(1)} MiB, attackers ${JSON.stringify(r.stalled.statuses)}, transfers during ${r.activeDuring}, after ${r.activeAfter}, fds ${r.fdsBefore} -> ${r.fdsAfter}`,
  );
  return [
    { figure: 'hostile-http-200-stalled-speed-vs-idle', value: r.idleSpeed > 0 ? r.attackSpeed / r.idleSpeed : 0, unit: 'x', floor: 0.8 },
    { figure: 'hostile-http-200-stalled-rss-growth', value: r.rssGrowthMiB, unit: 'MiB', floor: 64, atMost: true },
    { figure: 'hostile-http-200-stalled-left-open', value: Math.max(0, r.activeAfter) + Math.max(0, r.fdsAfter - r.fdsBefore), unit: 'transfers+fds', floor: 0, atMost: true },
  ];
}
