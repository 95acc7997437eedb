/**
 * net.ipv4.ip_forward, read and written through /proc/sys. The value belongs to the network
 * namespace of the process that opens the file, so when commands go through a prefix (another
 * namespace, sudo) the file is read and written through that prefix too, never from this process.
 */
import { promises as fsp } from 'node:fs';
import { NatError, PERMISSION_HINT } from './errors';
import { failure, type Runner } from './exec';
import type { ForwardValue } from './plan';

export const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

export interface ForwardingControl {
  read(): Promise<ForwardValue>;
  write(value: ForwardValue): Promise<void>;
}

function parseValue(text: string): ForwardValue {
  const v = text.trim();
  if (v !== '0' && v !== '1') throw new NatError('EFAIL', `unexpected ${IP_FORWARD} value "${v}"`);
  return v;
}

/** Direct access to this process's own namespace. */
export function procForwarding(file = IP_FORWARD): ForwardingControl {
  return {
    async read() {
      return parseValue(await fsp.readFile(file, 'utf8'));
    },
    async write(value) {
      try {
        await fsp.writeFile(file, `${value}\n`);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS') {
          throw new NatError('EPERM', `cannot set net.ipv4.ip_forward=${value}: ${e.message}. ${PERMISSION_HINT}`);
        }
        throw new NatError('EFAIL', `cannot set net.ipv4.ip_forward=${value}: ${e.message}`);
      }
    },
  };
}

/** Access through the runner's prefix, with coreutils cat/tee (no shell). */
export function commandForwarding(runner: Runner, cat: string, tee: string, file = IP_FORWARD): ForwardingControl {
  return {
    async read() {
      const r = await runner.run(cat, [file]);
      if (r.code !== 0) throw failure(`reading ${file}`, r);
      return parseValue(r.stdout);
    },
    async write(value) {
      const r = await runner.run(tee, [file], { input: `${value}\n` });
      if (r.code !== 0) throw failure(`setting net.ipv4.ip_forward=${value}`, r);
    },
  };
}
