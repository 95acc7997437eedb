/**
 * A real Node-RED, with this package loaded from the checkout's build, running a given flow inside
 * a lab namespace — what the end-to-end tests and `npm run demo` boot machines against.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Netns } from './netns';
import { waitForLine } from './process';

const root = path.resolve(__dirname, '..', '..');

export interface RunningRed {
  proc: ChildProcess;
  userDir: string;
  log(): string;
  stop(): Promise<void>;
}

export async function startNodeRed(ns: Netns, flow: unknown[], opts: { port?: number; timeoutMs?: number } = {}): Promise<RunningRed> {
  if (!fs.existsSync(path.join(root, 'dist', 'nodes'))) throw new Error('build first (npm run build)');
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  // Inside the checkout so the linked package resolves its dependencies from node_modules.
  fs.mkdirSync(path.join(root, '.cache'), { recursive: true });
  const userDir = fs.mkdtempSync(path.join(root, '.cache', 'red-'));
  const modDir = path.join(userDir, 'node_modules', ...pkg.name.split('/'));
  fs.mkdirSync(path.dirname(modDir), { recursive: true });
  fs.symlinkSync(root, modDir, 'dir');
  fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(flow, null, 2));
  fs.writeFileSync(
    path.join(userDir, 'settings.js'),
    `module.exports = { uiHost: '127.0.0.1', uiPort: ${opts.port ?? 1880}, flowFile: 'flows.json', credentialSecret: false, logging: { console: { level: 'debug' } } };\n`,
  );
  const proc = ns.spawn(process.execPath, [path.join(root, 'node_modules', 'node-red', 'red.js'), '--userDir', userDir], { env: { ...process.env, HOME: os.tmpdir() } });
  let out = '';
  proc.stdout!.on('data', (d) => (out = (out + d).slice(-500000)));
  proc.stderr!.on('data', (d) => (out = (out + d).slice(-500000)));
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      const finish = (): void => {
        fs.rmSync(userDir, { recursive: true, force: true });
        resolve();
      };
      if (proc.exitCode !== null || proc.signalCode !== null) return finish();
      const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
      proc.once('exit', () => {
        clearTimeout(t);
        finish();
      });
      proc.kill('SIGTERM');
    });
  try {
    await waitForLine(proc, /Started flows/, opts.timeoutMs ?? 60000);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${out}`);
  }
  return { proc, userDir, log: () => out, stop };
}
