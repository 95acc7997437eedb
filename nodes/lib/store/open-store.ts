import * as fs from 'node:fs';
import { FolderStore } from './folder-store';
import { IsoStore } from './iso-store';
import { LayeredStore } from './layered-store';
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

/**
 * The store a pxe-iso-store node serves: its image or folder and, when configured, a folder of
 * extra files (boot loaders the image lacks) looked up after it, and the folder of files the flow
 * published (PublishedFiles) looked up before it.
 */
export async function openConfiguredStore(source: string, extraFolder?: string, publishedFolder?: string): Promise<FileStore> {
  const main = await openStore(source);
  if (!extraFolder && !publishedFolder) return main;
  const layers: FileStore[] = [];
  try {
    if (publishedFolder) layers.push(await new FolderStore(publishedFolder).init());
    layers.push(main);
    if (extraFolder) layers.push(await new FolderStore(extraFolder).init());
    return new LayeredStore(layers, publishedFolder ? 1 : 0);
  } catch (err) {
    await main.close();
    throw err;
  }
}
