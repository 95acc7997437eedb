import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
import bootEventsNode from '../../nodes/pxe-boot-events';
import { bootBus } from '../../nodes/lib/boot-events/bus';
import type { NodeMessage } from '../../nodes/lib/red';

helper.init(require.resolve('node-red'));

describe('pxe-boot-events node in a Node-RED runtime', () => {
  before(() => helper.startServer());
  afterEach(() => helper.unload());
  after(() => helper.stopServer());

  it('turns signals from the serving nodes into one message per stage, with the timeline', async () => {
    await helper.load(bootEventsNode, [
      { id: 'b', type: 'pxe-boot-events', stallSeconds: 60, rootfsStep: 50, wires: [['h']] },
      { id: 'h', type: 'helper' },
    ]);
    const got: NodeMessage[] = [];
    helper.getNode('h').on('input', (m: NodeMessage) => got.push(m));
    const ip = '10.1.2.3';
    bootBus.publish({ source: 'dhcp', kind: 'ack', mac: 'AA:BB:CC:00:11:22', ip, arch: 'x64 UEFI', bootFile: 'snponly.efi', at: Date.now() });
    bootBus.publish({ source: 'tftp', kind: 'done', ip, file: 'snponly.efi', bytes: 1, size: 1, at: Date.now() });
    bootBus.publish({ source: 'http', kind: 'done', ip, file: 'arch/boot/x86_64/vmlinuz-linux', bytes: 1, size: 1, at: Date.now() });
    bootBus.publish({ source: 'http', kind: 'done', ip, file: 'arch/boot/x86_64/initramfs-linux.img', bytes: 1, size: 1, at: Date.now() });
    bootBus.publish({ source: 'http', kind: 'done', ip, file: 'arch/x86_64/airootfs.sfs', bytes: 10, size: 10, at: Date.now() });
    // Node-RED delivers messages asynchronously.
    for (let i = 0; i < 100 && got.length < 6; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(got.map((m) => m.topic), ['boot/dhcp', 'boot/loader', 'boot/kernel', 'boot/initrd', 'boot/rootfs', 'boot/complete']);
    const last = got.at(-1)!.payload as { mac: string; arch: string; kernel: string; timeline: unknown[]; time: string };
    assert.equal(last.mac, 'aa:bb:cc:00:11:22');
    assert.equal(last.arch, 'x64 UEFI');
    assert.equal(last.kernel, 'arch/boot/x86_64/vmlinuz-linux');
    assert.equal(last.timeline.length, 6);
    assert.ok(!Number.isNaN(Date.parse(last.time)));
  });

  it('stops listening when closed', async () => {
    await helper.load(bootEventsNode, [{ id: 'b', type: 'pxe-boot-events', wires: [] }]);
    const before = bootBus.listenerCount('signal');
    await helper.unload();
    assert.equal(bootBus.listenerCount('signal'), before - 1);
  });
});
