import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ARCH_BIOS_DEFAULTS, BootRules, resolveBoot, type BootRule } from '../../nodes/lib/dhcp/boot-rules';
import { describeClient, type ClientInfo } from '../../nodes/lib/dhcp/client';
import { createPacket } from '../../nodes/lib/dhcp/codec';

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

  it('decides what a client boots, resolved for it: next-server, {next-server}, TFTP server, HTTP Boot URL', () => {
    assert.deepEqual(br.decide(client({ arch: 0 }), '10.0.0.1'), {
      source: 'bios',
      noBoot: false,
      nextServer: '10.0.0.1',
      bootFile: '/arch/boot/syslinux/lpxelinux.0',
      httpBoot: false,
      tftpServer: '10.0.0.1',
      configFile: 'boot/syslinux/archiso.cfg',
      pathPrefix: '/arch/',
      raspberryPi: false,
      options: [],
    });
    // The rule's own next-server, and the TFTP server follows it.
    const arm = br.decide(client({ arch: 11 }), '10.0.0.1')!;
    assert.deepEqual([arm.nextServer, arm.tftpServer, arm.bootFile], ['10.0.0.9', '10.0.0.9', 'grubaa64.efi']);
    assert.equal(br.decide(client({ arch: 99, vendorClass: 'x' }), '10.0.0.1'), null);
    const pi = br.decide(client({ mac: 'dc:a6:32:01:02:03' }), '10.0.0.1')!;
    assert.deepEqual([pi.raspberryPi, pi.bootFile, pi.tftpServer], [true, undefined, undefined]);

    const sel = (action: BootRule) => ({ source: 'r', action });
    assert.equal(resolveBoot(sel({ match: {}, bootFile: 'http://{next-server}/boot.ipxe' }), client({}), '10.0.0.1').bootFile, 'http://10.0.0.1/boot.ipxe');
    // A UEFI HTTP Boot client: a URL on the next-server, no TFTP server.
    const http = resolveBoot(sel({ match: {}, bootFile: 'EFI/BOOT/BOOTX64.EFI', tftpServer: 'tftp.lan' }), client({ isHttpBoot: true }), '10.0.0.1');
    assert.deepEqual([http.httpBoot, http.bootFile, http.tftpServer], [true, 'http://10.0.0.1/EFI/BOOT/BOOTX64.EFI', undefined]);
    assert.equal(resolveBoot(sel({ match: {}, bootFile: 'x.0', tftpServer: 'tftp.lan' }), client({}), '10.0.0.1').tftpServer, 'tftp.lan');
    assert.equal(resolveBoot(sel({ match: {}, noBoot: true, bootFile: 'x' }), client({}), '10.0.0.1').noBoot, true);
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
