import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ARCH_BIOS_DEFAULTS, BootRules } from '../../nodes/lib/dhcp/boot-rules';
import { decode, encode } from '../../nodes/lib/dhcp/codec';
import type { DhcpEvent } from '../../nodes/lib/dhcp/events';
import { dhcpSignal } from '../../nodes/lib/boot-events/dhcp-signal';
import { BootTracker } from '../../nodes/lib/boot-events/tracker';
import { getMessageType, getPxeVendorOptions, getString, MessageType as T } from '../../nodes/lib/dhcp/options';
import { ProxyResponder } from '../../nodes/lib/dhcp/proxy';
import { DhcpMessageLoop } from '../../nodes/lib/dhcp/message-loop';
import { FakeTransport, request, tick } from './dhcp-helpers';

const SERVER = '192.168.1.10';
const PXE_BIOS = 'PXEClient:Arch:00000:UNDI:002001';
const uuid = Buffer.from([0, ...Array.from({ length: 16 }, (_, i) => i + 1)]);

function setup() {
  const rules = new BootRules([
    { name: 'ipxe', match: { ipxe: true }, bootFile: 'http://192.168.1.10:8080/boot.ipxe' },
    { name: 'bios', match: { arch: [0] }, ...ARCH_BIOS_DEFAULTS },
    { name: 'uefi', match: { arch: [7, 9] }, bootFile: 'ipxe.efi', nextServer: '192.168.1.20' },
  ]);
  const t = new FakeTransport();
  const server = new DhcpMessageLoop(t, new ProxyResponder({ serverIp: SERVER, rules }));
  const events: DhcpEvent[] = [];
  server.on('event', (e) => events.push(e));
  return { t, server, rules, events };
}

describe('proxyDHCP', () => {
  it('offers boot information without an address to a PXE DISCOVER', async () => {
    const s = setup();
    s.t.deliver({ buf: request({ type: T.DISCOVER, vendorClass: PXE_BIOS, arch: 0, uuid }) });
    const [offer] = await s.t.waitSent(1);
    const p = offer!.packet;
    assert.equal(getMessageType(p.options), T.OFFER);
    assert.equal(p.yiaddr, '0.0.0.0');
    assert.equal(p.siaddr, SERVER);
    assert.equal(p.file, '/arch/boot/syslinux/lpxelinux.0');
    assert.equal(getString(p.options, 60), 'PXEClient');
    assert.equal(getString(p.options, 209), 'boot/syslinux/archiso.cfg');
    assert.equal(getString(p.options, 210), '/arch/');
    assert.equal(getPxeVendorOptions(p.options)!.discoveryControl, 8);
    assert.deepEqual(p.options.get(97), uuid);
    assert.equal(p.options.has(51), false, 'no lease time');
    assert.equal(p.options.has(1), false, 'no network options');
    assert.deepEqual([offer!.address, offer!.port], ['255.255.255.255', 68]);
    await tick();
    assert.deepEqual(s.events.map((e) => [e.type, e.archName, e.bootFile]), [
      ['discover', 'x86 BIOS', null],
      ['offer', 'x86 BIOS', '/arch/boot/syslinux/lpxelinux.0'],
    ]);
    // The offer's event says what was sent: options 209/210 and the rule, for the boot view.
    const sent = s.events[1]!;
    assert.deepEqual([sent.configFile, sent.pathPrefix, sent.bootRule], ['boot/syslinux/archiso.cfg', '/arch/', 'bios']);
    const sig = dhcpSignal(sent, 'proxy', 5);
    assert.deepEqual(sig, {
      source: 'dhcp',
      kind: 'offer',
      mac: sent.mac,
      at: 5,
      mode: 'proxy',
      arch: 'x86 BIOS',
      bootFile: '/arch/boot/syslinux/lpxelinux.0',
      bootRule: 'bios',
      configFile: 'boot/syslinux/archiso.cfg',
      pathPrefix: '/arch/',
      vendorClass: PXE_BIOS,
    });
    // The boot view keeps it as the client's DHCP offer.
    const tracker = new BootTracker({ stallAfterMs: 60000, rootfsStep: 10 });
    tracker.handle(sig);
    const dhcp = tracker.records()[0]!.dhcp!;
    assert.deepEqual([dhcp.kind, dhcp.mode, dhcp.bootFile, dhcp.configFile, dhcp.pathPrefix, dhcp.bootRule, dhcp.vendorClass], ['offer', 'proxy', '/arch/boot/syslinux/lpxelinux.0', 'boot/syslinux/archiso.cfg', '/arch/', 'bios', PXE_BIOS]);
  });

  it('answers the port-4011 REQUEST with an ACK sent back to its source', async () => {
    const s = setup();
    s.t.deliver({
      buf: request({ type: T.REQUEST, ciaddr: '192.168.1.77', vendorClass: 'PXEClient:Arch:00007:UNDI:003016', arch: 7, flags: 0 }),
      address: '192.168.1.77',
      port: 68,
      localPort: 4011,
    });
    const [ack] = await s.t.waitSent(1);
    assert.equal(getMessageType(ack!.packet.options), T.ACK);
    assert.equal(ack!.packet.file, 'ipxe.efi');
    assert.equal(ack!.packet.siaddr, '192.168.1.20');
    assert.deepEqual([ack!.address, ack!.port, ack!.fromLocalPort], ['192.168.1.77', 68, 4011]);
  });

  it('echoes the PXE boot item (option 43 sub-option 71) of a port-4011 REQUEST in the ACK', async () => {
    const s = setup();
    const item = Buffer.from([0x80, 0x01, 0x00, 0x00]); // boot server type 0x8001, layer 0
    const p = decode(request({ type: T.REQUEST, ciaddr: '192.168.1.77', vendorClass: PXE_BIOS, arch: 0, flags: 0 }));
    p.options.set(43, Buffer.from([71, 4, ...item, 255]));
    s.t.deliver({ buf: encode(p), address: '192.168.1.77', port: 68, localPort: 4011 });
    const [ack] = await s.t.waitSent(1);
    const vendor = getPxeVendorOptions(ack!.packet.options)!;
    assert.deepEqual(vendor.raw.get(71), item);
    assert.deepEqual(vendor.bootItem, { type: 0x8001, layer: 0 });
    assert.equal(vendor.discoveryControl, 8, 'the rest of option 43 is kept');
    assert.equal(ack!.packet.options.get(43)!.at(-1), 255, 'sub-options end with END');

    // Without sub-option 71 in the request there is none in the ACK.
    s.t.deliver({ buf: request({ type: T.REQUEST, ciaddr: '192.168.1.78', vendorClass: PXE_BIOS, arch: 0, flags: 0, xid: 2 }), address: '192.168.1.78', port: 68, localPort: 4011 });
    const plain = (await s.t.waitSent(2))[1]!;
    assert.equal(getPxeVendorOptions(plain.packet.options)!.raw.has(71), false);
  });

  it('gives iPXE its script URL, not the loader again', async () => {
    const s = setup();
    s.t.deliver({ buf: request({ type: T.DISCOVER, vendorClass: 'PXEClient:Arch:00007:UNDI:003010', arch: 7, userClass: 'iPXE' }) });
    const [offer] = await s.t.waitSent(1);
    assert.equal(getString(offer!.packet.options, 67), 'http://192.168.1.10:8080/boot.ipxe');
  });

  it('stays silent for non-PXE clients, REQUESTs on 67, DISCOVERs on 4011 and unmatched clients', async () => {
    const s = setup();
    s.t.deliver({ buf: request({ type: T.DISCOVER, vendorClass: 'udhcp 1.36.1' }) });
    s.t.deliver({ buf: request({ type: T.DISCOVER }) });
    s.t.deliver({ buf: request({ type: T.REQUEST, vendorClass: PXE_BIOS, arch: 0, requested: '192.168.1.50', serverId: '192.168.1.1' }) });
    s.t.deliver({ buf: request({ type: T.DISCOVER, vendorClass: PXE_BIOS, arch: 0 }), localPort: 4011, address: '192.168.1.5' });
    s.t.deliver({ buf: request({ type: T.DISCOVER, vendorClass: 'PXEClient:Arch:00011:UNDI:003000', arch: 11 }) });
    s.t.deliver({ buf: request({ type: T.RELEASE, vendorClass: PXE_BIOS, ciaddr: '192.168.1.5' }) });
    await tick(50);
    assert.equal(s.t.sent.length, 0);
    assert.deepEqual(
      s.events.map((e) => e.reason),
      ['not a PXE client', 'not a PXE client', 'addresses come from the other DHCP server', 'only REQUEST is answered on port 4011', 'no boot rule matches'],
    );
  });

  it('honours per-MAC overrides, including "no boot"', async () => {
    const s = setup();
    s.rules.setOverride('52:54:00:00:00:01', { bootFile: 'memtest.0' });
    s.t.deliver({ buf: request({ type: T.DISCOVER, vendorClass: PXE_BIOS, arch: 0 }) });
    assert.equal((await s.t.waitSent(1))[0]!.packet.file, 'memtest.0');
    s.rules.setOverride('52:54:00:00:00:01', { noBoot: true });
    s.t.deliver({ buf: request({ type: T.DISCOVER, vendorClass: PXE_BIOS, arch: 0, xid: 2 }) });
    await tick();
    assert.equal(s.t.sent.length, 1);
  });
});
