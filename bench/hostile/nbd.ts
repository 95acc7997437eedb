/**
 * bench:hostile, NBD (issue 15, item 2): 64 connections from 8 addresses send four 32 MiB reads
 * each and never read a reply, while a normal client copies the 256 MiB image with nbdcopy.
 * Figures: the server's RSS growth under the attack (at most 128 MiB), nbdcopy's speed under
 * attack against idle (at least 0.5), and the RSS left above the baseline once the attacker is
 * gone and the garbage collected (at most 64 MiB, the reply budget). The scenario is
 * test/net/nbd-hostile.ts, shared with test/net/hostile-nbd.test.ts.
 */
import type { BenchLine } from '../hostile';
import { labAvailable } from '../../test/lab/netns';
import { hostileNbdSkip, runHostileNbd } from '../../test/net/nbd-hostile';

export async function run(): Promise<BenchLine[]> {
  const why = hostileNbdSkip(labAvailable());
  if (why) throw new Error(`bench needs the lab: ${why}`);
  const r = await runHostileNbd({ connections: 64, reads: 4, readLength: 32 * 1024 * 1024, imageMiB: 256, runs: 5, log: (l) => console.log(`info hostile nbd: ${l}`) });
  if (r.copyError) console.log(`info hostile nbd: nbdcopy under attack failed: ${r.copyError}`);
  if (!r.copyMatches) console.log('info hostile nbd: the copy under attack differs from the image');
  return [
    { figure: 'hostile-nbd-nonreading-rss-growth', value: r.aborted ? Infinity : r.growthMiB, unit: 'MiB', floor: 128, atMost: true },
    { figure: 'hostile-nbd-nonreading-nbdcopy-speed-ratio', value: r.copyMatches ? r.speedRatio : 0, unit: 'x', floor: 0.5 },
    { figure: 'hostile-nbd-nonreading-rss-left-after', value: r.leftMiB, unit: 'MiB', floor: 64, atMost: true },
  ];
}
