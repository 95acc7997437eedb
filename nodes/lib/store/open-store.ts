import * as fs from 'node:fs';
import { FolderStore } from './folder-store';
import { IsoStore } from './iso-store';
import { LayeredStore } from './layered-store';
import { MountedStore, type IsoMount } from './mounted-store';
import { StoreError, type FileStore } from './types';

/** Opens the store a user configured: a folder, or an ISO 9660 image (a regular file). */
export async function openStore(source: string): Promise<FileStore> {
  if (!source) throw new StoreError('EINVAL', 'no ISO image or folder configured');
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(source);
  } catch {
    throw new StoreError('ENOENT', `${source} does not exist`);
  }
  if (st.isDirectory()) return new FolderStore(source).init();
  if (st.isFile()) return new IsoStore(source).init();
  throw new StoreError('EBADIMAGE', `${source} is neither a folder nor an ISO image file`);
}

/** A further ISO served beside the main one, under its own path prefix (MountedStore). */
export interface IsoMountSpec {
  prefix: string;
  source: string;
}

/**
 * Everything a pxe-iso-store node's store is made of, as plain data: a TFTP transfer worker opens
 * its own copy from it (openStoreSpec), the same way the node opens the shared one.
 */
export interface StoreSpec {
  source: string;
  extraFolder?: string;
  publishedFolder?: string;
  /** Further ISOs, each under its own prefix. */
  isos?: IsoMountSpec[];
}

/**
 * The store a pxe-iso-store node serves: its image or folder and, when configured, a folder of
 * extra files (boot loaders the image lacks) looked up after it, the folder of files the flow
 * published (PublishedFiles) looked up before it, and further ISOs under their own prefixes.
 */
export async function openConfiguredStore(source: string, extraFolder?: string, publishedFolder?: string, isos: IsoMountSpec[] = []): Promise<FileStore> {
  let main = await openStore(source);
  const opened: FileStore[] = [main];
  try {
    if (isos.length > 0) {
      const mounts: IsoMount[] = [];
      for (const iso of isos) {
        const store = await openStore(iso.source);
        opened.push(store);
        mounts.push({ prefix: iso.prefix, store });
      }
      main = new MountedStore(main, mounts);
    }
    if (!extraFolder && !publishedFolder) return main;
    const layers: FileStore[] = [];
    if (publishedFolder) layers.push(await new FolderStore(publishedFolder).init());
    layers.push(main);
    if (extraFolder) layers.push(await new FolderStore(extraFolder).init());
    return new LayeredStore(layers, publishedFolder ? 1 : 0);
  } catch (err) {
    await Promise.all(opened.map((s) => s.close().catch(() => undefined)));
    throw err;
  }
}

/** openConfiguredStore from a StoreSpec. */
export function openStoreSpec(spec: StoreSpec): Promise<FileStore> {
  return openConfiguredStore(spec.source, spec.extraFolder, spec.publishedFolder, spec.isos ?? []);
}
