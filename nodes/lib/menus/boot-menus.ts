import { detectArchiso, type ArchisoInfo } from '../store/archiso';
import type { PublishedFiles } from '../store/published-files';
import type { FileStore } from '../store/types';
import { ipxeMenuScript } from './ipxe-menu';
import { MenuError, pxelinuxConfig, type MenuChoice } from './pxelinux-config';
import { linuxEntries, readMenu, type MenuEntry } from './syslinux';

/** Largest menu file read whole (the ISO's configs are a few KiB). */
const MAX_MENU_FILE = 256 * 1024;

/** Where generated pxelinux configs go, below pxelinux's working directory (so option 209 names them plainly). */
export const GENERATED_DIR = 'pxe-flow';

export interface BootChoice {
  choice: MenuChoice;
  /** Kernel parameters added to the chosen entry. */
  extraArgs?: string;
  /** pxelinux: fetch the chosen entry's kernel and initrds from this HTTP base URL (pxelinux-config.ts). */
  kernelBaseUrl?: string;
}

/**
 * The ISO's own PXE menu, and the configs that make a client boot one of its entries without
 * anyone at the keyboard. Generated pxelinux configs are written as published files of the store
 * (so TFTP serves them, and they show in the pxe-files list), under `<path prefix>/pxe-flow/`.
 */
export class BootMenus {
  private constructor(
    private readonly store: FileStore,
    readonly info: ArchisoInfo,
    /** The ISO's PXE menu file (store path). */
    readonly menuPath: string,
    /** pxelinux's working directory (option 210), e.g. '/boot/syslinux/'. */
    readonly workDir: string,
    readonly entries: MenuEntry[],
  ) {}

  /** Reads the store's Arch PXE menu; throws MenuError NO_ENTRY when the store has none. */
  static async load(store: FileStore): Promise<BootMenus> {
    const info = await detectArchiso(store);
    if (!info.dhcp || !info.files.config) throw new MenuError('NO_ENTRY', 'the store holds no Arch ISO PXE menu');
    const dir = info.files.config.slice(0, info.files.config.lastIndexOf('/'));
    const read = async (p: string): Promise<string | null> => {
      const st = await store.stat(p);
      if (st.isDirectory || st.size > MAX_MENU_FILE) return null;
      const chunks: Buffer[] = [];
      for await (const c of await store.createReadStream(p)) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    };
    const menuPath = `${dir}/archiso_pxe.cfg`;
    const menu = await readMenu(read, menuPath, info.dhcp.pathPrefix);
    return new BootMenus(store, info, menuPath, info.dhcp.pathPrefix, menu.entries);
  }

  /** What the editor offers: the bootable entries in menu order. */
  get choices(): { label: string; title: string }[] {
    return linuxEntries({ entries: this.entries, files: [], skipped: [] }).map((e) => ({ label: e.label, title: e.title || e.label }));
  }

  /**
   * Writes the pxelinux config for `key` (a rule or a MAC: letters, digits, '-', '_') and returns
   * the option 209 value that names it. For the plain menu nothing is written: the ISO's own
   * config is the answer (there is no chosen entry to add parameters to).
   */
  async publishPxelinux(published: PublishedFiles, key: string, boot: BootChoice): Promise<string> {
    if (boot.choice.mode === 'menu') return this.info.dhcp!.configFile;
    const text = pxelinuxConfig({ menuPath: this.menuPath, workDir: this.workDir, entries: this.entries, choice: boot.choice, extraArgs: boot.extraArgs, kernelBaseUrl: boot.kernelBaseUrl });
    const name = `${GENERATED_DIR}/${key.replace(/[^\w-]/g, '_')}.cfg`;
    await published.set(`${this.workDir}/${name}`, text);
    return name;
  }

  /** The iPXE script for UEFI clients, the entries served from `baseUrl` by the server at `server`. */
  ipxe(boot: BootChoice, baseUrl: string, server: string): string {
    return ipxeMenuScript({ entries: this.entries, workDir: this.workDir, baseUrl, server, title: 'Arch Linux', choice: boot.choice, extraArgs: boot.extraArgs });
  }

  get source(): string {
    return this.store.source;
  }
}
