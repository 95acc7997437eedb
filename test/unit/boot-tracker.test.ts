import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BootSignal } from '../../nodes/lib/boot-events/bus';
import { BootTracker, LIMITS, classifyFile, type BootEvent, type BootRecord, type TransferInfo } from '../../nodes/lib/boot-events/tracker';

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
    assert.deepEqual(last.client, { mac: MAC, ip: IP, arch: 'bios', firmware: 'bios' });
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

describe('boot tracker: what the sidebar shows', () => {
  const ack = (at: number, extra: Partial<Extract<BootSignal, { source: 'dhcp' }>> = {}): BootSignal => ({ source: 'dhcp', kind: 'ack', mac: MAC, ip: IP, at, ...extra });
  const sig = (source: 'tftp' | 'http' | 'nbd' | 'nfs', kind: 'start' | 'progress' | 'done' | 'error', file: string, bytes: number, size: number, at: number, extra = {}): BootSignal => ({
    source,
    kind,
    ip: IP,
    file,
    bytes,
    size,
    at,
    ...extra,
  });
  const only = (t: BootTracker) => {
    const r = t.records();
    assert.equal(r.length, 1, `one boot: ${JSON.stringify(r.map((x) => x.id))}`);
    return r[0]!;
  };

  it('names the firmware: option 93, iPXE (user class or a chain-loaded binary), a Raspberry Pi by MAC or boot files', () => {
    const cases: [BootSignal[], string | undefined, boolean][] = [
      [[ack(1, { arch: 'x86 BIOS' })], 'bios', false],
      [[ack(1, { arch: 'x64 UEFI' })], 'uefi-x64', false],
      [[ack(1, { arch: 'x86 UEFI' })], 'uefi-ia32', false],
      [[ack(1, { arch: 'ARM64 UEFI' })], 'uefi-arm64', false],
      [[ack(1, { arch: 'x64 UEFI HTTP' })], 'uefi-http', false],
      [[ack(1, { vendorClass: 'PXEClient:Arch:00007:UNDI:003016' })], 'uefi-x64', false],
      [[ack(1, { arch: 'x86 BIOS', userClass: ['iPXE'] })], 'bios', true],
      [[ack(1, { arch: 'x64 UEFI' }), sig('tftp', 'done', 'snponly.efi', 1, 1, 2)], 'uefi-x64', true],
      [[ack(1, { arch: 'x86 BIOS' }), sig('http', 'done', 'boot.ipxe', 1, 1, 2)], 'bios', true],
      [[{ source: 'dhcp', kind: 'ack', mac: 'dc:a6:32:01:02:03', ip: IP, arch: 'x86 BIOS', at: 1 }], 'rpi', false],
      [[ack(1, { vendorClass: 'PXEClient:Arch:00000:UNDI:002001' }), sig('tftp', 'done', '1a2b3c4d/start4.elf', 1, 1, 2)], 'rpi', false],
      [[ack(1)], undefined, false],
    ];
    for (const [signals, firmware, ipxe] of cases) {
      const t = new BootTracker({ stallAfterMs: 60000, rootfsStep: 10 });
      run(t, signals);
      const r = only(t);
      assert.equal(r.firmware, firmware, JSON.stringify(signals));
      assert.equal(!!r.ipxe, ipxe, JSON.stringify(signals));
    }
  });

  it('keeps the DHCP offer (mode, boot file, options 209/210, rule) and counts repeated offers as retries', () => {
    const t = new BootTracker({ stallAfterMs: 60000, rootfsStep: 10 });
    run(t, [
      { source: 'dhcp', kind: 'offer', mac: MAC, ip: IP, mode: 'full', bootFile: '/arch/boot/syslinux/lpxelinux.0', configFile: 'boot/syslinux/archiso.cfg', pathPrefix: '/arch/', bootRule: 'BIOS', at: 1 },
      { source: 'dhcp', kind: 'offer', mac: MAC, ip: IP, mode: 'full', bootFile: '/arch/boot/syslinux/lpxelinux.0', configFile: 'boot/syslinux/archiso.cfg', pathPrefix: '/arch/', bootRule: 'BIOS', at: 2 },
      { source: 'dhcp', kind: 'ack', mac: MAC, ip: IP, mode: 'full', bootFile: '/arch/boot/syslinux/lpxelinux.0', configFile: 'boot/syslinux/archiso.cfg', pathPrefix: '/arch/', bootRule: 'BIOS', hostname: 'lab-pc', at: 3 },
      // iPXE's own DHCP later brings no PXELINUX options: what the ROM was told stays.
      { source: 'dhcp', kind: 'ack', mac: MAC, ip: IP, userClass: ['iPXE'], at: 4 },
    ]);
    const r = only(t);
    assert.deepEqual(
      { ...r.dhcp },
      { kind: 'ack', at: 4, answers: 4, mode: 'full', bootFile: '/arch/boot/syslinux/lpxelinux.0', configFile: 'boot/syslinux/archiso.cfg', pathPrefix: '/arch/', bootRule: 'BIOS', userClass: ['iPXE'] },
    );
    assert.equal(r.retries, 1);
    assert.equal(r.hostname, 'lab-pc');
    assert.equal(r.ipxe, true);
  });

  it('follows each large transfer: bytes, size, a smoothed rate, the root method and the kernel file', () => {
    const t = new BootTracker({ stallAfterMs: 60000, rootfsStep: 1 });
    run(t, [
      ack(0),
      sig('tftp', 'start', 'arch/boot/x86_64/vmlinuz-linux', 0, 8_000_000, 1000, { store: 'archlinux.iso' }),
    ]);
    let r = only(t);
    assert.equal(r.stage, 'kernel', 'a transfer in flight is the stage');
    assert.deepEqual(pickT(r.transfers.kernel), { file: 'arch/boot/x86_64/vmlinuz-linux', via: 'tftp', bytes: 0, size: 8_000_000, state: 'active', rate: 0 });
    run(t, [sig('tftp', 'done', 'arch/boot/x86_64/vmlinuz-linux', 8_000_000, 8_000_000, 5000)]);
    r = only(t);
    // TFTP reports no progress: the average over the transfer is its rate.
    assert.equal(r.transfers.kernel!.rate, 2_000_000);
    assert.equal(r.kernel, 'arch/boot/x86_64/vmlinuz-linux');
    assert.equal(r.store, 'archlinux.iso');
    const sfs = 'arch/x86_64/airootfs.sfs';
    run(t, [sig('http', 'progress', sfs, 0, 100_000_000, 6000), sig('http', 'progress', sfs, 10_000_000, 100_000_000, 7000), sig('http', 'progress', sfs, 30_000_000, 100_000_000, 8000)]);
    r = only(t);
    const rate = r.transfers.rootfs!.rate;
    assert.ok(rate > 10_000_000 && rate < 20_000_000, `smoothed between 10 and 20 MB/s: ${rate}`);
    assert.deepEqual(r.root, { via: 'http', file: sfs });
    assert.equal(r.stage, 'rootfs');
    run(t, [sig('http', 'done', sfs, 100_000_000, 100_000_000, 12000)]);
    r = only(t);
    assert.equal(r.state, 'complete');
    assert.equal(r.transfers.rootfs!.state, 'done');
    assert.equal(r.endedAt, 12000);
  });

  it('moves a TFTP kernel and initramfs transfer with its progress reports (bytes, %, rate) before its end', () => {
    const t = new BootTracker({ stallAfterMs: 60000, rootfsStep: 1 });
    const k = 'arch/boot/x86_64/vmlinuz-linux';
    run(t, [ack(0), sig('tftp', 'start', k, 0, 8_000_000, 1000), sig('tftp', 'progress', k, 1_000_000, 8_000_000, 1250), sig('tftp', 'progress', k, 2_000_000, 8_000_000, 1500)]);
    let r = only(t);
    assert.deepEqual(pickT(r.transfers.kernel), { file: k, via: 'tftp', bytes: 2_000_000, size: 8_000_000, state: 'active', rate: 4_000_000 });
    run(t, [sig('tftp', 'progress', k, 4_000_000, 8_000_000, 2000)]);
    r = only(t);
    assert.equal(r.transfers.kernel!.bytes, 4_000_000, 'half way');
    assert.equal(r.stage, 'kernel');
    assert.equal(r.timeline.filter((e) => e.stage === 'kernel').length, 0, 'the stage is reached at its end, not by progress');
    run(t, [sig('tftp', 'done', k, 8_000_000, 8_000_000, 3000)]);
    r = only(t);
    assert.equal(r.transfers.kernel!.state, 'done');
    assert.equal(r.transfers.kernel!.bytes, 8_000_000);
    assert.ok(r.transfers.kernel!.rate > 3_000_000, String(r.transfers.kernel!.rate));
    assert.equal(r.timeline.filter((e) => e.stage === 'kernel').length, 1);
    const i = 'arch/boot/x86_64/initramfs-linux.img';
    run(t, [sig('tftp', 'start', i, 0, 20_000_000, 3100), sig('tftp', 'progress', i, 5_000_000, 20_000_000, 3600)]);
    r = only(t);
    assert.equal(r.stage, 'initrd');
    assert.deepEqual([r.transfers.initrd!.bytes, r.transfers.initrd!.size, r.transfers.initrd!.state], [5_000_000, 20_000_000, 'active']);
  });

  it('keeps the not-found probes quietly (the last few), without stalling the boot', () => {
    const t = new BootTracker({ stallAfterMs: 60000, rootfsStep: 10, failAfterMs: 5000 });
    run(t, [ack(0), sig('tftp', 'done', 'boot/syslinux/lpxelinux.0', 1, 1, 1)]);
    const probes = Array.from({ length: 12 }, (_, i) => sig('tftp', 'error', `boot/syslinux/pxelinux.cfg/probe-${i}`, 0, 0, 10 + i, { error: 'File not found', notFound: true }));
    run(t, probes);
    run(t, [sig('tftp', 'done', 'boot/syslinux/syslinux.cfg', 10, 10, 30)]);
    assert.deepEqual(t.tick(40_000), []);
    const r = only(t);
    assert.equal(r.state, 'booting');
    assert.equal(r.probes.length, 8);
    assert.deepEqual(
      r.probes.map((p) => p.file),
      Array.from({ length: 8 }, (_, i) => `boot/syslinux/pxelinux.cfg/probe-${i + 4}`),
    );
    assert.ok(r.files.some((f) => f.file === 'boot/syslinux/pxelinux.cfg/probe-11' && f.state === 'notFound'));
  });

  it('a missing kernel stalls the boot within seconds, with the TFTP error and the stage', () => {
    const t = new BootTracker({ stallAfterMs: 120000, rootfsStep: 10, failAfterMs: 5000 });
    run(t, [ack(0), sig('tftp', 'done', 'boot/syslinux/lpxelinux.0', 1, 1, 1)]);
    run(t, [sig('tftp', 'error', 'arch/boot/x86_64/vmlinuz-linux', 0, 0, 2000, { error: 'ENOENT', notFound: true })]);
    assert.deepEqual(t.tick(6000), [], 'not before failAfterMs');
    const [ev] = t.tick(7001);
    assert.equal(ev?.stage, 'stalled');
    assert.equal(ev?.stalledStage, 'kernel');
    assert.deepEqual(ev?.error, { via: 'tftp', file: 'arch/boot/x86_64/vmlinuz-linux', message: 'ENOENT', at: 2000, notFound: true });
    const r = only(t);
    assert.equal(r.state, 'stalled');
    assert.equal(r.stalledStage, 'kernel');
    assert.equal(r.stallError?.file, 'arch/boot/x86_64/vmlinuz-linux');
    assert.equal(r.transfers.kernel?.state, 'failed');
    assert.equal(r.timeline.at(-1)!.error, 'TFTP: file not found arch/boot/x86_64/vmlinuz-linux');
  });

  it('a kernel missing under one name but found under another (a probe) does not stall', () => {
    const t = new BootTracker({ stallAfterMs: 120000, rootfsStep: 10, failAfterMs: 5000 });
    run(t, [ack(0), sig('tftp', 'error', 'vmlinuz-linux.c32', 0, 0, 100, { notFound: true }), sig('tftp', 'start', 'vmlinuz-linux', 0, 9, 200)]);
    assert.deepEqual(t.tick(10000), []);
    assert.equal(only(t).state, 'booting');
    assert.equal(only(t).retries, 0);
  });

  it('stalls after the stall time with the last error when the boot just stops (ldlinux.c32 missing)', () => {
    const t = new BootTracker({ stallAfterMs: 30000, rootfsStep: 10 });
    run(t, [ack(0, { bootFile: 'boot/syslinux/lpxelinux.0' }), sig('tftp', 'done', 'boot/syslinux/lpxelinux.0', 1, 1, 1)]);
    for (const [i, p] of ['ldlinux.c32', 'boot/isolinux/ldlinux.c32', 'isolinux/ldlinux.c32', 'boot/syslinux/ldlinux.c32'].entries()) {
      run(t, [sig('tftp', 'error', p, 0, 0, 100 + i, { error: 'File not found', notFound: true })]);
    }
    const [ev] = t.tick(30200);
    assert.equal(ev?.stalledStage, 'loader');
    assert.equal(ev?.error?.file, 'boot/syslinux/ldlinux.c32');
    const r = only(t);
    assert.equal(r.stallError?.file, 'boot/syslinux/ldlinux.c32');
    assert.equal(r.hint, undefined);
  });

  it('a boot that stops after its menu files stalls with a hint instead of an old probe', () => {
    const t = new BootTracker({ stallAfterMs: 30000, rootfsStep: 10 });
    run(t, [
      ack(0, { bootFile: 'boot/syslinux/lpxelinux.0' }),
      sig('tftp', 'done', 'boot/syslinux/lpxelinux.0', 1, 1, 1),
      sig('tftp', 'error', 'boot/syslinux/pxelinux.cfg/default', 0, 0, 2, { notFound: true }),
      sig('tftp', 'done', 'boot/syslinux/archiso_pxe.cfg', 1, 1, 3),
      sig('tftp', 'done', 'boot/syslinux/menu.c32', 1, 1, 4),
    ]);
    t.tick(31000);
    const r = only(t);
    assert.equal(r.state, 'stalled');
    assert.equal(r.hint, 'menu');
    assert.equal(r.stallError, undefined);
  });

  it('stays within its bounds: 200 boots (finished ones leave first), 40 timeline entries, 32 files, 8 probes', () => {
    const t = new BootTracker({ stallAfterMs: 1000, rootfsStep: 1, maxBoots: 200 });
    const mac = (i: number): string => `52:54:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    const ip = (i: number): string => `10.1.${i >> 8}.${i & 255}`;
    // 150 finished, then 100 booting: 50 finished are pushed out, every booting one stays.
    for (let i = 0; i < 150; i++) {
      t.handle({ source: 'dhcp', kind: 'ack', mac: mac(i), ip: ip(i), at: i });
      t.handle({ source: 'http', kind: 'done', ip: ip(i), file: 'arch/x86_64/airootfs.sfs', bytes: 1, size: 1, at: i + 1 });
    }
    for (let i = 150; i < 250; i++) t.handle({ source: 'dhcp', kind: 'ack', mac: mac(i), ip: ip(i), at: 1000 + i });
    const recs = t.records();
    assert.equal(recs.length, 200);
    assert.equal(recs.filter((r) => r.state === 'booting').length, 100);
    assert.equal(recs.at(-1)!.mac, mac(50), 'the oldest 50 finished boots went');

    const one = new BootTracker({ stallAfterMs: 100, rootfsStep: 1 });
    one.handle({ source: 'dhcp', kind: 'ack', mac: MAC, ip: IP, at: 0 });
    let at = 1;
    // Progress every percent, with a stall and a resume between each: far more than 40 entries' worth.
    for (let p = 0; p <= 100; p++) {
      one.handle({ source: 'nfs', kind: p === 100 ? 'done' : 'progress', ip: IP, file: 'arch/x86_64/airootfs.sfs', bytes: p, size: 100, at: (at += 10) });
      if (p < 100 && p % 3 === 0) one.tick((at += 1000));
    }
    for (let i = 0; i < 100; i++) one.handle({ source: 'tftp', kind: 'error', ip: IP, file: `probe/${i}/${'x'.repeat(400)}`, bytes: 0, size: 0, at: at + i, notFound: true });
    const r = one.records()[0]!;
    assert.ok(r.timeline.length <= LIMITS.timeline, `timeline ${r.timeline.length}`);
    assert.equal(r.timeline[0]!.stage, 'dhcp', 'the first entry stays');
    assert.equal(r.timeline.at(-1)!.stage, 'complete');
    assert.equal(r.files.length, LIMITS.files);
    assert.equal(r.probes.length, LIMITS.probes);
    assert.ok(r.files.every((f) => f.file.length <= LIMITS.fileName));
    assert.ok(JSON.stringify(r).length < 20000, `one boot serialises small: ${JSON.stringify(r).length}`);
  });

  it('events go out every rootfs step while the timeline keeps every 10 %', () => {
    const t = new BootTracker({ stallAfterMs: 60000, rootfsStep: 1, timelineStep: 10 });
    t.handle(ack(0));
    const events = [];
    for (let p = 0; p <= 100; p += 5) events.push(...t.handle(http('arch/x86_64/airootfs.sfs', p, 100, p + 1, p === 100 ? 'done' : 'progress')));
    assert.equal(events.filter((e) => e.stage === 'rootfs').length, 21);
    assert.deepEqual(
      only(t).timeline.filter((e) => e.stage === 'rootfs').map((e) => e.percent),
      [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
    );
    assert.ok(events.every((e) => e.bootId === only(t).id));
  });

  it('restores kept boots as history: one still booting shows as interrupted, a new boot of that MAC starts afresh', () => {
    const t = new BootTracker({ stallAfterMs: 60000, rootfsStep: 10 });
    run(t, [ack(0), tftp('arch/boot/x86_64/vmlinuz-linux', 1, 'start')]);
    const saved = JSON.parse(JSON.stringify(t.records())) as BootRecord[];
    const u = new BootTracker({ stallAfterMs: 60000, rootfsStep: 10 });
    u.restore(saved);
    const r = u.records()[0]!;
    assert.equal(r.state, 'stalled');
    assert.equal(r.interrupted, true);
    assert.equal(r.transfers.kernel?.state, 'failed');
    assert.equal(u.activeCount, 0);
    run(u, [ack(100)]);
    assert.equal(u.records().length, 2);
    assert.equal(u.records()[0]!.state, 'booting');
  });

  it('clear() forgets finished and stalled boots, not booting ones', () => {
    const t = new BootTracker({ stallAfterMs: 1000, rootfsStep: 10 });
    const removed: string[] = [];
    const u = new BootTracker({ stallAfterMs: 1000, rootfsStep: 10, onRemove: (id) => removed.push(id) });
    for (const tr of [t, u]) {
      tr.handle({ source: 'dhcp', kind: 'ack', mac: '52:54:00:00:00:01', ip: '10.0.0.1', at: 0 });
      tr.handle({ source: 'dhcp', kind: 'ack', mac: '52:54:00:00:00:02', ip: '10.0.0.2', at: 0 });
      tr.tick(5000);
      tr.handle({ source: 'dhcp', kind: 'ack', mac: '52:54:00:00:00:03', ip: '10.0.0.3', at: 5000 });
      assert.equal(tr.clear(), 2);
      assert.deepEqual(
        tr.records().map((r) => r.mac),
        ['52:54:00:00:00:03'],
      );
    }
    assert.equal(removed.length, 2);
  });
});

function pickT(t: TransferInfo | undefined): Partial<TransferInfo> | undefined {
  if (!t) return undefined;
  const { file, via, bytes, size, state, rate } = t;
  return { file, via, bytes, size, state, rate };
}
