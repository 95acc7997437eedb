/**
 * Hostile TFTP requests (issue 15, item 4), in the lab: read requests for a FIFO (and a device
 * node) in a folder store used to block one of libuv's four file threads each in open(), after
 * which nothing was served at all. They must be refused at once, and a normal file requested
 * right after them must arrive quickly, with nothing left open.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { labAvailable } from '../lab/netns';
import { tftpFifoAttack } from './hostile-lab';

const skip = labAvailable();
const ACCESS_VIOLATION = '2';

describe('hostile TFTP requests', { skip: skip ?? false, timeout: 120_000 }, () => {
  it('100 requests for a FIFO (and 100 for a device node) are refused at once; a normal file then arrives in < 1 s; nothing left behind', async () => {
    const r = await tftpFifoAttack({ requests: 100, concurrency: 8, net: '94' });
    const info = JSON.stringify(r);
    assert.deepEqual(r.fifo.answered, { [ACCESS_VIOLATION]: 100 }, `FIFO requests: ${info}`);
    assert.equal(r.fifo.silent, 0, info);
    if (r.device) assert.deepEqual(r.device.answered, { [ACCESS_VIOLATION]: 100 }, `device requests: ${info}`);
    assert.ok(r.normalOk, `the normal file did not arrive whole: ${info}`);
    assert.ok(r.normalMs >= 0 && r.normalMs < 1000, `the normal file took ${r.normalMs} ms: ${info}`);
    assert.ok(r.rssGrowthMiB <= 32, `memory grew by ${r.rssGrowthMiB.toFixed(1)} MiB: ${info}`);
    assert.equal(r.activeAfter, 0, info);
    assert.ok(r.fdsAfter <= r.fdsBefore, `descriptors left: ${info}`);
  });
});
