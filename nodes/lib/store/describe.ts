import type { FileStore } from './types';

/** What the editor shows about a configured store before deploying. */
export interface StoreDescription {
  kind: FileStore['kind'];
  source: string;
  /** Names at the root, so a user sees at a glance whether the path is the one they meant. */
  rootEntries: string[];
}

export async function describeStore(store: FileStore): Promise<StoreDescription> {
  const root = await store.list('/');
  return {
    kind: store.kind,
    source: store.source,
    rootEntries: root.map((e) => (e.isDirectory ? `${e.name}/` : e.name)),
  };
}
