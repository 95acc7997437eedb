// The whole suite, as `npm test` runs it: type-check, lint, build, fixtures, then every
// test/**/*.test.ts with node's test runner (one file at a time: the network tests share the CPU
// with QEMU, and a file's namespaces are its own), then the platform steps at the end.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const bin = (name) => path.join(root, 'node_modules', '.bin', name);
const step = (title, cmd, args) => {
  console.log(`\n== ${title}`);
  try {
    execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
  } catch {
    console.error(`\n${title} failed`);
    process.exit(1);
  }
};

// The README's two commands are the whole set-up: what the tests need and is missing is installed
// here (Debian packages need root; anyone else is told the one command to run).
function setUp() {
  const deps = path.join(root, '.ci', 'install-deps.sh');
  if (spawnSync('bash', [deps, '--check'], { cwd: root, stdio: 'inherit' }).status !== 0) {
    if (process.getuid?.() !== 0) {
      console.error(`\nThe tests need the Debian packages above. Install them once with:\n  sudo bash ${path.relative(process.cwd(), deps) || deps}`);
      process.exit(1);
    }
    step('install Debian packages', 'bash', [deps]);
  }
  if (!fs.existsSync(bin('tsc'))) step('npm ci', 'npm', ['ci', '--no-audit', '--no-fund']);
}

const only = process.argv.slice(2);
if (only.length === 0) {
  setUp();
  step('type-check', bin('tsc'), ['-p', 'tsconfig.json', '--noEmit']);
  step('lint', bin('eslint'), ['.']);
  step('build', process.execPath, [path.join(root, 'scripts', 'build.mjs')]);
  // npm install builds the native UDP addon when it can. Rebuilt here only when missing or older
  // than its source; CI must test it, so there a failed build fails the run.
  const addon = path.join(root, 'build', 'Release', 'pxe_udp.node');
  const source = path.join(root, 'native', 'pxe_udp.c');
  const stale = !fs.existsSync(addon) || fs.statSync(addon).mtimeMs < fs.statSync(source).mtimeMs;
  if (stale) step('native addon', process.execPath, [path.join(root, 'scripts', 'build-native.mjs'), ...(process.env.CI ? ['--required'] : [])]);
  step('fixtures', 'bash', [path.join(root, 'test', 'fixtures', 'build.sh')]);
}

function find(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...find(p));
    else if (e.name.endsWith('.test.ts')) out.push(path.relative(root, p));
  }
  return out.sort();
}
const files = only.length ? only : find(path.join(root, 'test'));
console.log(`\n== tests (${files.length} files)`);
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files], {
  cwd: root,
  stdio: 'inherit',
});
if (r.status !== 0 || only.length > 0) process.exit(r.status ?? 1);

// Where users run it: the unit and Node-RED runtime tests on the other Node majors and under
// Node-RED 5 (binaries from npm, cached in .cache/platforms). PXE_SKIP_PLATFORMS=1 leaves them out
// of a local run.
if (!process.env.PXE_SKIP_PLATFORMS) {
  step('Node 18 and 22, Node-RED 5', process.execPath, [path.join(root, 'scripts', 'platforms', 'node-matrix.mjs')]);
}

// The package on a Raspberry Pi, emulated (scripts/platforms/arm.sh): a Debian 12 arm64 root with
// Debian's Node 18, the palette install without and with a C compiler, Node-RED serving over TFTP
// and HTTP, and the byte-order, alignment, addon, file-I/O and loopback server tests in the root.
// In CI (CI=true) it always runs, from nothing (a fresh machine): 13-14 minutes wall, 12-13 of CPU, on
// this 2-CPU machine. Elsewhere only with PXE_ARM=1: it takes that long on a first run (the root is
// kept in .cache/platforms after it) and registers a binfmt_misc handler machine-wide while it
// runs. PXE_ARM=0 or PXE_SKIP_PLATFORMS=1 leave it out. A failure fails the run. armhf is not run
// here (another 15 minutes): `npm run test:arm -- armhf`.
const ci = !!process.env.CI && !['0', 'false'].includes(process.env.CI);
const armSkip = process.env.PXE_SKIP_PLATFORMS
  ? 'PXE_SKIP_PLATFORMS is set'
  : process.env.PXE_ARM === '0'
    ? 'PXE_ARM=0'
    : !(ci || process.env.PXE_ARM === '1')
      ? 'it runs in CI (CI=true) or with PXE_ARM=1: it builds a Debian root and runs tests under emulation, about 13 minutes'
      : process.getuid?.() !== 0
        ? 'it needs root (debootstrap, chroot, binfmt_misc)'
        : '';
if (armSkip) console.log(`\n== arm64 (emulated Debian 12, Node 18): skipped, ${armSkip}`);
else step('arm64 (emulated Debian 12, Node 18)', 'bash', [path.join(root, 'scripts', 'platforms', 'arm.sh'), 'arm64']);
