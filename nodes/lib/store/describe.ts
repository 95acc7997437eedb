import { detectArchiso, type ArchisoInfo } from './archiso';
import { IsoStore } from './iso-store';
import { mainStore } from './mounted-store';
import type { FileStore } from './types';

/**
 * What the editor shows about a configured store before deploying: what a store opened on that
 * path would serve, summed up. A folder's own entries are never listed, only whether the fixed
 * Arch paths are there: the editor's Inspect endpoint must not become a way to browse the
 * host's folders.
 */
export interface StoreDescription {
  kind: FileStore['kind'];
  source: string;
  /** The image's volume label (ISO stores only). */
  volumeId?: string;
  /** The image file's size in bytes (ISO stores only: a folder's size would need a full walk). */
  size?: number;
  /**
   * Names at an image's root, so a user sees at a glance whether the path is the one they meant
   * (ISO images only: the image's contents, not a folder of the host).
   */
  rootEntries?: string[];
  /** Whether this is an Arch ISO, where its PXE pieces are, and the DHCP settings to boot it. */
  archiso: ArchisoInfo;
}

export async function describeStore(store: FileStore): Promise<StoreDescription> {
  const primary = mainStore(store);
  const iso =
    primary instanceof IsoStore
      ? {
          volumeId: primary.volumeId,
          size: primary.size,
          rootEntries: (await primary.list('/')).map((e) => (e.isDirectory ? `${e.name}/` : e.name)),
        }
      : {};
  return {
    kind: store.kind,
    source: store.source,
    ...iso,
    archiso: await detectArchiso(store),
  };
}
