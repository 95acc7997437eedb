/**
 * proxyDHCP beside a DHCP server that hands out the addresses (busybox udhcpd), all three on one
 * bridged segment: a scripted PXE ROM gets the address from udhcpd and the boot file from us, then
 * asks us again on port 4011; a normal client (udhcpc) is left entirely to udhcpd.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable, type Netns } from '../lab/netns';
import { replies, scriptClient, ServerProc } from './dhcp-lab';

const skip = labAvailable();

describe('proxyDHCP beside another DHCP server', { skip: skip ?? false }, () => {
  let lab: Lab;
  let srv: Netns;
  let router: Netns;
  let cli: Netns;
  let br: string;
  let cliIf: string;
  let tmp: string;
  let server: ServerProc;

  before(async () => {
    lab = Lab.create();
    srv = lab.netns('srv');
    router = lab.netns('rtr');
    cli = lab.netns('cli');
    br = lab.bridge(srv, '10.64.0.1/24');
    const rtrIf = lab.attach(srv, br, router, '10.64.0.254/24');
    cliIf = lab.attach(srv, br, cli, null);
    // A PXE ROM has no address yet: let its broadcasts leave (a route, no address).
    cli.ip('route', 'add', 'default', 'dev', cliIf);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-dhcp-proxy-'));
    const conf = path.join(tmp, 'udhcpd.conf');
    fs.writeFileSync(conf, [`interface ${rtrIf}`, 'start 10.64.0.100', 'end 10.64.0.150', `lease_file ${tmp}/udhcpd.leases`, 'option subnet 255.255.255.0', 'option router 10.64.0.254'].join('\n') + '\n');
    fs.writeFileSync(path.join(tmp, 'udhcpd.leases'), '');
    router.spawn('/bin/busybox', ['udhcpd', '-f', conf]);
    server = ServerProc.start(srv, {
      mode: 'proxy',
      iface: br,
      rules: [
        { name: 'ipxe', match: { ipxe: true }, bootFile: 'http://10.64.0.1:8080/boot.ipxe' },
        { name: 'bios', match: { arch: [0] }, bootFile: '/arch/boot/syslinux/lpxelinux.0', configFile: 'boot/syslinux/archiso.cfg', pathPrefix: '/arch/' },
        { name: 'uefi', match: { arch: [7, 9], ipxe: false }, bootFile: 'ipxe.efi' },
      ],
    });
    const r = await server.ready();
    assert.ok(r.listening, JSON.stringify(r));
  });
  after(async () => {
    await server?.stop();
    await lab.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('a PXE DISCOVER gets the address from udhcpd and boot information (no address) from us', async () => {
    const lines = await scriptClient(cli, {
      type: 1,
      mac: '52:54:00:aa:00:01',
      arch: 0,
      vendorClass: 'PXEClient:Arch:00000:UNDI:002001',
      to: '255.255.255.255',
      toPort: 67,
      waitMs: 3500, // udhcpd ARP-pings for 2 s before it offers
    });
    const rs = replies(lines);
    const fromRouter = rs.find((r) => r.serverId === '10.64.0.254');
    const fromUs = rs.find((r) => r.serverId === '10.64.0.1');
    assert.ok(fromRouter, `udhcpd offered: ${JSON.stringify(lines)}`);
    assert.match(fromRouter.yiaddr, /^10\.64\.0\.1[0-5]\d$/);
    assert.ok(fromUs, `proxy offered: ${JSON.stringify(lines)}`);
    assert.equal(fromUs.type, 2);
    assert.equal(fromUs.yiaddr, '0.0.0.0');
    assert.equal(fromUs.siaddr, '10.64.0.1');
    assert.equal(fromUs.vendorClass, 'PXEClient');
    assert.equal(fromUs.file, '/arch/boot/syslinux/lpxelinux.0');
    assert.equal(fromUs.opt209, 'boot/syslinux/archiso.cfg');
    assert.equal(fromUs.opt210, '/arch/');
    assert.equal(fromUs.discoveryControl, 8);
    assert.match(fromUs.uuid, /^00525400aa0001/, 'machine UUID echoed');
    const offer = server.events('offer').at(-1)!;
    assert.deepEqual([offer.mac, offer.archName, offer.bootRule], ['52:54:00:aa:00:01', 'x86 BIOS', 'bios']);
  });

  it('then the port-4011 REQUEST is ACKed, back to the client', async () => {
    cli.ip('addr', 'add', '10.64.0.120/24', 'dev', cliIf); // the address udhcpd gave it
    try {
      const lines = await scriptClient(cli, {
        type: 3,
        mac: '52:54:00:aa:00:02',
        arch: 7,
        vendorClass: 'PXEClient:Arch:00007:UNDI:003016',
        ciaddr: '10.64.0.120',
        to: '10.64.0.1',
        toPort: 4011,
        bindAddress: '10.64.0.120',
        bindPort: 68,
        waitMs: 1500,
      });
      const [ack] = replies(lines);
      assert.ok(ack, JSON.stringify(lines));
      assert.equal(ack.type, 5);
      assert.equal(ack.file, 'ipxe.efi');
      assert.equal(ack.from, '10.64.0.1:4011');
      assert.equal(ack.vendorClass, 'PXEClient');
    } finally {
      cli.ip('addr', 'flush', 'dev', cliIf);
      cli.ip('route', 'replace', 'default', 'dev', cliIf);
    }
  });

  it('iPXE gets the script URL; a normal client gets nothing from us', async () => {
    const lines = await scriptClient(cli, {
      type: 1,
      mac: '52:54:00:aa:00:03',
      arch: 7,
      vendorClass: 'PXEClient:Arch:00007:UNDI:003010',
      userClass: 'iPXE',
      to: '255.255.255.255',
      toPort: 67,
      waitMs: 800,
    });
    const ours = replies(lines).find((r) => r.serverId === '10.64.0.1');
    assert.equal(ours?.bootfile67, 'http://10.64.0.1:8080/boot.ipxe');

    const script = path.join(tmp, 'u.sh');
    fs.writeFileSync(script, '#!/bin/sh\n[ "$1" = bound ] && echo "EV bound ip=$ip sid=$serverid boot=$boot_file"\nexit 0\n', { mode: 0o755 });
    const from = server.lines.length;
    const r = await cli.run('/bin/busybox', ['udhcpc', '-i', cliIf, '-n', '-q', '-f', '-t', '5', '-T', '3', '-s', script], { timeoutMs: 30000 });
    assert.match(r.stdout, /EV bound ip=10\.64\.0\.1\d\d sid=10\.64\.0\.254 boot=$/m, r.stdout + r.stderr);
    const ev = server.lines.slice(from).filter((l) => l.event);
    assert.ok(ev.length > 0 && ev.every((l) => !['offer', 'ack'].includes(l.event.type)), JSON.stringify(ev));
    assert.equal(ev[0]!.event.reason, 'not a PXE client');
  });
});
