import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BootSignal } from '../../nodes/lib/boot-events/bus';
import { BootTracker, classifyFile, type BootEvent } from '../../nodes/lib/boot-events/tracker';

const MAC = '52:54:00:12:34:56';
const IP = '10.9.0.50';

function run(tracker: BootTracker, signals: BootSignal[]): BootEvent[] {
  return signals.flatMap((s) => tracker.handle(s));
}

const tftp = (file: string, at: number, kind: 'start' | 'done' = 'done'): BootSignal => ({ source: 'tftp', kind, ip: IP, file, bytes: 100, size: 100, at });
const http = (file: string, bytes: number, size: number, at: number, kind: 'progress' | 'done' = 'progress'): BootSignal => ({ source: 'http', kind, ip: IP, file, bytes, size, at });

describe('boot tracker', () => {
  it('classifies the files a PXE boot fetches', () => {
    assert.equal(classifyFile('/boot/syslinux/lpxelinux.0'), 'loader');
    assert.equal(classifyFile('snponly.efi'), 'loader');
    assert.equal(classifyFile('/arch/boot/x86_64/vmlinuz-linux'), 'kernel');
    assert.equal(classifyFile('arch/boot/x86_64/initramfs-linux.img'), 'initrd');
    assert.equal(classifyFile('/arch/boot/x86_64/archiso.img'), 'initrd');
    assert.equal(classifyFile('/arch/boot/x86_64/vmlinuz'), 'kernel');
    assert.equal(classifyFile('/arch/boot/intel-ucode.img'), null);
    assert.equal(classifyFile('arch/x86_64/airootfs.sfs'), 'rootfs');
    assert.equal(classifyFile('boot/syslinux/ldlinux.c32'), null);
    assert.equal(classifyFile('boot/syslinux/syslinux.cfg'), null);
    assert.equal(classifyFile('custom/loader.bin', '/custom/loader.bin'), 'loader');
  });

  it('follows a BIOS boot from DHCP to a complete rootfs download, in order, once per stage', () => {
    const t = new BootTracker({ stallAfterMs: 60000, rootfsStep: 25 });
    const events = run(t, [
      { source: 'dhcp', kind: 'offer', mac: MAC, ip: IP, at: 1 },
      { source: 'dhcp', kind: 'ack', mac: MAC, ip: IP, arch: 'bios', bootFile: 'boot/syslinux/lpxelinux.0', at: 2 },
      tftp('boot/syslinux/lpxelinux.0', 3, 'start'),
      tftp('boot/syslinux/lpxelinux.0', 4),
      tftp('boot/syslinux/lpxelinux.0', 4.5),
      tftp('boot/syslinux/ldlinux.c32', 5),
      tftp('arch/boot/x86_64/vmlinuz-linux', 6),
      tftp('arch/boot/x86_64/initramfs-linux.img', 7),
      http('arch/x86_64/airootfs.sfs', 0, 1000, 8),
      http('arch/x86_64/airootfs.sfs', 100, 1000, 9),
      http('arch/x86_64/airootfs.sfs', 300, 1000, 10),
      http('arch/x86_64/airootfs.sfs', 510, 1000, 11),
      http('arch/x86_64/airootfs.sfs', 1000, 1000, 12, 'done'),
    ]);
    assert.deepEqual(
      events.map((e) => `${e.stage}${e.percent !== undefined ? ':' + e.percent : ''}`),
      ['dhcp', 'loader', 'kernel', 'initrd', 'rootfs:0', 'rootfs:25', 'rootfs:50', 'rootfs:100', 'complete'],
    );
    const last = events.at(-1)!;
    assert.deepEqual(last.client, { mac: MAC, ip: IP, arch: 'bios' });
    assert.equal(last.timeline.length, events.length);
    assert.equal(t.activeCount, 0);
  });

  it('reports a boot that goes quiet once, and a new DHCP starts a fresh timeline', () => {
    const t = new BootTracker({ stallAfterMs: 1000, rootfsStep: 10 });
    run(t, [{ source: 'dhcp', kind: 'ack', mac: MAC, ip: IP, at: 0 }, tftp('lpxelinux.0', 100)]);
    assert.deepEqual(t.tick(900), []);
    const stalled = t.tick(1200);
    assert.equal(stalled.length, 1);
    assert.equal(stalled[0]!.stage, 'stalled');
    assert.deepEqual(t.tick(5000), [], 'reported once');
    const again = run(t, [{ source: 'dhcp', kind: 'ack', mac: MAC, ip: IP, at: 6000 }]);
    assert.equal(again[0]!.stage, 'dhcp');
    assert.equal(again[0]!.timeline.length, 1);
  });

  it('treats a proxyDHCP offer as boot information and NBD reads as rootfs progress', () => {
    const t = new BootTracker({ stallAfterMs: 1000, rootfsStep: 50 });
    const events = run(t, [
      { source: 'dhcp', kind: 'offer', mac: MAC, bootFile: 'lpxelinux.0', at: 0 },
      { source: 'dhcp', kind: 'ack', mac: MAC, ip: IP, at: 1 },
      { source: 'nbd', kind: 'progress', ip: IP, file: '', bytes: 600, size: 1000, at: 2 },
      { source: 'nbd', kind: 'done', ip: IP, file: '', bytes: 1000, size: 1000, at: 3 },
    ]);
    assert.deepEqual(events.map((e) => e.stage), ['dhcp', 'rootfs', 'rootfs', 'complete']);
    assert.deepEqual(events.filter((e) => e.stage === 'rootfs').map((e) => e.percent), [50, 100]);
  });

  it('follows an NFS boot: airootfs.sfs read over NFS is the rootfs, read whole it completes the boot', () => {
    const t = new BootTracker({ stallAfterMs: 1000, rootfsStep: 25 });
    const nfs = (file: string, bytes: number, size: number, at: number, kind: 'progress' | 'done'): BootSignal => ({ source: 'nfs', kind, ip: IP, file, bytes, size, at });
    const events = run(t, [
      { source: 'dhcp', kind: 'ack', mac: MAC, ip: IP, at: 0 },
      tftp('arch/boot/x86_64/vmlinuz-linux', 1),
      // archiso reads the checksum beside it first: no boot stage.
      nfs('arch/x86_64/airootfs.sha512', 100, 100, 2, 'done'),
      nfs('arch/x86_64/airootfs.sfs', 300, 1000, 3, 'progress'),
      nfs('arch/x86_64/airootfs.sfs', 1000, 1000, 4, 'done'),
    ]);
    assert.deepEqual(events.map((e) => e.stage), ['dhcp', 'kernel', 'rootfs', 'rootfs', 'complete']);
    assert.deepEqual(events.filter((e) => e.stage === 'rootfs').map((e) => e.percent), [25, 100]);
    assert.equal(events.at(-1)!.timeline.at(-1)!.via, 'nfs');
  });

  it('ignores traffic that is no boot stage', () => {
    const t = new BootTracker({ stallAfterMs: 1000, rootfsStep: 10 });
    assert.deepEqual(run(t, [tftp('pxelinux.cfg/default', 1), http('index.html', 1, 1, 2, 'done')]), []);
    assert.equal(t.activeCount, 0);
  });
});

describe('boot tracker in proxy mode', () => {
  it('joins a timeline seen by IP to the MAC once a DHCP request names the address', () => {
    const t = new BootTracker({ stallAfterMs: 60000, rootfsStep: 100 });
    const events = run(t, [
      { source: 'dhcp', kind: 'offer', mac: MAC, bootFile: 'boot/syslinux/lpxelinux.0', at: 1 },
      tftp('boot/syslinux/lpxelinux.0', 2),
      tftp('arch/boot/x86_64/vmlinuz-linux', 3),
      { source: 'dhcp', kind: 'request', mac: MAC, ip: IP, at: 4 },
      http('arch/x86_64/airootfs.sfs', 1000, 1000, 5, 'done'),
    ]);
    assert.deepEqual(events.map((e) => e.stage), ['dhcp', 'loader', 'kernel', 'rootfs', 'complete']);
    const last = events.at(-1)!;
    assert.equal(last.client.mac, MAC);
    assert.deepEqual(last.timeline.map((e) => e.stage), ['dhcp', 'loader', 'kernel', 'rootfs', 'complete']);
  });
});
