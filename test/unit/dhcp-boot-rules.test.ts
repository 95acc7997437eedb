import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyBoot, ARCH_BIOS_DEFAULTS, BootRules, type BootRule } from '../../nodes/lib/dhcp/boot-rules';
import { describeClient, type ClientInfo } from '../../nodes/lib/dhcp/client';
import { createPacket } from '../../nodes/lib/dhcp/codec';
import { getPxeVendorOptions, parseSubOptions } from '../../nodes/lib/dhcp/options';

function client(over: Partial<ClientInfo>): ClientInfo {
  return {
    mac: '52:54:00:00:00:01',
    key: 'hw:1:52:54:00:00:00:01',
    arch: 0,
    vendorClass: 'PXEClient:Arch:00000:UNDI:002001',
    userClasses: [],
    hostname: null,
    uuid: null,
    isPxe: true,
    isHttpBoot: false,
    isIpxe: false,
    ...over,
  };
}

const rules: BootRule[] = [
  { name: 'ipxe', match: { ipxe: true }, bootFile: 'http://10.0.0.1/boot.ipxe' },
  { name: 'pi', match: { raspberryPi: true }, raspberryPi: true },
  { name: 'lab machine', match: { mac: ['52-54-00-aa'] }, bootFile: 'special.0' },
  { name: 'bios', match: { arch: [0] }, ...ARCH_BIOS_DEFAULTS },
  { name: 'uefi', match: { arch: [6, 7, 9], ipxe: false }, bootFile: 'ipxe.efi' },
  { name: 'arm', match: { arch: [10, 11] }, bootFile: 'grubaa64.efi', nextServer: '10.0.0.9' },
  { name: 'vendor', match: { vendorClass: ['acme'] }, bootFile: 'acme.0' },
];

describe('boot rules', () => {
  const br = new BootRules(rules);
  it('first match wins, by arch, iPXE, MAC prefix, vendor class', () => {
    assert.equal(br.select(client({ arch: 0 }))?.source, 'bios');
    assert.equal(br.select(client({ arch: 7 }))?.source, 'uefi');
    assert.equal(br.select(client({ arch: 9 }))?.source, 'uefi');
    assert.equal(br.select(client({ arch: 11 }))?.source, 'arm');
    // iPXE sends option 93 too: the iPXE rule comes first, so no chain-load loop.
    assert.equal(br.select(client({ arch: 7, isIpxe: true }))?.action.bootFile, 'http://10.0.0.1/boot.ipxe');
    assert.equal(br.select(client({ mac: '52:54:00:aa:10:20', arch: 0 }))?.source, 'lab machine');
    assert.equal(br.select(client({ arch: null, vendorClass: 'ACME-loader' }))?.source, 'vendor');
    assert.equal(br.select(client({ arch: 99, vendorClass: 'x' })), null);
    assert.equal(br.select(client({ mac: 'dc:a6:32:01:02:03' }))?.source, 'pi');
  });

  it('ipxe:false keeps an iPXE client from getting the iPXE binary again', () => {
    const only = new BootRules([{ match: { arch: [7], ipxe: false }, bootFile: 'ipxe.efi' }]);
    assert.equal(only.select(client({ arch: 7, isIpxe: true })), null);
    assert.equal(only.select(client({ arch: 7 }))?.source, 'rule 1');
  });

  it('per-MAC overrides come before the rules and can be removed', () => {
    const b = new BootRules(rules);
    b.setOverride('52:54:00:00:00:01', { bootFile: 'memtest.0' });
    assert.deepEqual(b.select(client({}))?.action, { bootFile: 'memtest.0' });
    assert.equal(b.listOverrides().length, 1);
    b.setOverride('525400000001', null);
    assert.equal(b.select(client({}))?.source, 'bios');
    assert.throws(() => b.setOverride('52:54', { bootFile: 'x' }), /full MAC/);
    assert.throws(() => b.setOverride('52:54:00:00:00:01', { nextServer: 'nope' }), /next-server/);
  });

  it('refuses bad rules at configuration time', () => {
    assert.throws(() => new BootRules([{ match: { mac: ['zz'] } }]), /MAC/);
    assert.throws(() => new BootRules([{ match: { arch: [70000] } }]), /architecture/);
    assert.throws(() => new BootRules([{ match: {}, options: [{ code: 52, kind: 'u8', value: '1' }] }]), /52/);
  });

  it('applies a decision to a reply: siaddr, file, 66, 67, 209, 210, 43, extras', () => {
    const reply = createPacket();
    const given = applyBoot(reply, { ...ARCH_BIOS_DEFAULTS, options: [{ code: 211, kind: 'u32', value: '5' }] }, '10.0.0.1', true);
    assert.equal(given, '/arch/boot/syslinux/lpxelinux.0');
    assert.equal(reply.siaddr, '10.0.0.1');
    assert.equal(reply.file, '/arch/boot/syslinux/lpxelinux.0');
    assert.equal(reply.options.get(66)!.toString(), '10.0.0.1');
    assert.equal(reply.options.get(67)!.toString(), '/arch/boot/syslinux/lpxelinux.0');
    assert.equal(reply.options.get(209)!.toString(), 'boot/syslinux/archiso.cfg');
    assert.equal(reply.options.get(210)!.toString(), '/arch/');
    assert.equal(getPxeVendorOptions(reply.options)!.discoveryControl, 8);
    assert.deepEqual(reply.options.get(211), Buffer.from([0, 0, 0, 5]));

    const pi = createPacket();
    applyBoot(pi, { raspberryPi: true }, '10.0.0.1', true);
    assert.ok(parseSubOptions(pi.options.get(43))!.get(9)!.includes(Buffer.from('Raspberry Pi Boot')));

    const url = 'http://10.0.0.1:8080/' + 'x'.repeat(150) + '.ipxe';
    const ipxe = createPacket();
    applyBoot(ipxe, { bootFile: url }, '10.0.0.1', false);
    assert.equal(ipxe.file, '');
    assert.equal(ipxe.options.get(67)!.toString(), url);
    assert.equal(ipxe.options.has(43), false);

    assert.equal(applyBoot(createPacket(), { noBoot: true, bootFile: 'x' }, '10.0.0.1', true), null);

    const templ = createPacket();
    assert.equal(applyBoot(templ, { bootFile: 'http://{next-server}/boot.ipxe' }, '10.0.0.1', false), 'http://10.0.0.1/boot.ipxe');
    assert.equal(templ.options.get(67)!.toString(), 'http://10.0.0.1/boot.ipxe');
  });

  it('reads the client description from a packet', () => {
    const p = createPacket({ op: 1, chaddr: Buffer.concat([Buffer.from('b827eb112233', 'hex'), Buffer.alloc(10)]) });
    p.options.set(93, Buffer.from([0, 11]));
    p.options.set(77, Buffer.from('iPXE'));
    p.options.set(60, Buffer.from('PXEClient:Arch:00011:UNDI:003000'));
    const c = describeClient(p);
    assert.deepEqual([c.mac, c.arch, c.isIpxe, c.isPxe, c.key], ['b8:27:eb:11:22:33', 11, true, true, 'hw:1:b8:27:eb:11:22:33']);
  });
});
