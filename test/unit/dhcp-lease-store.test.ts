import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LeaseStore, parseLog } from '../../nodes/lib/dhcp/lease-store';

describe('DHCP lease store', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-leases-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const lease = (i: number, expires = Date.now() + 3600_000) => ({
    op: 'lease' as const,
    ip: `10.0.${i >> 8}.${i & 255}`,
    key: `hw:1:${i}`,
    mac: `52:54:00:00:00:${(i & 255).toString(16).padStart(2, '0')}`,
    hostname: i % 2 ? `h${i}` : null,
    expires,
  });

  it('persists leases, frees and declines across reopen, compacting the log', async () => {
    const file = path.join(dir, 'a', 'leases.jsonl');
    const s = await LeaseStore.open(file);
    await s.append(lease(1));
    await s.append(lease(2));
    await s.append(lease(2)); // renewal: a second record for the same address
    await s.append({ op: 'free', ip: '10.0.0.1', key: 'hw:1:1' });
    await s.append({ op: 'decline', ip: '10.0.0.3', until: Date.now() + 60_000 });
    await s.close();
    assert.equal(fs.readFileSync(file, 'utf8').trim().split('\n').length, 5);
    const r = await LeaseStore.open(file);
    assert.equal(r.state.leases.get('10.0.0.2')!.hostname, null);
    assert.ok(r.state.leases.get('10.0.0.1')!.expires <= Date.now(), 'released lease is expired');
    assert.ok(r.state.declined.has('10.0.0.3'));
    await r.close();
    // Compacted on open: one line per address.
    assert.equal(fs.readFileSync(file, 'utf8').trim().split('\n').length, 3);
    await assert.rejects(r.append(lease(4)), /closed/);
  });

  it('ignores a torn last line (crash mid-write) and counts corrupt lines', async () => {
    const file = path.join(dir, 'torn.jsonl');
    const good = JSON.stringify(lease(7)) + '\n';
    const torn = JSON.stringify(lease(8)).slice(0, 30);
    fs.writeFileSync(file, good + '{garbage\n' + good + torn);
    const s = await LeaseStore.open(file);
    assert.deepEqual(s.loadReport, { badLines: 1, tornTail: true });
    assert.deepEqual([...s.state.leases.keys()], ['10.0.0.7']);
    await s.append(lease(9));
    await s.close();
    const text = fs.readFileSync(file, 'utf8');
    assert.ok(text.endsWith('\n'));
    assert.deepEqual([...parseLog(text).snapshot.leases.keys()].sort(), ['10.0.0.7', '10.0.0.9']);
  });

  it('survives a crash at any byte of the last record', () => {
    const a = JSON.stringify(lease(1)) + '\n';
    const b = JSON.stringify(lease(2)) + '\n';
    for (let cut = 0; cut <= b.length; cut++) {
      const { snapshot, badLines } = parseLog(a + b.slice(0, cut));
      assert.equal(badLines, 0);
      assert.ok(snapshot.leases.has('10.0.0.1'));
      // The second record counts only once it is complete (the ACK waits for the newline's fsync).
      assert.equal(snapshot.leases.has('10.0.0.2'), cut >= b.length - 1, `cut ${cut}`);
    }
  });

  it('group-commits concurrent appends into few fsyncs, all durable before they resolve', async () => {
    const file = path.join(dir, 'group.jsonl');
    const s = await LeaseStore.open(file);
    const probe = await fs.promises.open(path.join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const orig = proto.datasync;
    let syncs = 0;
    proto.datasync = function (this: unknown) {
      syncs++;
      return orig.call(this);
    };
    try {
      const n = 2000;
      await Promise.all(Array.from({ length: n }, (_, i) => s.append(lease(i + 10))));
      assert.ok(syncs >= 1 && syncs < n / 10, `${syncs} fsyncs for ${n} records`);
      assert.equal(parseLog(fs.readFileSync(file, 'utf8')).snapshot.leases.size, n);
    } finally {
      proto.datasync = orig;
      await s.close();
    }
  });
});
