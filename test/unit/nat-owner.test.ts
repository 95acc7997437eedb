import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatMark, markOf, parseMark, processLiveness, statStartTime, type OwnerMark } from '../../nodes/lib/nat/owner';

describe('nat owner marks', () => {
  let proc: string;
  /** A fake /proc: processes with a start time and a PID namespace. */
  const addProcess = (pid: number, start: string, pidns: string): void => {
    fs.mkdirSync(path.join(proc, String(pid), 'ns'), { recursive: true });
    const rest = Array.from({ length: 40 }, (_, i) => (i === 19 ? start : String(i))).join(' ');
    fs.writeFileSync(path.join(proc, String(pid), 'stat'), `${pid} (a (b) c) ${rest}\n`);
    fs.symlinkSync(`pid:[${pidns}]`, path.join(proc, String(pid), 'ns', 'pid'));
  };
  before(() => {
    proc = fs.mkdtempSync(path.join(os.tmpdir(), 'nat-owner-'));
    addProcess(10, '1000', '111');
    addProcess(11, '2000', '222');
  });
  after(() => fs.rmSync(proc, { recursive: true, force: true }));
  const self: OwnerMark = { pid: 10, start: '1000', pidns: '111' };

  it('reads the start time after the command name, whatever it holds', () => {
    assert.equal(statStartTime(fs.readFileSync(path.join(proc, '10', 'stat'), 'utf8')), '1000');
    assert.deepEqual(markOf(11, proc), { pid: 11, start: '2000', pidns: '222' });
    assert.equal(markOf(12, proc), null);
    const me = markOf('self');
    assert.ok(me && me.pid === process.pid && /^\d+$/.test(me.start) && /^\d+$/.test(me.pidns), JSON.stringify(me));
  });

  it('round-trips a mark', () => {
    assert.deepEqual(parseMark(formatMark(self)), self);
    assert.equal(parseMark('1.2'), null);
  });

  it('a process of our PID namespace is alive only with the same start time', () => {
    assert.equal(processLiveness({ pid: 10, start: '1000', pidns: '111' }, self, proc), 'alive');
    assert.equal(processLiveness({ pid: 10, start: '999', pidns: '111' }, self, proc), 'dead', 'a reused PID');
    assert.equal(processLiveness({ pid: 12, start: '1000', pidns: '111' }, self, proc), 'dead');
  });

  it('of another PID namespace, dead only when no process is left in it', () => {
    assert.equal(processLiveness({ pid: 1, start: '5', pidns: '222' }, self, proc), 'alive');
    assert.equal(processLiveness({ pid: 1, start: '5', pidns: '333' }, self, proc), 'dead');
  });
});
