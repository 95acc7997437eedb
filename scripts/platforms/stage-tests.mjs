#!/usr/bin/env node
// Stages the repo's sources and tests as plain CommonJS for a foreign-architecture root, where
// tsx's esbuild (an x86_64 binary here) cannot run: every .ts under nodes/ and test/ is transpiled
// with this machine's esbuild, beside copies of everything else the tests read (locales, html,
// examples, package.json). node_modules holds node-red 4 and node-red-node-test-helper, pure
// JavaScript installed once under .cache/platforms (optional native deps left out), and a stand-in
// for tsx/cjs, which tests require inside worker threads: the staged files are JavaScript already.
// The test fixtures (test/fixtures/build.sh, .cache/fixtures) are data, the same on every
// architecture: built here, their manifest and ISO images are staged, and the staged build.sh only
// checks them (the real one needs the host's packages, and its stamp hashes their versions).
//   node scripts/platforms/stage-tests.mjs <dest>
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { cache, root } from './node-bin.mjs';

const require = createRequire(import.meta.url);
const esbuild = require(path.join(root, 'node_modules', 'esbuild'));
const dest = path.resolve(process.argv[2]);
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

function stage(rel) {
  const from = path.join(root, rel);
  const st = fs.statSync(from);
  if (st.isDirectory()) {
    for (const e of fs.readdirSync(from)) stage(path.join(rel, e));
    return;
  }
  const to = path.join(dest, rel);
  fs.mkdirSync(path.dirname(to), { recursive: true });
  if (rel.endsWith('.ts') && !rel.endsWith('.d.ts')) {
    const out = esbuild.transformSync(fs.readFileSync(from, 'utf8'), {
      loader: 'ts', format: 'cjs', platform: 'node', target: 'node18', sourcefile: rel,
    });
    fs.writeFileSync(to.replace(/\.ts$/, '.js'), out.code);
  } else {
    fs.copyFileSync(from, to);
  }
}

fs.rmSync(dest, { recursive: true, force: true });
for (const rel of ['nodes', 'test/unit', 'test/nodes', 'test/platforms', 'test/helpers', 'test/lab', 'test/fixtures/fixtures.ts', 'test/fixtures/syslinux', 'examples', 'icons', 'package.json']) {
  if (fs.existsSync(path.join(root, rel))) stage(rel);
}

const devRed = pkg.devDependencies['node-red'];
const devHelper = pkg.devDependencies['node-red-node-test-helper'];
const mods = path.join(cache, `test-modules-${devRed}-${devHelper}`.replace(/[~^]/g, ''));
if (!fs.existsSync(path.join(mods, '.complete'))) {
  fs.rmSync(mods, { recursive: true, force: true });
  fs.mkdirSync(mods, { recursive: true });
  fs.writeFileSync(path.join(mods, 'package.json'), '{"private":true}\n');
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--omit=optional', '--no-package-lock', `node-red@${devRed}`, `node-red-node-test-helper@${devHelper}`], { cwd: mods, stdio: 'inherit' });
  fs.writeFileSync(path.join(mods, '.complete'), '');
}
execFileSync('cp', ['-a', path.join(mods, 'node_modules'), path.join(dest, 'node_modules')]);
const natives = execFileSync('find', [path.join(dest, 'node_modules'), '-name', '*.node'], { encoding: 'utf8' }).trim();
if (natives) throw new Error(`test modules hold native code, which would not run on another architecture:\n${natives}`);
fs.mkdirSync(path.join(dest, 'node_modules', 'tsx'), { recursive: true });
fs.writeFileSync(path.join(dest, 'node_modules', 'tsx', 'package.json'), '{"name":"tsx","version":"0.0.0-staged"}\n');
fs.writeFileSync(path.join(dest, 'node_modules', 'tsx', 'cjs.js'), '// staged tree: already JavaScript, nothing to register\n');

const fixtures = path.join(root, '.cache', 'fixtures');
if (!fs.existsSync(path.join(fixtures, 'manifest.json'))) execFileSync('bash', [path.join(root, 'test', 'fixtures', 'build.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
const manifest = JSON.parse(fs.readFileSync(path.join(fixtures, 'manifest.json'), 'utf8'));
fs.mkdirSync(path.join(dest, '.cache', 'fixtures'), { recursive: true });
fs.copyFileSync(path.join(fixtures, 'manifest.json'), path.join(dest, '.cache', 'fixtures', 'manifest.json'));
const isos = Object.values(manifest.isos);
for (const i of isos) fs.copyFileSync(path.join(fixtures, i.file), path.join(dest, '.cache', 'fixtures', i.file));
fs.writeFileSync(path.join(dest, 'test', 'fixtures', 'build.sh'), `#!/usr/bin/env bash
# Staged by scripts/platforms/stage-tests.mjs: the fixtures were built on the build machine (the
# same bytes on every architecture); here they are only checked against their manifest.
set -euo pipefail
cd "$(dirname "$0")/../../.cache/fixtures"
sha256sum --quiet -c - <<'SUMS'
${isos.map((i) => `${i.sha256}  ${i.file}`).join('\n')}
SUMS
`);
console.log(`staged ${dest}`);
