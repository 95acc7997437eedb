import { detectArchiso, type ArchisoInfo } from './archiso';
import { IsoStore } from './iso-store';
import { LayeredStore } from './layered-store';
import type { FileStore } from './types';

/** What the editor shows about a configured store before deploying. */
export interface StoreDescription {
  kind: FileStore['kind'];
  source: string;
  /** The image's volume label (ISO stores only). */
  volumeId?: string;
  /** The image file's size in bytes (ISO stores only: a folder's size would need a full walk). */
  size?: number;
  /** Names at the root, so a user sees at a glance whether the path is the one they meant. */
  rootEntries: string[];
  /** Whether this is an Arch ISO, where its PXE pieces are, and the DHCP settings to boot it. */
  archiso: ArchisoInfo;
}

export async function describeStore(store: FileStore): Promise<StoreDescription> {
  const root = await store.list('/');
  const primary = store instanceof LayeredStore ? store.primary : store;
  const iso = primary instanceof IsoStore ? { volumeId: primary.volumeId, size: primary.size } : {};
  return {
    kind: store.kind,
    source: store.source,
    ...iso,
    rootEntries: root.map((e) => (e.isDirectory ? `${e.name}/` : e.name)),
    archiso: await detectArchiso(store),
  };
}
