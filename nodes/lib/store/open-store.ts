import * as fs from 'node:fs';
import { FolderStore } from './folder-store';
import { StoreError, type FileStore } from './types';

/** Opens the store a user configured: a folder, or (when the ISO backend is present) an image. */
export async function openStore(source: string): Promise<FileStore> {
  if (!source) throw new StoreError('EINVAL', 'no ISO image or folder configured');
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(source);
  } catch {
    throw new StoreError('ENOENT', `${source} does not exist`);
  }
  if (st.isDirectory()) return new FolderStore(source).init();
  throw new StoreError('EBADIMAGE', `${source} is a file; only folders can be served by this version`);
}
