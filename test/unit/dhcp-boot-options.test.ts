import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { writeBoot } from '../../nodes/lib/dhcp/boot-options';
import type { BootDecision } from '../../nodes/lib/dhcp/boot-rules';
import { createPacket } from '../../nodes/lib/dhcp/codec';
import { getPxeVendorOptions, parseSubOptions } from '../../nodes/lib/dhcp/options';

/** A decision as boot-rules.ts makes them; `over` changes what a case needs. */
function decision(over: Partial<BootDecision>): BootDecision {
  return { source: 'test', noBoot: false, nextServer: '10.0.0.1', httpBoot: false, raspberryPi: false, options: [], ...over };
}

describe('writing a boot decision into a reply', () => {
  it('sets siaddr, file, 66, 67, 209, 210, the PXE vendor options and extras', () => {
    const reply = createPacket();
    const given = writeBoot(
      reply,
      decision({
        bootFile: '/arch/boot/syslinux/lpxelinux.0',
        tftpServer: '10.0.0.1',
        configFile: 'boot/syslinux/archiso.cfg',
        pathPrefix: '/arch/',
        options: [{ code: 211, kind: 'u32', value: '5' }],
      }),
      true,
    );
    assert.equal(given, '/arch/boot/syslinux/lpxelinux.0');
    assert.equal(reply.siaddr, '10.0.0.1');
    assert.equal(reply.file, '/arch/boot/syslinux/lpxelinux.0');
    assert.equal(reply.options.get(66)!.toString(), '10.0.0.1');
    assert.equal(reply.options.get(67)!.toString(), '/arch/boot/syslinux/lpxelinux.0');
    assert.equal(reply.options.get(209)!.toString(), 'boot/syslinux/archiso.cfg');
    assert.equal(reply.options.get(210)!.toString(), '/arch/');
    assert.equal(getPxeVendorOptions(reply.options)!.discoveryControl, 8);
    assert.deepEqual(reply.options.get(211), Buffer.from([0, 0, 0, 5]));
    assert.equal(reply.options.has(60), false);
  });

  it('gives a Raspberry Pi its option 43 and a non-PXE client none', () => {
    const pi = createPacket();
    writeBoot(pi, decision({ raspberryPi: true }), true);
    assert.ok(parseSubOptions(pi.options.get(43))!.get(9)!.includes(Buffer.from('Raspberry Pi Boot')));
    const plain = createPacket();
    writeBoot(plain, decision({ bootFile: 'x.0' }), false);
    assert.equal(plain.options.has(43), false);
  });

  it('puts a URL too long for the file field in option 67 alone', () => {
    const url = 'http://10.0.0.1:8080/' + 'x'.repeat(150) + '.ipxe';
    const ipxe = createPacket();
    assert.equal(writeBoot(ipxe, decision({ bootFile: url }), false), url);
    assert.equal(ipxe.file, '');
    assert.equal(ipxe.options.get(67)!.toString(), url);
  });

  it('answers a UEFI HTTP Boot client with option 60 "HTTPClient" and no PXE vendor options', () => {
    const reply = createPacket();
    writeBoot(reply, decision({ httpBoot: true, bootFile: 'http://10.0.0.1/BOOTX64.EFI' }), true);
    assert.equal(reply.options.get(60)!.toString(), 'HTTPClient');
    assert.equal(reply.options.has(43), false);
    assert.equal(reply.options.has(66), false);
  });

  it('writes nothing for a no-boot decision', () => {
    const reply = createPacket();
    assert.equal(writeBoot(reply, decision({ noBoot: true, bootFile: 'x' }), true), null);
    assert.equal(reply.options.size, 0);
    assert.equal(reply.siaddr, '0.0.0.0');
  });
});
