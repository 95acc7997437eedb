// Builds ISO images for the tests with the real mastering tools, and checks a store against
// xorriso's own extraction of the same image (the oracle).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FileStore } from '../../nodes/lib/store/types';

/** The flags archiso's mkarchiso passes to xorriso. */
export const ARCHISO_FLAGS = ['-iso-level', '3', '-full-iso9660-filenames', '-joliet', '-joliet-long', '-rational-rock'];

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `pxe-${prefix}-`));
}

function run(cmd: string, args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr?.toString() ?? e.message}`);
  }
}

export function xorrisoImage(src: string, out: string, flags: string[] = ARCHISO_FLAGS, volume = 'TEST_ISO'): string {
  run('xorriso', ['-as', 'mkisofs', ...flags, '-V', volume, '-o', out, src]);
  return out;
}

export function genisoImage(src: string, out: string, flags: string[], volume = 'TEST_ISO'): string {
  run('genisoimage', ['-quiet', ...flags, '-V', volume, '-o', out, src]);
  return out;
}

/** The oracle: xorriso's own extraction of the whole image. */
export function extract(iso: string, dir: string): string {
  run('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', '/', dir]);
  return dir;
}

/** Writes files (Buffer or string content) and symlinks ({ link: target }) under `root`. */
export function writeTree(root: string, tree: Record<string, Buffer | string | { link: string }>): void {
  for (const [rel, content] of Object.entries(tree)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (typeof content === 'object' && !Buffer.isBuffer(content)) fs.symlinkSync(content.link, p);
    else fs.writeFileSync(p, content);
  }
}

export const LONG_JOLIET = `${'j'.repeat(80)}.txt`; // over Joliet's 64, within -joliet-long's 103
export const LONG_RR = `${'r'.repeat(150)}.cfg`; // over 100: only Rock Ridge keeps it whole

/** A tree with what the store must cope with: archiso pieces, deep dirs, long names, symlinks. */
export function sampleTree(): Record<string, Buffer | string | { link: string }> {
  const tree: Record<string, Buffer | string | { link: string }> = {
    'arch/boot/x86_64/vmlinuz-linux': crypto.randomBytes(300_001),
    'arch/boot/x86_64/initramfs-linux.img': crypto.randomBytes(1_048_579),
    'arch/x86_64/airootfs.sfs': crypto.randomBytes(70_000),
    'arch/boot/syslinux/ldlinux.c32': crypto.randomBytes(1234),
    'boot/syslinux/lpxelinux.0': crypto.randomBytes(4567),
    'boot/syslinux/ldlinux.c32': crypto.randomBytes(1235),
    'boot/syslinux/syslinux.cfg': 'DEFAULT arch\nLABEL arch\n  KERNEL /arch/boot/x86_64/vmlinuz-linux\n',
    'empty.txt': '',
    'MixedCase.TXT': 'mixed',
    'd1/d2/d3/d4/d5/d6/d7/d8/d9/d10/deep.txt': 'deep',
    [LONG_JOLIET]: 'long joliet',
    [LONG_RR]: 'long rock ridge',
    'link-file': { link: 'boot/syslinux/syslinux.cfg' },
    'link-dir': { link: 'arch/boot' },
    'boot/link-up': { link: '../arch/x86_64/airootfs.sfs' },
    'chain1': { link: 'chain2' },
    'chain2': { link: 'link-dir/x86_64' },
    'dangling': { link: 'nope' },
    'escape': { link: '../../../../../../../../nonexistent-pxe-test/passwd' },
    'loopA': { link: 'loopB' },
    'loopB': { link: 'loopA' },
  };
  // Enough entries for the directory to span several sectors (zero padding at sector ends).
  for (let i = 0; i < 120; i++) tree[`many/file-${String(i).padStart(3, '0')}.bin`] = crypto.randomBytes(i * 37);
  return tree;
}

export async function readStream(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Asserts that the store holds exactly the extracted tree: the same names in every directory,
 * and for every file the same size and bytes (by stream and by positional read). Entries whose
 * extracted form cannot be followed (dangling or looping symlinks) must be absent from listings.
 * Returns the number of files compared.
 */
export async function assertMatchesTree(store: FileStore, dir: string, rel = ''): Promise<number> {
  const expected = new Map<string, fs.Stats>();
  for (const name of fs.readdirSync(path.join(dir, rel))) {
    try {
      expected.set(name, fs.statSync(path.join(dir, rel, name)));
    } catch {
      // not followable: must not be listed
    }
  }
  const listed = await store.list(rel);
  assert.deepEqual(listed.map((e) => e.name).sort(), [...expected.keys()].sort(), `names in /${rel}`);
  let files = 0;
  for (const e of listed) {
    const st = expected.get(e.name)!;
    const childRel = rel === '' ? e.name : `${rel}/${e.name}`;
    assert.equal(e.path, childRel);
    assert.equal(e.isDirectory, st.isDirectory(), `kind of /${childRel}`);
    if (st.isDirectory()) {
      // Symlinked directories are compared once, at their real place.
      if (!fs.lstatSync(path.join(dir, childRel)).isSymbolicLink()) files += await assertMatchesTree(store, dir, childRel);
      continue;
    }
    assert.equal(e.size, st.size, `size of /${childRel}`);
    const want = fs.readFileSync(path.join(dir, childRel));
    assert.ok((await readStream(await store.createReadStream(childRel))).equals(want), `bytes of /${childRel}`);
    const f = await store.open(childRel);
    const buf = Buffer.alloc(want.length + 10);
    let n = 0;
    // Odd-sized positional reads, so extent and chunk boundaries fall mid-read.
    for (let got; (got = await f.read(buf, n, Math.min(4099, buf.length - n), n)) > 0; ) n += got;
    if (f.readCached) {
      // Just read, so in the page cache: the synchronous cached read returns every byte, in the
      // same odd-sized pieces across extents.
      const c = Buffer.alloc(want.length);
      let m = 0;
      for (let got; m < want.length && (got = f.readCached(c, m, Math.min(4099, want.length - m), m)) > 0; ) m += got;
      assert.equal(m, want.length, `cached read of /${childRel}`);
      assert.ok(c.equals(want), `cached bytes of /${childRel}`);
    }
    await f.close();
    assert.equal(n, want.length, `read count of /${childRel}`);
    assert.ok(buf.subarray(0, n).equals(want), `positional bytes of /${childRel}`);
    files++;
  }
  return files;
}
