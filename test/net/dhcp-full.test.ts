/**
 * Full mode against real clients in the lab: busybox udhcpc (lease, options 66/67/209/210, renew,
 * release), ISC dhclient (lease, INIT-REBOOT with the same address after a server restart,
 * release), dhcpcd (test mode), lease persistence across a clean restart and a SIGKILL, and the
 * rogue-server guard.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable, type Netns } from '../lab/netns';
import { waitForLine } from '../lab/process';
import { parseLog } from '../../nodes/lib/dhcp/lease-store';
import { ServerProc } from './dhcp-lab';

const skip = labAvailable();

describe('DHCP full mode with real clients', { skip: skip ?? false }, () => {
  let lab: Lab;
  let srv: Netns;
  let cli: Netns;
  let srvIf: string;
  let cliIf: string;
  let tmp: string;
  let server: ServerProc;
  const leaseFile = (): string => path.join(tmp, 'leases.jsonl');
  const config = () => ({
    mode: 'full' as const,
    iface: srvIf,
    pool: { start: '10.62.0.100', end: '10.62.0.199', router: ['10.62.0.1'], dns: ['10.62.0.1'], domain: 'pxe.test' },
    leaseTime: 120,
    leaseFile: leaseFile(),
    probeMs: 300,
    rules: [{ match: {}, bootFile: '/arch/boot/syslinux/lpxelinux.0', configFile: 'boot/syslinux/archiso.cfg', pathPrefix: '/arch/' }],
  });

  before(async () => {
    lab = Lab.create();
    srv = lab.netns('srv');
    cli = lab.netns('cli');
    ({ a: srvIf, b: cliIf } = lab.veth(srv, '10.62.0.1/24', cli, null));
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-dhcp-full-'));
    server = ServerProc.start(srv, config());
    const r = await server.ready();
    assert.ok(r.listening, JSON.stringify(r));
  });
  after(async () => {
    await server?.stop();
    await lab.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const script = (name: string, body: string): string => {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, `#!/bin/sh\n${body}\nexit 0\n`, { mode: 0o755 });
    return p;
  };

  it('busybox udhcpc: lease with router, DNS, domain and boot options 66/67/209/210', async () => {
    const s = script('udhcpc.sh', 'echo "EV $1 ip=$ip mask=$mask router=$router dns=$dns domain=$domain boot=$boot_file siaddr=$siaddr tftp=$tftp cfg=$pxeconffile prefix=$pxepathprefix sid=$serverid lease=$lease"');
    const r = await cli.run('/bin/busybox', ['udhcpc', '-i', cliIf, '-n', '-q', '-f', '-t', '4', '-T', '1', '-O', '66', '-O', '67', '-O', '209', '-O', '210', '-s', s], { timeoutMs: 20000 });
    const m = /EV bound (.*)/.exec(r.stdout);
    assert.ok(m, r.stdout + r.stderr);
    const kv = Object.fromEntries(m[1]!.split(' ').map((x) => x.split('=') as [string, string]));
    assert.match(kv.ip!, /^10\.62\.0\.1\d\d$/);
    assert.equal(kv.mask, '24');
    assert.equal(kv.router, '10.62.0.1');
    assert.equal(kv.dns, '10.62.0.1');
    assert.equal(kv.domain, 'pxe.test');
    assert.equal(kv.boot, '/arch/boot/syslinux/lpxelinux.0');
    assert.equal(kv.siaddr, '10.62.0.1');
    assert.equal(kv.tftp, '10.62.0.1');
    assert.equal(kv.cfg, 'boot/syslinux/archiso.cfg');
    assert.equal(kv.prefix, '/arch/');
    assert.equal(kv.sid, '10.62.0.1');
    assert.equal(kv.lease, '120');
  });

  it('busybox udhcpc: renew (unicast to the client) and release', async () => {
    const s = script('udhcpc-cfg.sh', [
      'case "$1" in',
      '  bound|renew) /usr/sbin/ip addr replace $ip/$mask dev $interface; echo "EV $1 ip=$ip" ;;',
      '  deconfig) /usr/sbin/ip addr flush dev $interface; echo "EV deconfig" ;;',
      'esac',
    ].join('\n'));
    const c = cli.spawn('/bin/busybox', ['udhcpc', '-i', cliIf, '-f', '-t', '4', '-T', '1', '-s', s]);
    try {
      const bound = await waitForLine(c, /EV bound ip=(\S+)/, 20000);
      const ip = bound[1]!;
      const from = server.lines.length;
      c.kill('SIGUSR1'); // renew now
      await waitForLine(c, /EV renew ip=/, 15000);
      const ack = await server.waitFor((l) => l.event?.type === 'ack' && l.event.ip === ip, 5000, from);
      assert.equal(ack.route.reason, 'ciaddr', 'a renewal ACK is unicast to the client');
      c.kill('SIGUSR2'); // release
      await server.waitFor((l) => l.event?.type === 'release' && l.event.ip === ip, 10000, from);
      const leases = await server.command('leases', 'leases');
      assert.ok(!leases.leases.some((l: { ip: string }) => l.ip === ip), 'released lease is no longer active');
    } finally {
      c.kill('SIGTERM');
      await cli.run('/usr/sbin/ip', ['addr', 'flush', 'dev', cliIf]);
    }
  });

  it('ISC dhclient: lease, then INIT-REBOOT to the same address after a server restart, then release', async () => {
    // Our own script: prints what dhclient got and sets the address (so RELEASE can be unicast).
    const s = script('dhclient.sh', [
      'echo "DH reason=$reason ip=$new_ip_address routers=$new_routers domain=$new_domain_name file=$new_filename"',
      'case "$reason" in BOUND|REBOOT) /usr/sbin/ip addr replace $new_ip_address/$new_subnet_mask dev $interface ;; esac',
    ].join('\n'));
    const lf = path.join(tmp, 'dhclient.leases');
    const pf = path.join(tmp, 'dhclient.pid');
    const run = async (extra: string[] = []) => {
      const c = cli.spawn('/sbin/dhclient', ['-d', '-1', ...extra, '-sf', s, '-lf', lf, '-pf', pf, cliIf]);
      return c;
    };
    let c = await run();
    const first = await waitForLine(c, /DH reason=BOUND ip=(\S+) routers=(\S+) domain=(\S+) file=(\S+)/, 30000);
    // dhclient writes its lease file after running the script: wait for it before the "power cut".
    for (let i = 0; i < 50 && !(fs.existsSync(lf) && fs.readFileSync(lf, 'utf8').includes('fixed-address')); i++) await new Promise((r) => setTimeout(r, 100));
    c.kill('SIGKILL'); // no release: the lease stays with the client
    await new Promise((r) => c.once('exit', r));
    const ip = first[1]!;
    assert.match(ip, /^10\.62\.0\./);
    assert.equal(first[2], '10.62.0.1');
    assert.equal(first[3], 'pxe.test');
    assert.equal(first[4], '/arch/boot/syslinux/lpxelinux.0');

    // The server restarts (redeploy); the client reboots and asks for its address back.
    await server.stop();
    server = ServerProc.start(srv, config());
    await server.ready();
    const from = server.lines.length;
    c = await run();
    const again = await waitForLine(c, /DH reason=(REBOOT|BOUND) ip=(\S+)/, 30000);
    c.kill('SIGKILL');
    await new Promise((r) => c.once('exit', r));
    assert.equal(again[1], 'REBOOT', `INIT-REBOOT confirmed by the server; events ${JSON.stringify(server.events().map((e) => [e.type, e.ip]))}`);
    assert.equal(again[2], ip);
    const firstEvent = server.lines.slice(from).find((l) => l.event)?.event;
    assert.equal(firstEvent?.type, 'request', 'no DISCOVER: the client rebooted straight into REQUEST');

    const rel = await cli.run('/sbin/dhclient', ['-r', '-sf', s, '-lf', lf, '-pf', pf, cliIf], { timeoutMs: 15000 });
    assert.equal(rel.code, 0, rel.stderr);
    await server.waitFor((l) => l.event?.type === 'release' && l.event.ip === ip, 10000, from);
    await cli.run('/usr/sbin/ip', ['addr', 'flush', 'dev', cliIf]);
  });

  it('dhcpcd (test mode) sees the offer with our options', async () => {
    // dhcpcd forks privilege-separation helpers that outlive it: run it as init of a private PID
    // namespace so that all of them die with it (--kill-child). In test mode it prints the
    // offer's variables and touches no interface.
    const r = await cli.run('/usr/bin/unshare', ['--pid', '--fork', '--kill-child', '--mount-proc', '/sbin/dhcpcd', '-4', '-B', '-T', '-t', '10', '-f', '/dev/null', cliIf], { timeoutMs: 20000 });
    const out = r.stdout + r.stderr;
    assert.match(out, /new_ip_address=(')?10\.62\.0\.1\d\d/, out);
    assert.match(out, /new_routers=(')?10\.62\.0\.1/, out);
    assert.match(out, /new_domain_name=(')?pxe\.test/, out);
    assert.match(out, /new_dhcp_server_identifier=(')?10\.62\.0\.1/, out);
  });

  it('never hands out an ACKed address twice, even after SIGKILL; every ACK is in the lease file', async () => {
    const s = script('udhcpc-q.sh', '[ "$1" = bound ] && echo "EV bound ip=$ip"');
    const get = async (mac: string): Promise<string> => {
      const r = await cli.run('/bin/busybox', ['udhcpc', '-i', cliIf, '-n', '-q', '-f', '-t', '4', '-T', '1', '-s', s, '-x', `0x3d:01${mac}`], { timeoutMs: 20000 });
      const m = /EV bound ip=(\S+)/.exec(r.stdout);
      assert.ok(m, r.stdout + r.stderr);
      return m[1]!;
    };
    const before = [await get('020000000001'), await get('020000000002'), await get('020000000003')];
    assert.equal(new Set(before).size, 3);
    server.child.kill('SIGKILL');
    await new Promise((r) => server.child.once('exit', r));
    const log = parseLog(fs.readFileSync(leaseFile(), 'utf8')).snapshot;
    for (const ip of before) assert.ok(log.leases.has(ip), `${ip} is durable`);
    server = ServerProc.start(srv, config());
    await server.ready();
    const fresh = await get('020000000009');
    assert.ok(!before.includes(fresh), `new client got ${fresh}, one of ${before}`);
    assert.equal(await get('020000000002'), before[1], 'a known client gets its address back');
  });

  it('rogue-server guard: refuses to serve beside another DHCP server unless forced', async () => {
    await server.stop();
    // Another server on the segment: busybox udhcpd on the client side.
    cli.ip('addr', 'add', '10.62.0.2/24', 'dev', cliIf);
    const conf = path.join(tmp, 'udhcpd.conf');
    fs.writeFileSync(conf, [`interface ${cliIf}`, 'start 10.62.0.220', 'end 10.62.0.230', `lease_file ${tmp}/udhcpd.leases`, 'option subnet 255.255.255.0'].join('\n') + '\n');
    fs.writeFileSync(path.join(tmp, 'udhcpd.leases'), '');
    const other = cli.spawn('/bin/busybox', ['udhcpd', '-f', conf]);
    try {
      await new Promise((r) => setTimeout(r, 500));
      const refused = ServerProc.start(srv, { ...config(), probeMs: 3000 });
      const r = await refused.ready();
      assert.equal(r.name, 'RogueServerError', JSON.stringify(r));
      assert.match(r.fatal, /10\.62\.0\.2 offered 10\.62\.0\.2(2\d|30)\b/);
      server = ServerProc.start(srv, { ...config(), probeMs: 3000, force: true });
      const ok = await server.ready();
      assert.ok(ok.listening);
      await server.waitFor((l) => typeof l.warn === 'string' && /forced/.test(l.warn), 5000);
    } finally {
      other.kill('SIGTERM');
    }
  });
});
