/**
 * bench/storm/record.ts reduces the servers' events of a recorded boot to the client's steps: in
 * proxy mode the port-4011 REQUEST (the one our node answered) becomes the DHCP step's
 * proxyRequest; the port-67 REQUEST, which our node leaves to the address server and logs with a
 * reason, is not a step of its own; a resent DISCOVER is the same exchange.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reduce } from '../../bench/storm/record';

const who = { mac: '52:54:00:12:35:01', arch: 0, vendorClass: 'PXEClient:Arch:00000:UNDI:002001', userClass: ['iPXE'] };
const proxyBoot: { topic: string; payload: Record<string, unknown> }[] = [
  { topic: 'dhcp/discover', payload: { ...who, type: 'discover', ip: null, xid: 7 } },
  { topic: 'dhcp/discover', payload: { ...who, type: 'discover', ip: null, xid: 7 } },
  { topic: 'dhcp/offer', payload: { ...who, type: 'offer', ip: null, xid: 7, bootFile: '/arch/boot/syslinux/lpxelinux.0' } },
  { topic: 'dhcp/request', payload: { ...who, type: 'request', ip: '10.124.0.160', xid: 7, reason: 'addresses come from the other DHCP server' } },
  { topic: 'dhcp/request', payload: { ...who, type: 'request', ip: '10.124.0.160', xid: 7, userClass: ['iPXE', 'x'] } },
  { topic: 'dhcp/ack', payload: { ...who, type: 'ack', ip: '10.124.0.160', xid: 7, bootFile: '/arch/boot/syslinux/lpxelinux.0' } },
  { topic: 'tftp/done', payload: { type: 'done', file: '/arch/boot/syslinux/lpxelinux.0', requested: { blksize: '1432', tsize: '0' } } },
];

describe('storm recording reduce', () => {
  it('proxy mode: one DHCP step with the port-4011 REQUEST as its proxyRequest, then the TFTP steps', () => {
    const r = reduce(proxyBoot, 'archiso-wiki.iso', 'proxy');
    assert.deepEqual(r.steps, [
      { proto: 'dhcp', vendorClass: who.vendorClass, userClass: ['iPXE'], arch: 0, proxy: true, proxyRequest: { vendorClass: who.vendorClass, userClass: ['iPXE', 'x'], arch: 0 } },
      { proto: 'tftp', file: '/arch/boot/syslinux/lpxelinux.0', options: [{ name: 'blksize', value: '1432' }, { name: 'tsize', value: '0' }], outcome: 'done' },
    ]);
    assert.match(r.how, /proxy DHCP mode/);
  });

  it('full mode: REQUESTs are not port-4011 requests', () => {
    const r = reduce(proxyBoot, 'archiso-wiki.iso', 'full');
    assert.equal(r.steps.filter((s) => s.proto === 'dhcp').length, 1);
    assert.equal(r.steps[0]!.proto === 'dhcp' && (r.steps[0]!.proxyRequest ?? r.steps[0]!.proxy), undefined);
  });

  it('proxy mode without a port-4011 REQUEST (what QEMU\'s iPXE ROM sends): a proxy DHCP step with none', () => {
    const r = reduce(proxyBoot.filter((e) => !(e.topic === 'dhcp/request' && !e.payload.reason) && e.topic !== 'dhcp/ack'), 'archiso-wiki.iso', 'proxy');
    assert.deepEqual(r.steps[0], { proto: 'dhcp', vendorClass: who.vendorClass, userClass: ['iPXE'], arch: 0, proxy: true });
  });

  it('proxy mode: a port-4011 REQUEST with no DISCOVER before it is refused', () => {
    assert.throws(() => reduce(proxyBoot.slice(4), 'archiso-wiki.iso', 'proxy'), /without a DISCOVER/);
  });
});
