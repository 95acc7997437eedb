/**
 * bench:hostile, TFTP (issue 15, item 4): 100 read requests for a FIFO in a folder store (8 at a
 * time, the per-client limit), then a normal 256 KiB file from the same client; server on CPU 0,
 * client on CPU 1. Figures: the normal file's time from request to last block, and how many FIFO
 * requests were refused with an error (rather than left hanging).
 */
import type { BenchLine } from '../hostile';
import { tftpFifoAttack } from '../../test/net/hostile-lab';

export async function run(): Promise<BenchLine[]> {
  const r = await tftpFifoAttack({ requests: 100, concurrency: 8, net: '98' });
  console.log(`info hostile tftp: ${JSON.stringify(r)}`);
  return [
    { figure: 'hostile-tftp-100-fifo-then-file', value: r.normalOk && r.normalMs >= 0 ? r.normalMs : Infinity, unit: 'ms', floor: 1000, atMost: true },
    { figure: 'hostile-tftp-100-fifo-refused', value: r.fifo.answered['2'] ?? 0, unit: 'requests', floor: 100 },
  ];
}
