/**
 * Which firewall tools this machine has, and the backend to use: the one the editor forces, or
 * nftables, then iptables-nft, then iptables-legacy. Binaries are looked up in the usual sbin/bin
 * folders by absolute path (Node-RED's PATH often lacks /usr/sbin).
 */
import { accessSync, constants } from 'node:fs';
import * as path from 'node:path';
import type { NatBackend } from './backend';
import { NatError } from './errors';
import type { Runner } from './exec';
import { IptablesBackend, type IptablesTools } from './iptables';
import { NftBackend } from './nft';
import type { BackendChoice, BackendKind } from './plan';
import { commandForwarding, procForwarding, type ForwardingControl } from './sysctl';

export const BIN_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/local/bin'];

export function findBinary(name: string, dirs: readonly string[] = BIN_DIRS): string | null {
  for (const d of dirs) {
    const p = path.join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

export interface Tools {
  nftables: string | null;
  'iptables-nft': IptablesTools | null;
  'iptables-legacy': IptablesTools | null;
}

function pair(save: string | null, restore: string | null): IptablesTools | null {
  return save && restore ? { save, restore } : null;
}

/**
 * Finds the tools. Plain `iptables-save` (distributions without the -nft/-legacy names) is
 * classified by its version line, "(nf_tables)" or "(legacy)".
 */
export async function detectTools(runner: Runner, dirs: readonly string[] = BIN_DIRS): Promise<Tools> {
  const tools: Tools = {
    nftables: findBinary('nft', dirs),
    'iptables-nft': pair(findBinary('iptables-nft-save', dirs), findBinary('iptables-nft-restore', dirs)),
    'iptables-legacy': pair(findBinary('iptables-legacy-save', dirs), findBinary('iptables-legacy-restore', dirs)),
  };
  const plain = pair(findBinary('iptables-save', dirs), findBinary('iptables-restore', dirs));
  if (plain && (!tools['iptables-nft'] || !tools['iptables-legacy'])) {
    try {
      const r = await runner.run(plain.save, ['--version'], { timeoutMs: 5000 });
      const v = r.stdout + r.stderr;
      if (/nf_tables/.test(v)) tools['iptables-nft'] ??= plain;
      else if (/legacy/.test(v)) tools['iptables-legacy'] ??= plain;
    } catch {
      // unusable: leave it out
    }
  }
  return tools;
}

const ORDER: BackendKind[] = ['nftables', 'iptables-nft', 'iptables-legacy'];

export function chooseBackend(choice: BackendChoice, tools: Tools): BackendKind {
  if (choice !== 'auto') {
    if (!tools[choice]) {
      const pkg = choice === 'nftables' ? 'nftables' : 'iptables';
      throw new NatError('ENOENT', `the ${choice} tools are not installed (install the "${pkg}" package, or choose another backend)`);
    }
    return choice;
  }
  const kind = ORDER.find((k) => tools[k]);
  if (!kind) throw new NatError('ENOENT', 'neither nft nor iptables-save/iptables-restore was found: install the "nftables" or "iptables" package');
  return kind;
}

export function createBackend(kind: BackendKind, tools: Tools, runner: Runner): NatBackend {
  if (kind === 'nftables') return new NftBackend(runner, tools.nftables!);
  return new IptablesBackend(kind, runner, tools[kind]!);
}

/** ip_forward access for this runner: direct in our own namespace, through the prefix otherwise. */
export function forwardingFor(runner: Runner, dirs: readonly string[] = BIN_DIRS): ForwardingControl {
  if (runner.prefix.length === 0) return procForwarding();
  const cat = findBinary('cat', dirs);
  const tee = findBinary('tee', dirs);
  if (!cat || !tee) throw new NatError('ENOENT', 'cat and tee (coreutils) are needed to set ip_forward through a command prefix');
  return commandForwarding(runner, cat, tee);
}
