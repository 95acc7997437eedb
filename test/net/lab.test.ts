import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable, type Netns } from '../lab/netns';

const skip = labAvailable();

describe('network lab', { skip: skip ?? false }, () => {
  let lab: Lab;
  let srv: Netns;
  let cli: Netns;
  let tmp: string;

  before(() => {
    lab = Lab.create();
    srv = lab.netns('srv');
    cli = lab.netns('cli');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-lab-'));
  });
  after(async () => {
    await lab.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('busybox udhcpc gets a lease from a throwaway busybox udhcpd across two namespaces', async () => {
    const { a: srvIf, b: cliIf } = lab.veth(srv, '10.213.7.1/24', cli, null);
    const conf = path.join(tmp, 'udhcpd.conf');
    fs.writeFileSync(
      conf,
      [`interface ${srvIf}`, 'start 10.213.7.100', 'end 10.213.7.120', `lease_file ${tmp}/leases`, 'option subnet 255.255.255.0', 'option lease 600'].join('\n') + '\n',
    );
    fs.writeFileSync(path.join(tmp, 'leases'), '');
    const udhcpd = srv.spawn('/bin/busybox', ['udhcpd', '-f', conf]);
    // The script prints what udhcpc was given; the test reads it from stdout.
    const script = path.join(tmp, 'udhcpc.sh');
    fs.writeFileSync(script, '#!/bin/sh\n[ "$1" = bound ] && echo "BOUND ip=$ip mask=$mask serverid=$serverid"\nexit 0\n', { mode: 0o755 });
    const r = await cli.run('/bin/busybox', ['udhcpc', '-i', cliIf, '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', script], { timeoutMs: 20000 });
    udhcpd.kill('SIGTERM');
    const m = /BOUND ip=(\S+) mask=(\S+) serverid=(\S+)/.exec(r.stdout);
    assert.ok(m, `udhcpc output: ${r.stdout} ${r.stderr}`);
    const last = Number(m[1]!.split('.')[3]);
    assert.ok(m[1]!.startsWith('10.213.7.') && last >= 100 && last <= 120, m[1]);
    assert.equal(m[2], '24');
    assert.equal(m[3], '10.213.7.1');
  });

  it('removes its namespaces when destroyed', async () => {
    const other = Lab.create();
    const ns = other.netns('gone');
    other.veth(ns, '10.213.8.1/30', other.netns('gone2'), '10.213.8.2/30');
    assert.match(execFileSync('/usr/sbin/ip', ['netns', 'list'], { encoding: 'utf8' }), new RegExp(ns.name));
    await other.destroy();
    assert.doesNotMatch(execFileSync('/usr/sbin/ip', ['netns', 'list'], { encoding: 'utf8' }), new RegExp(other.tag));
  });
});
