import type { Readable } from 'node:stream';
import { isStoreError, type FileStore, type ReadStreamOptions, type StoreFile, type StoreStat } from './types';

/**
 * Several stores seen as one: a path is looked up in each in turn, the first that has it wins.
 * This is how an ISO image and a folder of extra boot files (iPXE's snponly.efi, say) are served
 * by one TFTP or HTTP node. Only "not found" falls through; a refused path stays refused.
 */
export class LayeredStore implements FileStore {
  readonly kind: FileStore['kind'];
  readonly source: string;

  /**
   * `primaryIndex` names the store proper (the image or folder the user configured): NBD exports
   * its image and the editor describes it. Layers before it shadow it (files a flow published).
   */
  constructor(
    private readonly layers: FileStore[],
    private readonly primaryIndex = 0,
  ) {
    if (!layers[primaryIndex]) throw new Error('a layered store needs its primary store');
    this.kind = layers[primaryIndex].kind;
    this.source = layers[primaryIndex].source;
  }

  /** The primary store (the image or folder the user configured). */
  get primary(): FileStore {
    return this.layers[this.primaryIndex]!;
  }

  private async first<T>(fn: (s: FileStore) => Promise<T>): Promise<T> {
    let miss: unknown;
    for (const layer of this.layers) {
      try {
        return await fn(layer);
      } catch (err) {
        if (!isStoreError(err, 'ENOENT')) throw err;
        miss ??= err;
      }
    }
    throw miss;
  }

  stat(path: string): Promise<StoreStat> {
    return this.first((s) => s.stat(path));
  }

  async list(path: string): Promise<StoreStat[]> {
    const byName = new Map<string, StoreStat>();
    let found = false;
    let miss: unknown;
    for (const layer of this.layers) {
      try {
        for (const e of await layer.list(path)) if (!byName.has(e.name)) byName.set(e.name, e);
        found = true;
      } catch (err) {
        if (!isStoreError(err, 'ENOENT')) throw err;
        miss ??= err;
      }
    }
    if (!found) throw miss;
    return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  open(path: string): Promise<StoreFile> {
    return this.first((s) => s.open(path));
  }

  createReadStream(path: string, options?: ReadStreamOptions): Promise<Readable> {
    return this.first((s) => s.createReadStream(path, options));
  }

  async close(): Promise<void> {
    await Promise.all(this.layers.map((s) => s.close()));
  }
}
