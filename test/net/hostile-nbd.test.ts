// Hostile clients against the NBD server (issue 15, item 2), in lab namespaces: 64 connections
// from 8 addresses each send four 32 MiB reads and never read a reply. The server's memory must
// stay within its reply budget, a normal client's nbdcopy must keep at least half its idle speed
// and get every byte right, and once the attacker is gone the server must hold nothing of it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { labAvailable } from '../lab/netns';
import { hostileNbdSkip, runHostileNbd } from './nbd-hostile';

const skip = hostileNbdSkip(labAvailable());
const MiB = 1024 * 1024;

describe('NBD server under hostile clients (lab)', { skip: skip ?? false }, () => {
  it('64 non-reading connections with 32 MiB reads: bounded RSS, a normal nbdcopy at speed, memory released after', { timeout: 600_000 }, async () => {
    const r = await runHostileNbd({ connections: 64, reads: 4, readLength: 32 * MiB, imageMiB: 128, runs: 3, log: (l) => console.log(`# ${l}`) });
    assert.equal(r.aborted, false, `the server grew past ${r.growthMiB.toFixed(0)} MiB: attack called off`);
    assert.equal(r.attackers.attached, 64, `attacker connections attached: ${JSON.stringify(r.attackers)}`);
    // The reply budget is 64 MiB; the rest is sockets, parsing and the allocator's slack.
    assert.ok(r.growthMiB <= 128, `RSS grew by ${r.growthMiB.toFixed(0)} MiB under the attack (bound 128)`);
    assert.equal(r.copyError, null, `nbdcopy under attack: ${r.copyError}`);
    assert.ok(r.copyMatches, 'nbdcopy under attack copied the image byte for byte');
    assert.ok(r.speedRatio >= 0.5, `nbdcopy under attack ran at ${r.speedRatio.toFixed(2)}x its idle speed (${r.idleSeconds.toFixed(2)} s idle, ${r.attackSeconds.toFixed(2)} s under attack)`);
    // Afterwards: no connection, no reply byte, no Buffer kept by the server; what the allocator
    // keeps of the freed memory is bounded by what the budget ever let out.
    assert.equal(r.after?.connections, 0, JSON.stringify(r.after));
    assert.equal(r.after?.replyBytes, 0, JSON.stringify(r.after));
    assert.ok((r.after?.arrayBuffers ?? Infinity) < 8 * MiB, `Buffers still held after the attack: ${JSON.stringify(r.after)}`);
    assert.ok(r.leftMiB <= 64, `RSS still ${r.leftMiB.toFixed(0)} MiB above its baseline after the attack`);
  });
});
