/**
 * The files both servers of `bench:storm` serve: the recording's fixture ISO (real syslinux
 * binaries and menus) with its kernel, initramfs and root image replaced by random data of sizes
 * scaled from a current Arch ISO, as an extracted tree (dnsmasq, nginx) and as an ISO built from
 * that tree (our ISO store reads the image itself).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureFixtures, fixturePath } from '../../test/fixtures/fixtures';
import { normalisePath } from './script';

const MiB = 1024 * 1024;
/** Sizes at scale 1: the figures for a current Arch ISO (vmlinuz-linux, initramfs-linux.img, airootfs.sfs). */
export const FULL_SIZES = { kernel: 14 * MiB, initramfs: 40 * MiB, rootfs: 256 * MiB };
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The fixture ISO's tree with the kernel, initramfs and root image replaced by random files of the scaled sizes; and an ISO of that tree. */
export function prepareFiles(work: string, isoFile: string, scale: number): { tree: string; iso: string; sizes: Record<string, number>; expect: Record<string, string>; layout: ReturnType<typeof ensureFixtures>['isos']['current'] } {
  const manifest = ensureFixtures();
  const layout = Object.values(manifest.isos).find((i) => i.file === isoFile);
  if (!layout) throw new Error(`the recording's ISO ${isoFile} is not among the fixtures`);
  const tree = path.join(work, 'tree');
  execFileSync('xorriso', ['-no_rc', '-osirrox', 'on', '-indev', fixturePath(layout.file), '-extract', '/', tree], { stdio: 'ignore' });
  execFileSync('chmod', ['-R', 'u+w,a+rX', tree]);
  const sizes: Record<string, number> = {
    [layout.kernel]: Math.round(FULL_SIZES.kernel * scale),
    [layout.initrd.at(-1)!]: Math.round(FULL_SIZES.initramfs * scale),
    [layout.airootfs]: Math.round(FULL_SIZES.rootfs * scale),
  };
  for (const [p, size] of Object.entries(sizes)) fs.writeFileSync(path.join(tree, p), randomBytes(size), { mode: 0o644 });
  if (layout.checksum) fs.writeFileSync(path.join(tree, layout.checksum), `${createHash('sha512').update(fs.readFileSync(path.join(tree, layout.airootfs))).digest('hex')}  airootfs.sfs\n`);
  const expect: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else expect[normalisePath(path.relative(tree, p))] = sha(fs.readFileSync(p));
    }
  };
  walk(tree);
  const iso = path.join(work, 'storm.iso');
  const uuidDate = layout.uuid.replace(/-/g, '');
  execFileSync('xorriso', ['-no_rc', '-volume_date', 'uuid', uuidDate, '-as', 'mkisofs', '-iso-level', '3', '-full-iso9660-filenames', '-joliet', '-joliet-long', '-rational-rock', '-volid', layout.volid, '-eltorito-boot', layout.eltoritoBoot.replace(/^\//, ''), '-eltorito-catalog', path.posix.join(path.posix.dirname(layout.eltoritoBoot), 'boot.cat').replace(/^\//, ''), '-no-emul-boot', '-boot-load-size', '4', '-boot-info-table', '-output', iso, tree], { stdio: 'ignore' });
  fs.chmodSync(work, 0o755);
  return { tree, iso, sizes, expect, layout };
}

