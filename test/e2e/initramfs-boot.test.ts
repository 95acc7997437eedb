// Boots the fixture kernel + initramfs directly in QEMU (user-mode networking: the guest reaches
// the host's loopback as 10.0.2.2, so all traffic stays on this machine) against a throwaway HTTP
// server on 127.0.0.1 (and nbd-server / nfs-ganesha / our NFS server in private namespaces), and checks the
// PXE-TEST-MARKER line the initramfs prints on ttyS0 (no console=ttyS0 on these command lines
// either: /init writes to the serial port itself, as it must under archiso's own menus).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as os from 'node:os';
import { execFileSync } from 'node:child_process';
import { bootQemu, ensureFixtures, fixturePath, ganeshaMissing, isolatedCommand, isolatedNfsCommand, repoRoot, type BootResult, type FixtureManifest } from '../fixtures/fixtures';
import { plainSerial } from '../lab/qemu';

const haveQemu = spawnSync('qemu-system-x86_64', ['--version']).status === 0;
const haveNbdServer = fs.existsSync('/usr/bin/nbd-server');
const isRoot = process.getuid?.() === 0;

function report(name: string, r: BootResult): string {
  return `${name}: ${r.outcome} after ${(r.elapsedMs / 1000).toFixed(1)} s${r.failure ? ` (${r.failure})` : ''}\n--- serial tail ---\n${plainSerial(r.log).slice(-3000)}`;
}

describe('fixture initramfs boots in QEMU and prints the marker', { skip: haveQemu ? false : 'qemu-system-x86_64 missing', concurrency: 2 }, () => {
  let manifest: FixtureManifest;
  let server: http.Server;
  let port = 0;
  const requests: string[] = [];

  before(async () => {
    manifest = ensureFixtures();
    const sfs = fixturePath('airootfs.sfs');
    server = http.createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      if (req.method === 'GET' && req.url === '/arch/x86_64/airootfs.sfs') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': fs.statSync(sfs).size });
        fs.createReadStream(sfs).pipe(res);
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const kernelArgs = () => ['-kernel', fixturePath('vmlinuz'), '-initrd', fixturePath('initramfs.img')];

  it('virtio-net, DHCP (no ip=), explicit archiso_http_srv', async (t) => {
    const r = await bootQemu([
      ...kernelArgs(),
      '-append', `archiso_http_srv=http://10.0.2.2:${port}/ archisobasedir=arch`,
      '-netdev', 'user,id=n0', '-device', 'virtio-net-pci,netdev=n0',
    ]);
    t.diagnostic(`marker after ${(r.elapsedMs / 1000).toFixed(1)} s`);
    assert.equal(r.outcome, 'marker', report('virtio', r));
    assert.equal(r.marker?.sha256, manifest.marker.sha256);
    assert.equal(r.marker?.content, manifest.marker.content);
    assert.equal(r.marker?.method, 'http');
    assert.equal(r.marker?.server, '10.0.2.2', 'DHCP server id / siaddr of slirp');
    assert.match(r.log, /udhcpc on eth0/);
    assert.ok(requests.includes('GET /arch/x86_64/airootfs.sfs'));
    assert.equal(r.marker?.iso, '-', 'the bare initramfs.img carries no /etc/pxe-test-iso');
    assert.doesNotMatch(r.log, /console=ttyS0/);
  });

  it('e1000, SYSAPPEND 3 style ip= + BOOTIF=, ${pxeserver} substituted', async (t) => {
    const r = await bootQemu([
      ...kernelArgs(),
      '-append',
      `archisobasedir=arch archiso_http_srv=http://\${pxeserver}:${port}/ ` +
        'ip=10.0.2.15:10.0.2.2:10.0.2.2:255.255.255.0 BOOTIF=01-52-54-00-12-34-56',
      '-netdev', 'user,id=n0', '-device', 'e1000,netdev=n0,mac=52:54:00:12:34:56',
    ]);
    t.diagnostic(`marker after ${(r.elapsedMs / 1000).toFixed(1)} s`);
    assert.equal(r.outcome, 'marker', report('e1000', r));
    assert.equal(r.marker?.sha256, manifest.marker.sha256);
    assert.equal(r.marker?.content, manifest.marker.content);
    assert.equal(r.marker?.server, '10.0.2.2', 'server field of ip=');
    assert.equal(r.marker?.iso, '-');
    assert.match(r.log, /static network setup from ip=/);
  });

  it('fails fast with PXE-TEST-FAIL when the HTTP server has no airootfs.sfs', async () => {
    const r = await bootQemu([
      ...kernelArgs(),
      '-append', `archiso_http_srv=http://10.0.2.2:${port}/ archisobasedir=nope`,
      '-netdev', 'user,id=n0', '-device', 'virtio-net-pci,netdev=n0',
    ]);
    assert.equal(r.outcome, 'fail', report('404', r));
    assert.match(r.failure ?? '', /wget .*nope\/x86_64\/airootfs\.sfs/);
  });

  it('NBD: nbd-client attaches the whole ISO (archiso_nbd_srv=${pxeserver}), marker from its airootfs.sfs', async (t) => {
    if (!manifest.nbdClient) return t.skip('initramfs built without nbd-client (host lacked /usr/sbin/nbd-client)');
    if (!haveNbdServer || !isRoot) return t.skip('needs root and nbd-server (network namespace)');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nbd-fixture-'));
    try {
      const conf = path.join(dir, 'config');
      fs.writeFileSync(
        conf,
        `[generic]\nlistenaddr = 127.0.0.1\nport = 10809\n[archiso]\nexportname = ${fixturePath(manifest.isos.current.file)}\nreadonly = true\n`,
      );
      const r = await bootQemu(
        [
          ...kernelArgs(),
          '-append',
          'archisobasedir=arch archiso_nbd_srv=${pxeserver} ip=10.0.2.15:10.0.2.2:10.0.2.2:255.255.255.0 BOOTIF=01-52-54-00-12-34-56',
          '-netdev', 'user,id=n0', '-device', 'virtio-net-pci,netdev=n0',
        ],
        { command: isolatedCommand([`/usr/bin/nbd-server -C '${conf}'`]) },
      );
      t.diagnostic(`marker after ${(r.elapsedMs / 1000).toFixed(1)} s`);
      assert.equal(r.outcome, 'marker', report('nbd', r));
      assert.equal(r.marker?.method, 'nbd');
      assert.equal(r.marker?.sha256, manifest.marker.sha256);
      assert.equal(r.marker?.content, manifest.marker.content);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('NFS without ip=: fails as archiso would (its NFS hook only runs with ip=)', async () => {
    const r = await bootQemu([...kernelArgs(), '-append', 'archisobasedir=arch archiso_nfs_srv=10.0.2.2:/run/archiso/bootmnt', '-netdev', 'user,id=n0', '-device', 'virtio-net-pci,netdev=n0']);
    assert.equal(r.outcome, 'fail', report('nfs-no-ip', r));
    assert.match(r.failure ?? '', /archiso_nfs_srv= without ip=/);
  });

  it("NFS with archiso_nfs_opt: nfsmount -o tcp,rsize=32768 (no NFS over UDP in Debian's kernel), the ISO tree from nfs-ganesha, copied to RAM", async (t) => {
    const missing = ganeshaMissing();
    if (missing) return t.skip(missing);
    if (!isRoot) return t.skip('needs root (namespaces)');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfs-fixture-'));
    try {
      const root = path.join(dir, 'iso');
      execFileSync('xorriso', ['-osirrox', 'on', '-indev', fixturePath(manifest.isos.current.file), '-extract', '/', root], { stdio: 'ignore' });
      const r = await bootQemu(
        [
          ...kernelArgs(),
          '-append',
          'archisobasedir=arch archiso_nfs_srv=${pxeserver}:/run/archiso/bootmnt archiso_nfs_opt=tcp,rsize=32768 checksum=y ip=10.0.2.15:10.0.2.2:10.0.2.2:255.255.255.0 BOOTIF=01-52-54-00-12-34-56',
          '-netdev', 'user,id=n0', '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56',
        ],
        { command: isolatedNfsCommand(root, dir) },
      );
      t.diagnostic(`marker after ${(r.elapsedMs / 1000).toFixed(1)} s`);
      assert.equal(r.outcome, 'marker', report('nfs', r));
      assert.equal(r.marker?.method, 'nfs');
      assert.equal(r.marker?.server, '10.0.2.2');
      assert.equal(r.marker?.sha256, manifest.marker.sha256);
      assert.match(r.log, /nfsmount -o tcp,rsize=32768 10\.0\.2\.2:\/run\/archiso\/bootmnt \/run\/archiso\/bootmnt/);
      assert.match(r.log, /checksum=y: sha512sum -c airootfs\.sha512/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the kernel's own NFS client (busybox mount -t nfs -o ro,vers=3, no mount.nfs helper) mounts our server's export through its portmapper and reads the whole ISO tree", async (t) => {
    if (!isRoot) return t.skip('needs root (namespaces, ports 111/2049)');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfs-kernel-'));
    try {
      // Our server (test/net/nfs-child.ts) on the namespace's 127.0.0.1, with its own portmapper on
      // 111: no port options, so the kernel asks GETPORT for MOUNT and NFS itself. nfs-child quits
      // when its stdin ends, and a background job of sh gets /dev/null: a pipe that stays open
      // until the namespace goes keeps it serving.
      const log = path.join(dir, 'server.log');
      const child = `cd '${repoRoot}' && /bin/busybox sleep 100000 | '${process.execPath}' --import tsx test/net/nfs-child.ts '${fixturePath(manifest.isos.current.file)}' --address 127.0.0.1 --portmap own >'${log}' 2>&1`;
      // isolatedCommand starts its services in the background; QEMU waits (up to 30 s) for ours.
      const waitThenQemu = ['/bin/sh', '-c', `for i in $(/bin/busybox seq 300); do /bin/busybox grep -q '"listening"' '${log}' && break; /bin/busybox sleep 0.1; done; exec "$@"`, 'sh'];
      const r = await bootQemu(
        [
          ...kernelArgs(),
          '-append',
          'archisobasedir=arch archiso_nfs_srv=${pxeserver}:/run/archiso/bootmnt pxe_test_nfs_mount=kernel checksum=y ip=10.0.2.15:10.0.2.2:10.0.2.2:255.255.255.0 BOOTIF=01-52-54-00-12-34-56',
          '-netdev', 'user,id=n0', '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56',
        ],
        { command: [...isolatedCommand([child]), ...waitThenQemu] },
      );
      t.diagnostic(`marker after ${(r.elapsedMs / 1000).toFixed(1)} s`);
      const serverLog = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '(no server log)';
      assert.equal(r.outcome, 'marker', `${report('nfs-kernel', r)}\n--- server ---\n${serverLog.slice(-2000)}`);
      const serial = plainSerial(r.log);
      assert.match(serial, /kernel NFS mount: mount -t nfs -o ro,vers=3,nolock,addr=10\.0\.2\.2 10\.0\.2\.2:\/run\/archiso\/bootmnt \/run\/archiso\/bootmnt/);
      assert.doesNotMatch(serial, /pxe-test: nfsmount /, 'klibc nfsmount must not have been used');
      // /proc/mounts: the kernel's nfs client, read-only, NFS v3 over TCP (the kernel's default),
      // MOUNT v3 over TCP too (their ports came from our portmapper: none given).
      const mnt = /kernel NFS mount: 10\.0\.2\.2:\/run\/archiso\/bootmnt \/run\/archiso\/bootmnt nfs (\S+) /.exec(serial);
      assert.ok(mnt, `the /proc/mounts line in\n${serial.slice(-3000)}`);
      const mopts = mnt[1]!.split(',');
      for (const o of ['ro', 'vers=3', 'proto=tcp', 'mountvers=3', 'mountproto=tcp', 'nolock']) assert.ok(mopts.includes(o), `${o} in ${mnt[1]}`);
      // Our server answered: the MNT it logged, and airootfs.sfs read to the end.
      const events = serverLog.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event?: string; path?: string; done?: boolean });
      assert.ok(events.some((e) => e.event === 'mount' && e.path === '/run/archiso/bootmnt'), serverLog.slice(0, 2000));
      assert.ok(events.some((e) => e.event === 'read' && e.path === 'arch/x86_64/airootfs.sfs' && e.done), serverLog.slice(0, 2000));
      // Every file of the ISO (Rock Ridge names, as xorriso lists them), and no other, through the
      // mount. Not `-type f`: xorriso gives the El Torito catalog (boot/syslinux/boot.cat) a type of
      // its own, but it is a plain file in the ISO 9660 tree, to our server as to the kernel's isofs.
      const isoFiles = execFileSync('xorriso', ['-indev', fixturePath(manifest.isos.current.file), '-find', '/', '-not', '-type', 'd'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .split('\n')
        .filter((l) => l.startsWith("'/"))
        .map((l) => `.${l.slice(1, -1)}`)
        .sort();
      assert.ok(isoFiles.length > 20 && isoFiles.includes('./arch/x86_64/airootfs.sfs'), isoFiles.join(' '));
      const count = /kernel NFS mount tree: (\d+) files/.exec(serial);
      assert.ok(count, 'the tree line');
      const listed = [...serial.matchAll(/^pxe-test: kernel NFS file: (.*?)\r?$/gm)].map((m) => m[1]!).sort();
      assert.equal(Number(count[1]), listed.length, 'every listed file arrived on the serial port');
      assert.deepEqual(listed, isoFiles, 'every file of the ISO, found through the mount');
      assert.match(serial, new RegExp(`kernel NFS mount sha256 ${manifest.marker.sha256}  arch/x86_64/airootfs\\.sfs`));
      assert.match(serial, /checksum=y: sha512sum -c airootfs\.sha512/);
      assert.equal(r.marker?.method, 'nfs');
      assert.equal(r.marker?.server, '10.0.2.2');
      assert.equal(r.marker?.sha256, manifest.marker.sha256);
      assert.equal(r.marker?.content, manifest.marker.content);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the manifest lists every output with its real sha256', () => {
    const sha = (f: string) => {
      const out = spawnSync('sha256sum', [f], { encoding: 'utf8' });
      return out.stdout.split(' ')[0];
    };
    for (const f of manifest.files) {
      const p = path.join(fixturePath(''), f.path);
      assert.equal(fs.statSync(p).size, f.size, f.path);
      assert.equal(sha(p), f.sha256, f.path);
    }
    assert.equal(manifest.marker.sha256, manifest.files.find((f) => f.path === 'airootfs.sfs')?.sha256);
  });
});
