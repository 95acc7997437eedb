import { EventEmitter } from 'node:events';

/**
 * What the serving nodes tell the boot-events node about each client. The bus is a module-level
 * singleton: all our nodes in one Node-RED runtime share it, so the boot-events node follows a
 * client across DHCP, TFTP, HTTP, NBD and NFS without the user wiring them together.
 */
export type BootSignal =
  | {
      source: 'dhcp';
      /** 'request' only ties an address to a MAC (proxy mode learns addresses that way). */
      kind: 'offer' | 'ack' | 'request';
      mac: string;
      /** The client's address, when one is known (full mode: yiaddr; proxy: ciaddr at 4011). */
      ip?: string;
      arch?: string;
      bootFile?: string;
      at: number;
    }
  | {
      source: 'tftp' | 'http' | 'nbd' | 'nfs';
      kind: 'start' | 'progress' | 'done' | 'error';
      ip: string;
      /** Store path ('' for an NBD export: the whole image). */
      file: string;
      bytes: number;
      size: number;
      at: number;
    };

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
// One listener per boot-events node; many are legitimate.
bootBus.setMaxListeners(0);
