import type { RedApi, RedNode } from './red';
import type { StoreSpec, IsoMountSpec } from './store/open-store';
import type { PublishedFiles } from './store/published-files';
import type { FileStore } from './store/types';

/** The pxe-iso-store config node as the serving nodes see it. */
export interface IsoStoreNode extends RedNode {
  source: string;
  /** Folder of extra files served after the image's ('' for none). */
  extra: string;
  /** Further ISOs served beside the main one, each under its own path prefix (checked). */
  isos: IsoMountSpec[];
  /** How to open a copy of this store (TFTP transfer workers do). */
  spec(): StoreSpec;
  /** The file name of the ISO a store path belongs to (a further ISO's under its prefix), for boot events. */
  isoName(path: string): string;
  /** Files the flow published into this store (pxe-files), served before the image's; none without a user dir. */
  published: PublishedFiles | undefined;
  /** Opens the store for `user` (shared with the store's other users). */
  acquire(user: RedNode): Promise<FileStore>;
  /** `user` is done; the store closes when its last user leaves. */
  release(user: RedNode): Promise<void>;
}

/** The store config node a serving node's `store` property names, or null. */
export function getStoreNode(RED: RedApi, id: unknown): IsoStoreNode | null {
  if (typeof id !== 'string' || !id) return null;
  const node = RED.nodes.getNode(id) as IsoStoreNode | null;
  return node && typeof node.acquire === 'function' ? node : null;
}
