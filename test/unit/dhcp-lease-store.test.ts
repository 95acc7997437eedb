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

  /**
   * Replaces FileHandle.prototype.write (every handle shares it) with `fake`, which gets the bytes
   * the store asked to write and the real write; restored by the returned function.
   */
  async function patchWrite(
    fake: (data: Buffer, real: (b: Buffer) => Promise<{ bytesWritten: number }>) => Promise<number>,
  ): Promise<() => void> {
    const probe = await fs.promises.open(path.join(dir, 'probe-w'), 'w');
    const proto = Object.getPrototypeOf(probe) as { write: (...a: unknown[]) => Promise<{ bytesWritten: number; buffer: unknown }> };
    await probe.close();
    const orig = proto.write;
    proto.write = async function (this: unknown, data: unknown, a?: unknown, b?: unknown) {
      // write(string[, position[, encoding]]) or write(buffer[, offset[, length[, position]]])
      let bytes: Buffer;
      if (typeof data === 'string') bytes = Buffer.from(data, typeof b === 'string' ? (b as BufferEncoding) : 'utf8');
      else {
        const buf = data as Buffer;
        const off = typeof a === 'number' ? a : 0;
        const len = typeof b === 'number' ? b : buf.length - off;
        bytes = buf.subarray(off, off + len);
      }
      const n = await fake(bytes, (x) => orig.call(this, x) as Promise<{ bytesWritten: number }>);
      return { bytesWritten: n, buffer: data };
    };
    return () => {
      proto.write = orig;
    };
  }

  it('writes a whole batch even when the disk takes it in short writes', async () => {
    const file = path.join(dir, 'short-ok.jsonl');
    const s = await LeaseStore.open(file);
    // At most 17 bytes per write() call, as a nearly full or slow device may do.
    const restore = await patchWrite(async (bytes, real) => (await real(bytes.subarray(0, 17))).bytesWritten);
    try {
      await Promise.all([s.append(lease(1)), s.append(lease(2))]);
      await s.append(lease(3));
    } finally {
      restore();
    }
    await s.close();
    const r = parseLog(fs.readFileSync(file, 'utf8'));
    assert.deepEqual([r.badLines, r.tornTail], [0, false]);
    assert.deepEqual([...r.snapshot.leases.keys()].sort(), ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  });

  it('disk full mid-record: the append is rejected (no ACK), the partial line is cut, later records stay intact', async () => {
    const file = path.join(dir, 'short-full.jsonl');
    const s = await LeaseStore.open(file);
    await s.append(lease(1));
    const before = fs.readFileSync(file, 'utf8');
    // The device takes 40 bytes of the record, then reports no space.
    let calls = 0;
    const restore = await patchWrite(async (bytes, real) => {
      if (calls++ === 0) return (await real(bytes.subarray(0, 40))).bytesWritten;
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    });
    try {
      await assert.rejects(s.append(lease(2)), /ENOSPC/);
    } finally {
      restore();
    }
    assert.equal(fs.readFileSync(file, 'utf8'), before, 'the half-written record is removed');
    // Space is back: the next record is a line of its own.
    await s.append(lease(3));
    await s.close();
    const r = parseLog(fs.readFileSync(file, 'utf8'));
    assert.deepEqual([r.badLines, r.tornTail], [0, false]);
    assert.ok(r.snapshot.leases.has('10.0.0.1') && r.snapshot.leases.has('10.0.0.3'));
    assert.ok(!r.snapshot.leases.has('10.0.0.2'), 'the rejected lease is not on disk');
  });

  it('a write that makes no progress rejects the batch instead of spinning', async () => {
    const file = path.join(dir, 'short-zero.jsonl');
    const s = await LeaseStore.open(file);
    const restore = await patchWrite(async () => 0);
    try {
      await assert.rejects(s.append(lease(1)));
    } finally {
      restore();
    }
    await s.append(lease(2));
    await s.close();
    const r = parseLog(fs.readFileSync(file, 'utf8'));
    assert.deepEqual([...r.snapshot.leases.keys()], ['10.0.0.2']);
    assert.equal(r.badLines, 0);
  });
});
