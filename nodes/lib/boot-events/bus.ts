import { EventEmitter } from 'node:events';

/**
 * What the serving nodes tell the boot-events tracker about each client. The bus is a module-level
 * singleton: all our nodes in one Node-RED runtime share it, so the tracker follows a client across
 * DHCP, TFTP, HTTP, NBD and NFS without the user wiring them together.
 *
 * Every field added after the first version is optional: a publisher that does not know it simply
 * leaves it out, and the tracker shows less.
 */
export type BootSignal = DhcpSignal | TransferSignal;

export interface DhcpSignal {
  source: 'dhcp';
  /** 'request' only ties an address to a MAC (proxy mode learns addresses that way). */
  kind: 'offer' | 'ack' | 'request';
  mac: string;
  /** The client's address, when one is known (full mode: yiaddr; proxy: ciaddr at 4011). */
  ip?: string;
  /** Option 93 as a name ('x86 BIOS', 'x64 UEFI', …). */
  arch?: string;
  bootFile?: string;
  at: number;
  /** The DHCP node's mode: a full server, or proxyDHCP beside another server. */
  mode?: 'full' | 'proxy';
  /** Option 77 (iPXE sends 'iPXE'). */
  userClass?: string[];
  /** Option 60 ('PXEClient:Arch:00000:UNDI:002001'). */
  vendorClass?: string;
  /** Option 12. */
  hostname?: string;
  /** The boot rule (or per-MAC override) that chose the boot file. */
  bootRule?: string;
  /** Option 209 sent: PXELINUX configuration file. */
  configFile?: string;
  /** Option 210 sent: PXELINUX path prefix. */
  pathPrefix?: string;
  /** The menu entry a generated config boots ('arch_nfs'), when the flow chose one. */
  entry?: string;
  /** The ISO that entry is in (its file name), when the flow chose one. */
  iso?: string;
}

export interface TransferSignal {
  source: 'tftp' | 'http' | 'nbd' | 'nfs';
  kind: 'start' | 'progress' | 'done' | 'error';
  ip: string;
  /** Store path ('' for an NBD export: the whole image). */
  file: string;
  bytes: number;
  size: number;
  at: number;
  /** kind 'error': what went wrong, for people ('file not found', 'timed out after 8 retries'). */
  error?: string;
  /** kind 'error': the file does not exist (a routine probe unless the boot needed it). */
  notFound?: boolean;
  /** The store the file came from, as a short name (the ISO's file name). */
  store?: string;
}

class BootBus extends EventEmitter {
  publish(signal: BootSignal): void {
    this.emit('signal', signal);
  }
  subscribe(fn: (s: BootSignal) => void): () => void {
    this.on('signal', fn);
    return () => this.off('signal', fn);
  }
}

export const bootBus = new BootBus();
// One listener per subscriber (the shared tracker, tests); many are legitimate.
bootBus.setMaxListeners(0);
