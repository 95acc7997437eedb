// npm run bench:store — index time of the ISO store and its read throughput against a plain file.
// Prints one line per figure: `bench <figure> <value> <unit> floor <floor> ok|MISSED`; exits 1
// when a floor is missed. Builds its images in a temp dir and removes them.
// The read figure is the median of per-round ratios (store and plain file read back to back, the
// order swapped every round), printed with its spread (CI95 of the median, IQR; bench/lib/pairs.ts);
// rounds go on until the CI95 is within ±2.5 % of the median, at least READ_ROUNDS (15) and at most
// MAX_READ_ROUNDS (45: a read from the page cache takes ~35–100 ms, so that is at most ~5 s more
// than the former fixed 15 rounds), "not settled" if not.
//   node --import tsx bench/store.ts [--rounds N] [--max-rounds N]
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IsoStore } from '../nodes/lib/store/iso-store';
import type { FileStore } from '../nodes/lib/store/types';
import { median, ratioSummary, runPairs } from './lib/pairs';

const MiB = 1024 * 1024;
const ARCHISO_FLAGS = ['-iso-level', '3', '-full-iso9660-filenames', '-joliet', '-joliet-long', '-rational-rock'];
const READ_SIZE = 256 * MiB;
const HIGH_WATER_MARK = MiB; // the store's default; the plain file gets the same, for a fair race
const LOOKUP_RUNS = 9;
const roundsArg = (name: string, def: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Math.max(1, Number(process.argv[i + 1])) : def;
};
const READ_ROUNDS = roundsArg('--rounds', 15);
const MAX_READ_ROUNDS = Math.max(READ_ROUNDS, roundsArg('--max-rounds', 45));

function write(root: string, rel: string, data: Buffer | string): void {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, data);
}

function mkiso(src: string, out: string): string {
  execFileSync('xorriso', ['-as', 'mkisofs', ...ARCHISO_FLAGS, '-V', 'BENCH', '-o', out, src], { stdio: 'ignore' });
  return out;
}

/** What an Arch ISO holds around its PXE pieces (a few hundred entries, small files here). */
function archisoTree(root: string): void {
  for (let i = 0; i < 110; i++) write(root, `boot/syslinux/module${i}.c32`, crypto.randomBytes(2000));
  for (const f of ['lpxelinux.0', 'ldlinux.c32', 'syslinux.cfg', 'archiso_head.cfg', 'archiso_pxe.cfg', 'archiso_sys.cfg', 'splash.png']) {
    write(root, `boot/syslinux/${f}`, crypto.randomBytes(3000));
  }
  for (const f of ['vmlinuz-linux', 'initramfs-linux.img']) write(root, `arch/boot/x86_64/${f}`, crypto.randomBytes(100_000));
  for (const f of ['intel-ucode.img', 'amd-ucode.img']) write(root, `arch/boot/${f}`, crypto.randomBytes(10_000));
  write(root, 'arch/x86_64/airootfs.sfs', crypto.randomBytes(100_000));
  write(root, 'arch/x86_64/airootfs.sha512', 'x');
  for (let i = 0; i < 8; i++) write(root, `loader/entries/0${i}-archiso.conf`, 'title Arch\n');
  write(root, 'EFI/BOOT/BOOTx64.EFI', crypto.randomBytes(5000));
  write(root, 'shellx64.efi', crypto.randomBytes(5000));
  write(root, 'arch/version', '2024.01.01\n');
}

/** 1,200 files: 1,000 in one directory (the worst case for a lazy index) and 200 in a tree. */
function manyTree(root: string): void {
  for (let i = 0; i < 1000; i++) write(root, `flat/file-${String(i).padStart(4, '0')}.txt`, `file ${i}\n`);
  for (let d = 0; d < 20; d++) for (let f = 0; f < 10; f++) write(root, `tree/d${d}/f${f}.txt`, `${d}/${f}\n`);
}

/**
 * Rewrites a file in place through 16 MiB writes. How a file was written shapes its page cache
 * (folio sizes): here the xorriso-written image read 10-25% slower than the same bytes written
 * in big chunks, with plain fs reads and no store involved. Writing both contenders the same way
 * makes the race measure the store, not how the bench produced its files.
 */
function rewrite(file: string): void {
  const tmp = `${file}.tmp`;
  const src = fs.openSync(file, 'r');
  const dst = fs.openSync(tmp, 'w');
  const buf = Buffer.allocUnsafe(16 * MiB);
  for (let n; (n = fs.readSync(src, buf, 0, buf.length, null)) > 0; ) fs.writeSync(dst, buf, 0, n);
  fs.closeSync(src);
  fs.closeSync(dst);
  fs.renameSync(tmp, file);
}

/** Milliseconds from opening the image to the answer of the first lookup, on a fresh store. */
async function firstLookup(iso: string, target: string): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < LOOKUP_RUNS; i++) {
    const t0 = process.hrtime.bigint();
    const store = await new IsoStore(iso).init();
    await store.stat(target);
    runs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    await store.close();
  }
  return median(runs);
}

/** Milliseconds to list every directory (what indexing the whole image up front would cost). */
async function fullWalk(iso: string): Promise<{ ms: number; entries: number }> {
  const runs: number[] = [];
  let entries = 0;
  for (let i = 0; i < LOOKUP_RUNS; i++) {
    const t0 = process.hrtime.bigint();
    const store = await new IsoStore(iso).init();
    entries = 0;
    const walk = async (p: string): Promise<void> => {
      for (const e of await store.list(p)) {
        entries++;
        if (e.isDirectory) await walk(e.path);
      }
    };
    await walk('/');
    runs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    await store.close();
  }
  return { ms: median(runs), entries };
}

async function drain(s: NodeJS.ReadableStream): Promise<number> {
  let n = 0;
  for await (const c of s) n += (c as Buffer).length;
  return n;
}

async function timeRead(open: () => Promise<NodeJS.ReadableStream>): Promise<number> {
  const t0 = process.hrtime.bigint();
  const n = await drain(await open());
  if (n !== READ_SIZE) throw new Error(`read ${n} bytes, expected ${READ_SIZE}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function main(): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-bench-store-'));
  try {
    const archSrc = path.join(dir, 'archiso');
    archisoTree(archSrc);
    const archIso = mkiso(archSrc, path.join(dir, 'archiso.iso'));
    const manySrc = path.join(dir, 'many');
    manyTree(manySrc);
    const manyIso = mkiso(manySrc, path.join(dir, 'many.iso'));

    const archLookup = await firstLookup(archIso, 'boot/syslinux/ldlinux.c32');
    const manyLookup = await firstLookup(manyIso, 'flat/file-0999.txt');
    const treeLookup = await firstLookup(manyIso, 'tree/d19/f9.txt');
    const manyWalk = await fullWalk(manyIso);
    console.log(`first lookup, archiso-shaped image: ${archLookup.toFixed(2)} ms (median of ${LOOKUP_RUNS} fresh stores)`);
    console.log(`first lookup, 1,200-file image (1,000 in one directory): ${manyLookup.toFixed(2)} ms`);
    console.log(`first lookup, same image, a file outside the big directory: ${treeLookup.toFixed(2)} ms`);
    console.log(`full walk of the 1,200-file image (${manyWalk.entries} entries, i.e. eager indexing): ${manyWalk.ms.toFixed(2)} ms`);

    // The same 256 MiB once as a plain file and once inside an image.
    const bigSrc = path.join(dir, 'big');
    fs.mkdirSync(bigSrc);
    const plain = path.join(bigSrc, 'payload.bin');
    const fd = fs.openSync(plain, 'w');
    for (let i = 0; i < READ_SIZE / (16 * MiB); i++) fs.writeSync(fd, crypto.randomBytes(16 * MiB));
    fs.closeSync(fd);
    const bigIso = mkiso(bigSrc, path.join(dir, 'big.iso'));
    rewrite(bigIso);
    rewrite(plain);
    const store: FileStore = await new IsoStore(bigIso).init();
    const viaStore = () => store.createReadStream('payload.bin');
    const viaPlain = async () => fs.createReadStream(plain, { highWaterMark: HIGH_WATER_MARK });
    await timeRead(viaStore); // warm the page cache and the code paths of both
    await timeRead(viaPlain);
    // Alternate which goes first too, so neither always runs right after the other's reads. The
    // figure is the median of each round's ratio: on a shared machine the load drifts, and two
    // reads run back to back see the same load while reads minutes apart do not.
    const rounds = await runPairs({
      who: ['store', 'plain'] as const,
      one: (w) => timeRead(w === 'store' ? viaStore : viaPlain),
      ratios: { read: (m) => m.plain / m.store },
      min: READ_ROUNDS,
      max: MAX_READ_ROUNDS,
    });
    await store.close();
    const storeMiBs = READ_SIZE / MiB / median(rounds.runs.store);
    const plainMiBs = READ_SIZE / MiB / median(rounds.runs.plain);
    const ratio = median(rounds.ratios.read!);
    console.log(`read 256 MiB: store ${storeMiBs.toFixed(0)} MiB/s, plain file ${plainMiBs.toFixed(0)} MiB/s (medians of ${rounds.rounds}, alternating)`);
    console.log(`read store / plain file ${ratioSummary(rounds, 'read', 'rounds', 3)}`);

    const figures = [
      { name: 'store_first_lookup_archiso', value: archLookup, unit: 'ms', floor: 50, ok: archLookup < 50, digits: 2 },
      { name: 'store_first_lookup_1000_files', value: manyLookup, unit: 'ms', floor: 50, ok: manyLookup < 50, digits: 2 },
      { name: 'store_read_ratio', value: ratio, unit: 'x', floor: 0.95, ok: ratio >= 0.95, digits: 3 },
    ];
    for (const f of figures) console.log(`bench ${f.name} ${f.value.toFixed(f.digits)} ${f.unit} floor ${f.floor} ${f.ok ? 'ok' : 'MISSED'}`);
    return figures.every((f) => f.ok) ? 0 : 1;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(err);
    process.exit(1);
  },
);
