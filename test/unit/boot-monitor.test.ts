/**
 * The runtime's shared boot tracker around the tracker itself: versions and deltas for the
 * sidebar, names, clear, the stall time of several nodes, and what it keeps in the user dir
 * (written at most once per delay, atomically, bounded, read back after a restart).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bootBus } from '../../nodes/lib/boot-events/bus';
import { JsonFile } from '../../nodes/lib/boot-events/history';
import { BootMonitor, DEFAULT_STALL_MS, MAX_BOOTS } from '../../nodes/lib/boot-events/live';

let tmp: string;
before(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-boot-monitor-'))));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const mac = (i: number): string => `52:54:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
const ip = (i: number): string => `10.2.${i >> 8}.${i & 255}`;

describe('JsonFile: one JSON file in the user dir', () => {
  it('writes at most once per delay, with the data as it is at write time, atomically', async () => {
    const file = path.join(tmp, 'a', 'x.json');
    const f = new JsonFile<{ n: number }>(file, { delayMs: 50 });
    let n = 0;
    for (let i = 0; i < 1000; i++) f.schedule(() => ({ n: ++n }));
    assert.equal(fs.existsSync(file), false, 'nothing written before the delay');
    // The first write comes after the delay (later on a busy machine: wait for it, bounded).
    for (const t0 = Date.now(); f.writes === 0 && Date.now() - t0 < 2000; ) await new Promise((r) => setTimeout(r, 10));
    assert.equal(f.writes, 1);
    assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), { n: 1 }, 'read once, when written');
    // A steady stream of changes: writes keep their pace (not one per change, not never).
    const t0 = Date.now();
    while (Date.now() - t0 < 300) {
      f.schedule(() => ({ n: ++n }));
      await new Promise((r) => setTimeout(r, 5));
    }
    const elapsed = Date.now() - t0;
    await f.flush();
    // About one write per 50 ms of changes (timers run late on a busy machine: never more).
    assert.ok(f.writes >= 2 && f.writes <= Math.ceil(elapsed / 50) + 2, `writes ${f.writes} in ${elapsed} ms`);
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['x.json'], 'no temporary file left');
  });

  it('reads back, ignores a missing file, sets a damaged one aside, refuses one too large', () => {
    const file = path.join(tmp, 'b.json');
    const errors: string[] = [];
    const f = new JsonFile(file, { delayMs: 10, maxBytes: 1000, onError: (e) => errors.push(e.message) });
    assert.equal(f.load(), undefined);
    assert.deepEqual(errors, []);
    fs.writeFileSync(file, '{"half": ');
    assert.equal(f.load(), undefined);
    assert.ok(fs.existsSync(`${file}.bad`));
    assert.match(errors[0]!, /damaged/);
    fs.writeFileSync(file, JSON.stringify({ big: 'x'.repeat(2000) }));
    assert.equal(f.load(), undefined);
    assert.match(errors[1]!, /too large/);
    f.schedule(() => ({ ok: 1 }));
    f.flushSync();
    assert.deepEqual(f.load(), { ok: 1 });
  });
});

describe('the shared boot monitor', () => {
  it('hands out deltas: what changed since a version, what was removed, everything for another epoch', () => {
    const m = new BootMonitor();
    m.handle({ source: 'dhcp', kind: 'ack', mac: mac(1), ip: ip(1), at: 1 });
    m.handle({ source: 'dhcp', kind: 'ack', mac: mac(2), ip: ip(2), at: 2 });
    const first = m.list();
    assert.equal(first.full, true);
    assert.deepEqual(
      first.boots.map((b) => b.mac),
      [mac(2), mac(1)],
      'newest first',
    );
    m.handle({ source: 'tftp', kind: 'start', ip: ip(1), file: 'arch/boot/x86_64/vmlinuz-linux', bytes: 0, size: 10, at: 3 });
    const d = m.list(first.v, first.epoch);
    assert.equal(d.full, false);
    assert.deepEqual(
      d.boots.map((b) => b.mac),
      [mac(1)],
    );
    assert.equal(d.boots[0]!.transfer?.file, 'arch/boot/x86_64/vmlinuz-linux');
    assert.deepEqual(m.list(d.v, d.epoch).boots, [], 'nothing new');
    assert.equal(m.list(d.v, 'another-epoch').full, true);
    assert.equal(m.list(d.v + 5, d.epoch).full, true, 'a version from the future: reload');
  });

  it('names machines (kept by MAC, bounded, cleaned), and a name change reaches the list as a change', () => {
    const m = new BootMonitor();
    m.handle({ source: 'dhcp', kind: 'ack', mac: mac(1), ip: ip(1), at: 1 });
    const l = m.list();
    m.setName(mac(1).toUpperCase(), '  lab\u0007 pc 1 ');
    const d = m.list(l.v, l.epoch);
    assert.equal(d.boots[0]!.name, 'lab  pc 1');
    assert.equal(m.detail(d.boots[0]!.id)!.name, 'lab  pc 1');
    assert.throws(() => m.setName('not-a-mac', 'x'), /not a MAC/);
    m.setName(mac(1), 'y'.repeat(500));
    assert.equal(m.nameOf(mac(1))!.length, 64);
    m.setName(mac(1), '');
    assert.equal(m.nameOf(mac(1)), undefined);
  });

  it('clear() forgets finished boots and tells the list', () => {
    const m = new BootMonitor();
    m.handle({ source: 'dhcp', kind: 'ack', mac: mac(1), ip: ip(1), at: 1 });
    m.handle({ source: 'http', kind: 'done', ip: ip(1), file: 'arch/x86_64/airootfs.sfs', bytes: 5, size: 5, at: 2 });
    m.handle({ source: 'dhcp', kind: 'ack', mac: mac(2), ip: ip(2), at: 3 });
    const l = m.list();
    const done = l.boots.find((b) => b.mac === mac(1))!;
    assert.equal(done.state, 'complete');
    assert.equal(m.clear(), 1);
    const d = m.list(l.v, l.epoch);
    assert.deepEqual(d.removed, [done.id]);
    assert.deepEqual(
      m.list().boots.map((b) => b.mac),
      [mac(2)],
    );
  });

  it('takes the shortest stall time of the deployed nodes, 120 s without any', () => {
    const m = new BootMonitor();
    assert.equal(m.tracker.stallAfterMs, DEFAULT_STALL_MS);
    m.setStallTime('a', 60000);
    m.setStallTime('b', 20000);
    assert.equal(m.tracker.stallAfterMs, 20000);
    m.setStallTime('b', undefined);
    assert.equal(m.tracker.stallAfterMs, 60000);
    m.setStallTime('a', undefined);
    assert.equal(m.tracker.stallAfterMs, DEFAULT_STALL_MS);
  });

  it('listens to the bus once started, and feeds every subscriber the same events', () => {
    const m = new BootMonitor();
    const a: string[] = [];
    const b: string[] = [];
    m.onEvents((es) => a.push(...es.map((e) => e.stage)));
    m.onEvents((es) => b.push(...es.map((e) => e.stage)));
    m.start();
    m.start();
    bootBus.publish({ source: 'dhcp', kind: 'ack', mac: mac(9), ip: ip(9), at: 1 });
    m.stop();
    bootBus.publish({ source: 'dhcp', kind: 'ack', mac: mac(8), ip: ip(8), at: 1 });
    assert.deepEqual(a, ['dhcp']);
    assert.deepEqual(b, ['dhcp']);
  });

  it('keeps the last 200 boots and the names in the user dir, and reads them back after a restart', async () => {
    const userDir = fs.mkdtempSync(path.join(tmp, 'user-'));
    const m = new BootMonitor({ persistDelayMs: 20, namesDelayMs: 20 });
    m.start({ userDir });
    for (let i = 0; i < 230; i++) {
      m.handle({ source: 'dhcp', kind: 'ack', mac: mac(i), ip: ip(i), arch: 'x86 BIOS', at: 1000 + i });
      m.handle({ source: 'http', kind: 'done', ip: ip(i), file: 'arch/x86_64/airootfs.sfs', bytes: 9, size: 9, at: 2000 + i });
    }
    // One still booting when Node-RED stops.
    m.handle({ source: 'dhcp', kind: 'ack', mac: mac(500), ip: ip(500), at: 5000 });
    m.handle({ source: 'tftp', kind: 'start', ip: ip(500), file: 'arch/boot/x86_64/vmlinuz-linux', bytes: 0, size: 10, at: 5001 });
    m.setName(mac(229), 'rack 3');
    await m.flush();
    const file = m.files.boots!;
    assert.equal(file, path.join(userDir, 'pxe-boot-events', 'boots.json'));
    const kept = JSON.parse(fs.readFileSync(file, 'utf8')) as { version: number; boots: { mac: string }[] };
    assert.equal(kept.version, 1);
    assert.equal(kept.boots.length, MAX_BOOTS);
    assert.equal(kept.boots.at(-1)!.mac, mac(500), 'oldest first in the file');
    assert.ok(fs.statSync(file).size < 2_000_000, `bounded file: ${fs.statSync(file).size} bytes`);
    m.stop();

    const again = new BootMonitor();
    again.start({ userDir });
    const l = again.list();
    assert.equal(l.boots.length, MAX_BOOTS);
    assert.equal(l.boots[0]!.mac, mac(500));
    assert.equal(l.boots[0]!.state, 'stalled');
    assert.equal(l.boots[0]!.interrupted, true);
    assert.equal(l.boots.find((b) => b.mac === mac(229))!.name, 'rack 3');
    assert.equal(l.boots.find((b) => b.mac === mac(229))!.firmware, 'bios');
    assert.notEqual(l.epoch, m.epoch, 'a restart is a new epoch: editors reload');
    again.stop();
  });

  it('writes what is pending when the process exits (synchronously)', () => {
    const userDir = fs.mkdtempSync(path.join(tmp, 'user-'));
    const m = new BootMonitor({ persistDelayMs: 60_000 });
    m.start({ userDir });
    m.handle({ source: 'dhcp', kind: 'ack', mac: mac(1), ip: ip(1), at: 1 });
    assert.equal(fs.existsSync(path.join(userDir, 'pxe-boot-events', 'boots.json')), false);
    process.emit('exit', 0);
    assert.equal((JSON.parse(fs.readFileSync(path.join(userDir, 'pxe-boot-events', 'boots.json'), 'utf8')) as { boots: unknown[] }).boots.length, 1);
    m.stop();
  });
});
