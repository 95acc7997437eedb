// Node.js binaries for the version matrix, from npm's `node-<os>-<arch>` packages (the ones the
// `node` package installs), unpacked once under .cache/platforms/ (git-ignored).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.dirname(path.dirname(path.dirname(fileURLToPath(import.meta.url))));
export const cache = path.join(root, '.cache', 'platforms');

/** Path of the `node` binary of this exact version, downloading it the first time. */
export function nodeBinary(version) {
  const dir = path.join(cache, `node-${version}`);
  const bin = path.join(dir, 'bin', 'node');
  if (fs.existsSync(bin)) return bin;
  fs.mkdirSync(cache, { recursive: true });
  const pkg = `node-${process.platform}-${process.arch}@${version}`;
  const tgz = execFileSync('npm', ['pack', '--silent', pkg], { cwd: cache, encoding: 'utf8' }).trim().split('\n').pop();
  const tmp = `${dir}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  execFileSync('tar', ['-xzf', path.join(cache, tgz), '-C', tmp, '--strip-components=1']);
  fs.rmSync(path.join(cache, tgz));
  fs.renameSync(tmp, dir);
  return bin;
}

/** A directory whose node_modules holds this Node-RED version (installed the first time). */
export function nodeRedDir(version) {
  const dir = path.join(cache, `node-red-${version}`);
  if (fs.existsSync(path.join(dir, 'node_modules', 'node-red', 'package.json'))) return dir;
  const tmp = `${dir}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  fs.writeFileSync(path.join(tmp, 'package.json'), '{"private":true}\n');
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--omit=optional', '--no-package-lock', `node-red@${version}`], { cwd: tmp, stdio: 'inherit' });
  fs.renameSync(tmp, dir);
  return dir;
}
