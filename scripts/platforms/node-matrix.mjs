#!/usr/bin/env node
// The unit and Node-RED runtime tests (test/unit, test/nodes) on every Node major the package
// supports, and the runtime tests plus the packed package's loading under Node-RED 5 on Node 22.
// The Node running this script is covered by the main suite and is skipped here. One test file per
// process, one at a time (Node 18's runner has no --test-concurrency; the loopback tests share ports).
//   node scripts/platforms/node-matrix.mjs [18|20|22|nr5 ...]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nodeBinary, nodeRedDir, root } from './node-bin.mjs';

// 18.19.0 is the floor `engines` states, so it is the one tested; 20 and 22 are recent releases.
const NODES = { 18: '18.19.0', 20: '20.20.2', 22: '22.23.5' };
const NODE_RED_5 = '5.0.7';

const want = process.argv.slice(2);
const pick = (k) => want.length === 0 || want.includes(k);
const files = (dir) => fs.readdirSync(path.join(root, dir)).filter((f) => f.endsWith('.test.ts')).sort().map((f) => `${dir}/${f}`);
const hook = path.join(root, 'scripts', 'platforms', 'node-red-at.cjs');
const failures = [];
const flaky = [];
const timings = [];

function runFiles(label, node, list, env = {}) {
  const t0 = Date.now();
  console.log(`\n== ${label}: ${spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim()}, ${list.length} files`);
  const run = (f) => spawnSync(node, ['--require', hook, '--import', 'tsx', '--test', '--test-reporter=dot', f], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 600_000,
  });
  for (const f of list) {
    const t = Date.now();
    let r = run(f);
    // A file that fails is run once more: a pass then is listed as flaky (with the first output)
    // rather than failing the matrix; a second failure fails it.
    if (r.status !== 0) {
      const first = r;
      r = run(f);
      if (r.status === 0) {
        flaky.push(`${label}: ${f}`);
        process.stdout.write(`${first.stdout ?? ''}${first.stderr ?? ''}\n`);
      }
    }
    const ok = r.status === 0;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${f} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
    if (!ok) {
      failures.push(`${label}: ${f}`);
      process.stdout.write(`${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}\n`);
    }
  }
  timings.push(`${label} ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

const hostMajor = process.versions.node.split('.')[0];
for (const major of ['18', '20', '22']) {
  if (!pick(major)) continue;
  if (major === hostMajor) {
    console.log(`\n== Node ${major}: the main suite's own Node (${process.version}); not run again`);
    continue;
  }
  runFiles(`Node ${NODES[major]}`, nodeBinary(NODES[major]), [...files('test/unit'), ...files('test/nodes')]);
}

if (pick('nr5')) {
  const node = nodeBinary(NODES[22]);
  const dir = nodeRedDir(NODE_RED_5);
  // The hook must really hand the tests Node-RED 5, or this step would test 4.x a second time.
  const v = spawnSync(node, ['--require', hook, '-p', "require('node-red/package.json').version"], {
    cwd: root, env: { ...process.env, PXE_NODE_RED_DIR: dir }, encoding: 'utf8',
  }).stdout.trim();
  if (v !== NODE_RED_5) failures.push(`Node-RED ${NODE_RED_5}: the tests resolve node-red ${v}`);
  runFiles(`Node-RED ${v} on Node ${NODES[22]}`, node, files('test/nodes'), { PXE_NODE_RED_DIR: dir });
  const t0 = Date.now();
  console.log(`\n== packed package in Node-RED ${NODE_RED_5} on Node ${NODES[22]}`);
  const r = spawnSync('bash', [path.join(root, 'scripts', 'check-node-red-5.sh')], {
    cwd: root, stdio: 'inherit', env: { ...process.env, PXE_NODE: node, PXE_NODE_RED_DIR: dir },
  });
  if (r.status !== 0) failures.push(`Node-RED ${NODE_RED_5}: packed package does not load`);
  timings.push(`Node-RED ${NODE_RED_5} load ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

console.log(`\n== node matrix: ${timings.join(', ')}`);
if (flaky.length) console.log(`flaky (failed, then passed on a second run):\n  ${flaky.join('\n  ')}`);
if (failures.length) {
  console.log(`failed:\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log('node matrix: all passed');
