/**
 * Runs firewall tools: argument arrays, never a shell, with a timeout and bounded output. An
 * optional command prefix (e.g. ['/usr/bin/sudo', '-n'], or ['/usr/sbin/ip', 'netns', 'exec', ns]
 * in the tests) is put in front of every command, so all system changes go through it.
 */
import { spawn } from 'node:child_process';
import { NatError, PERMISSION_HINT } from './errors';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
}

export interface Runner {
  readonly prefix: readonly string[];
  run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
}

const MAX_OUTPUT = 4 * 1024 * 1024;

export function validatePrefix(prefix: unknown): string[] {
  if (prefix === undefined || prefix === null) return [];
  if (!Array.isArray(prefix) || !prefix.every((p) => typeof p === 'string' && p !== '')) {
    throw new NatError('EINVAL', 'pxeNat.commandPrefix must be an array of strings, e.g. ["/usr/bin/sudo", "-n"]');
  }
  if (prefix.length > 0 && !prefix[0]!.startsWith('/')) {
    throw new NatError('EINVAL', `pxeNat.commandPrefix must start with an absolute path, got "${prefix[0]}"`);
  }
  return [...prefix] as string[];
}

export function createRunner(prefix: readonly string[] = [], defaultTimeoutMs = 15000): Runner {
  const pre = validatePrefix(prefix);
  return {
    prefix: pre,
    run(cmd, args, opts = {}) {
      const argv = [...pre, cmd, ...args];
      const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
      return new Promise((resolve, reject) => {
        const child = spawn(argv[0]!, argv.slice(1), { shell: false, stdio: 'pipe', env: { ...process.env, LC_ALL: 'C' } });
        let stdout = '';
        let stderr = '';
        let timedOut = false;
        const add = (cur: string, d: string): string => (cur.length < MAX_OUTPUT ? cur + d : cur);
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = add(stdout, d)));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = add(stderr, d)));
        const timer = setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, timeoutMs);
        child.on('error', (err: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          if (err.code === 'ENOENT') reject(new NatError('ENOENT', `${argv[0]} not found`));
          else if (err.code === 'EACCES') reject(new NatError('EPERM', `${argv[0]} cannot be run: ${err.message}`));
          else reject(new NatError('EFAIL', `${argv[0]}: ${err.message}`));
        });
        // An EPIPE on stdin (the tool exited early) is reported through the exit code instead.
        child.stdin.on('error', () => undefined);
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          if (timedOut) reject(new NatError('ETIMEDOUT', `${cmd} ${args.join(' ')} did not finish within ${timeoutMs} ms`));
          else resolve({ code, signal, stdout, stderr });
        });
        child.stdin.end(opts.input ?? '');
      });
    },
  };
}

const PERM_RE = /operation not permitted|permission denied|you must be root|can't initialize .*table|Could not fetch rule set generation id/i;

/** Turns a failed run into a NatError (permission problems get the hint on how to fix them). */
export function failure(what: string, r: RunResult): NatError {
  const detail = (r.stderr || r.stdout).trim().split('\n').filter((l) => !/^# Warning:/.test(l)).slice(0, 6).join(' | ');
  if (PERM_RE.test(detail)) return new NatError('EPERM', `${what}: ${detail || 'permission denied'}. ${PERMISSION_HINT}`);
  return new NatError('EFAIL', `${what} failed (exit ${r.code ?? r.signal}): ${detail || 'no message'}`);
}

export async function runChecked(runner: Runner, what: string, cmd: string, args: string[], opts?: RunOptions): Promise<string> {
  const r = await runner.run(cmd, args, opts);
  if (r.code !== 0) throw failure(what, r);
  return r.stdout;
}
