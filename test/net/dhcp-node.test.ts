/**
 * The pxe-dhcp node itself serving in the lab (Node-RED runtime in the server namespace): DHCP
 * events as output messages, run-time reservation and per-MAC boot override from input messages,
 * lease listing, leases persisted in the user directory, and close releasing the ports.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable, type Netns } from '../lab/netns';
import { ensureFixtures, fixturePath } from '../fixtures/fixtures';
import { ServerProc } from './dhcp-lab';

const skip = labAvailable();
const ROOT = path.resolve(__dirname, '..', '..');

describe('pxe-dhcp node serving in the lab', { skip: skip ?? false }, () => {
  let lab: Lab;
  let srv: Netns;
  let cli: Netns;
  let srvIf: string;
  let cliIf: string;
  let tmp: string;
  let node: ServerProc;
  let script: string;

  const udhcpc = () =>
    cli.run('/bin/busybox', ['udhcpc', '-i', cliIf, '-n', '-q', '-f', '-t', '4', '-T', '1', '-O', '209', '-s', script], { timeoutMs: 30000 });

  before(async () => {
    lab = Lab.create();
    srv = lab.netns('srv');
    cli = lab.netns('cli');
    ({ a: srvIf, b: cliIf } = lab.veth(srv, '192.168.0.1/24', cli, null));
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-dhcp-node-'));
    script = path.join(tmp, 'u.sh');
    fs.writeFileSync(script, '#!/bin/sh\n[ "$1" = bound ] && echo "EV bound ip=$ip boot=$boot_file cfg=$pxeconffile host=$hostname"\nexit 0\n', { mode: 0o755 });
    const props = {
      mode: 'full',
      iface: srvIf,
      poolStart: '192.168.0.50',
      poolEnd: '192.168.0.60',
      leaseTime: 600,
      // The wiki's setup: every client gets the Arch PXELINUX (a rule matching any client).
      rules: [{ name: 'all', match: 'any', value: '', ipxe: 'any', bootFile: '/arch/boot/syslinux/lpxelinux.0', configFile: '', pathPrefix: '' }],
    };
    const iso = fixturePath(ensureFixtures().isos.current!.file);
    node = new ServerProc(srv.spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/net/dhcp-node-child.ts'), JSON.stringify(props), tmp, iso], { cwd: ROOT }));
    await node.waitFor((l) => l.status?.fill === 'green' || l.status?.fill === 'red' || l.fatal, 30000);
    assert.ok(!node.lines.some((l) => l.fatal || l.status?.fill === 'red'), JSON.stringify(node.lines));
  });
  after(async () => {
    node?.child.kill('SIGKILL');
    await lab.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('emits dhcp/discover, offer, request, ack messages with MAC, IP and boot file', async () => {
    const r = await udhcpc();
    const m = /EV bound ip=(\S+)/.exec(r.stdout);
    assert.ok(m, r.stdout + r.stderr);
    const ack = await node.waitFor((l) => l.msg?.topic === 'dhcp/ack');
    assert.equal(ack.msg.payload.ip, m[1]);
    assert.match(ack.msg.payload.mac, /^[0-9a-f:]{17}$/);
    assert.equal(ack.msg.payload.bootFile, '/arch/boot/syslinux/lpxelinux.0');
    assert.equal(ack.msg.payload.bootRule, 'all');
    assert.deepEqual(
      node.lines.filter((l) => l.msg?.topic?.startsWith('dhcp/')).map((l) => l.msg.topic).slice(0, 4),
      ['dhcp/discover', 'dhcp/offer', 'dhcp/request', 'dhcp/ack'],
    );
    assert.ok(fs.readFileSync(path.join(tmp, 'pxe-dhcp', `leases-${srvIf}.jsonl`), 'utf8').includes(m[1]!), 'lease in the user directory');
  });

  it('input messages: per-MAC boot override, reservation, lease list', async () => {
    const mac = node.lines.find((l) => l.msg?.topic === 'dhcp/ack')!.msg.payload.mac as string;
    let from = node.lines.length;
    node.send({ topic: 'boot/override', payload: { mac, bootFile: 'memtest.0', configFile: 'memtest.cfg' } });
    await node.waitFor((l) => l.msg?.topic === 'dhcp/overrides', 10000, from);
    node.send({ topic: 'reservation/add', payload: { mac, ip: '192.168.0.10', hostname: 'bench1' } });
    const res = await node.waitFor((l) => l.msg?.topic === 'dhcp/reservations', 10000, from);
    assert.deepEqual(res.msg.payload, [{ mac, ip: '192.168.0.10', hostname: 'bench1' }]);
    const r = await udhcpc();
    assert.match(r.stdout, /EV bound ip=192\.168\.0\.10 boot=memtest\.0 cfg=memtest\.cfg host=bench1/, r.stdout + r.stderr);
    from = node.lines.length;
    node.send({ topic: 'leases' });
    const leases = await node.waitFor((l) => l.msg?.topic === 'dhcp/leases', 10000, from);
    assert.ok(leases.msg.payload.some((l: { ip: string; mac: string }) => l.ip === '192.168.0.10' && l.mac === mac), JSON.stringify(leases.msg.payload));
    from = node.lines.length;
    node.send({ topic: 'bogus' });
    await node.waitFor((l) => typeof l.error === 'string' && /unknown/.test(l.error), 10000, from);
  });

  it("input messages: boot/menu makes one machine boot an entry of the ISO's menu, and remove gives it back", async () => {
    const mac = node.lines.find((l) => l.msg?.topic === 'dhcp/ack')!.msg.payload.mac as string;
    let from = node.lines.length;
    node.send({ topic: 'boot/menu', payload: { mac, entry: 'arch_http', kernelArgs: 'script=http://{next-server}:8080/install.sh' } });
    const set = await node.waitFor((l) => l.msg?.topic === 'dhcp/overrides', 10000, from);
    assert.ok(JSON.stringify(set.msg.payload).includes('pxe-flow/'), JSON.stringify(set.msg.payload));
    const name = `${mac.replace(/:/g, '_')}.cfg`;
    const r = await udhcpc();
    assert.match(r.stdout, new RegExp(`boot=/boot/syslinux/lpxelinux\\.0 cfg=pxe-flow/${name}`), r.stdout + r.stderr);
    const cfg = fs.readFileSync(path.join(tmp, 'pxe-files', 's1', 'boot', 'syslinux', 'pxe-flow', name), 'utf8');
    assert.match(cfg, /^APPEND .*archiso_http_srv=.* script=http:\/\/192\.168\.0\.1:8080\/install\.sh$/m);
    assert.match(cfg, /^LINUX ::\/arch\/boot\/x86_64\/vmlinuz-linux$/m, 'kernel over TFTP: no HTTP node serves the store in this flow');
    // Kernel over HTTP from a named server: lpxelinux.0 fetches LINUX/INITRD from there.
    from = node.lines.length;
    node.send({ topic: 'boot/menu', payload: { mac, entry: 'arch_http', kernelHttp: 'http://{next-server}:8080/' } });
    await node.waitFor((l) => l.msg?.topic === 'dhcp/overrides', 10000, from);
    const viaHttp = fs.readFileSync(path.join(tmp, 'pxe-files', 's1', 'boot', 'syslinux', 'pxe-flow', name), 'utf8');
    assert.match(viaHttp, /^LINUX http:\/\/192\.168\.0\.1:8080\/arch\/boot\/x86_64\/vmlinuz-linux$/m);
    assert.match(viaHttp, /^INITRD http:\/\/192\.168\.0\.1:8080\/arch\/boot\/x86_64\/initramfs-linux\.img$/m);
    from = node.lines.length;
    node.send({ topic: 'boot/menu', payload: { mac, entry: 'arch_nope' } });
    await node.waitFor((l) => typeof l.error === 'string' && /no entry "arch_nope"/.test(l.error), 10000, from);
    from = node.lines.length;
    node.send({ topic: 'boot/menu', payload: { mac, remove: true } });
    await node.waitFor((l) => l.msg?.topic === 'dhcp/overrides', 10000, from);
    const back = await udhcpc();
    assert.match(back.stdout, /boot=\/arch\/boot\/syslinux\/lpxelinux\.0 cfg= /, back.stdout);
  });

  it('closing the flow releases the ports: another server can start on the interface', async () => {
    node.send({ unload: true });
    await node.waitFor((l) => l.unloaded, 20000);
    const other = ServerProc.start(srv, { mode: 'full', iface: srvIf, rules: [], probeMs: 0, isolation: 'nftables' });
    try {
      const r = await other.ready();
      assert.ok(r.listening, JSON.stringify(r));
    } finally {
      await other.stop();
    }
  });
});
