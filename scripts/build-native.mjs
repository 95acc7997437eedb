#!/usr/bin/env node
/**
 * Builds the optional native UDP I/O addon (native/pxe_udp.c → build/Release/pxe_udp.node) with
 * node-gyp. It is the package's install script, so it must never fail an install: on a machine
 * without a compiler (or not Linux) it says so and exits 0, and the TFTP server uses Node's
 * dgram sockets instead (the same protocol code, more CPU per packet).
 *
 *   node scripts/build-native.mjs [--required]   (--required: exit 1 if the build fails)
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const required = process.argv.includes('--required');

function skip(why) {
  const line = `node-red-pxe: native UDP I/O not built (${why}); TFTP uses Node's dgram sockets.`;
  if (required) {
    console.error(line);
    process.exit(1);
  }
  console.log(line);
  process.exit(0);
}

if (process.platform !== 'linux') skip(`not Linux: ${process.platform}`);
if (process.env.PXE_NO_NATIVE) skip('PXE_NO_NATIVE is set');

// npm tells install scripts where its node-gyp is; otherwise look beside this npm or node.
const candidates = [
  process.env.npm_config_node_gyp,
  path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter(Boolean);
const gyp = candidates.find((p) => fs.existsSync(p));
if (!gyp) skip('node-gyp not found');

// Build against this Node's own headers when it has them (Debian, NodeSource, official
// tarballs): node-gyp would otherwise download them, and many machines have no such access.
const prefix = path.join(path.dirname(process.execPath), '..');
const nodedir = process.env.npm_config_nodedir || (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
const args = [gyp, 'rebuild', ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
const r = spawnSync(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 180_000 });
const built = path.join(root, 'build', 'Release', 'pxe_udp.node');
if (r.status !== 0 || !fs.existsSync(built)) {
  const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-5).join('\n');
  if (required) console.error(tail);
  skip(r.error ? r.error.message : `node-gyp exited ${r.status}`);
}
console.log(`node-red-pxe: native UDP I/O built (${path.relative(root, built)}).`);
