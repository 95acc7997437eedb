/**
 * Hostile HTTP clients (issue 15, item 1), in the lab: clients that send a range request for a
 * large file and never read must not stop a well-behaved client's download, must not grow the
 * server's memory past a stated bound, and must leave nothing behind once they go. On the code
 * before the fix, 13 such clients held every shared read buffer and a normal download got nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { labAvailable } from '../lab/netns';
import { httpStalledAttack } from './hostile-lab';

const skip = labAvailable();

describe('hostile HTTP clients', { skip: skip ?? false, timeout: 120_000 }, () => {
  it('40 clients holding range requests they never read (8 addresses): a normal 64 MiB download keeps ≥ 0.5× its idle speed, RSS grows ≤ 64 MiB, all released after', async () => {
    const r = await httpStalledAttack({ stalled: 40, addresses: 8, fileMiB: 64, net: '93', rounds: 3, maxTimeS: 15 });
    const info = `idle ${(r.idleSpeed / 1e6).toFixed(0)} MB/s, attacked ${(r.attackSpeed / 1e6).toFixed(0)} MB/s, RSS +${r.rssGrowthMiB.toFixed(1)} MiB, ${JSON.stringify(r)}`;
    assert.ok(r.idleSpeed > 0, info);
    assert.ok(r.attackSpeed >= 0.5 * r.idleSpeed, `the normal download slowed down too much: ${info}`);
    assert.ok(r.rssGrowthMiB <= 64, `memory grew too much: ${info}`);
    assert.deepEqual(r.stalled.statuses, { '206': 40 }, `every attacker was answered: ${info}`);
    assert.equal(r.activeDuring, 40, `the attackers' transfers were still open during the download: ${info}`);
    assert.equal(r.activeAfter, 0, `transfers left after the attackers went: ${info}`);
    assert.ok(r.fdsAfter <= r.fdsBefore, `descriptors left: ${info}`);
  });
});
