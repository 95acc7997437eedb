import { recordBootChoice } from '../boot-events/choices';
import { detectArchiso, type ArchisoInfo } from '../store/archiso';
import { IsoStore } from '../store/iso-store';
import { isoMounts, mainStore } from '../store/mounted-store';
import type { PublishedFiles } from '../store/published-files';
import type { FileStore } from '../store/types';
import { ipxeMenuScript } from './ipxe-menu';
import { MenuError, pxelinuxConfig, type MenuChoice } from './pxelinux-config';
import { linuxEntries, readMenu, type MenuEntry } from './syslinux';
import { rebaseEntry, topMenuLines } from './top-menu';

/** Largest menu file read whole (the ISO's configs are a few KiB). */
const MAX_MENU_FILE = 256 * 1024;

/** Where generated pxelinux configs go, below pxelinux's working directory (so option 209 names them plainly). */
export const GENERATED_DIR = 'pxe-flow';

/** The key of the top menu of several ISOs that BIOS rules without a choice hand out. */
export const TOP_MENU_KEY = 'menu';

export interface BootChoice {
  choice: MenuChoice;
  /** Kernel parameters added to the chosen entry. */
  extraArgs?: string;
  /** pxelinux: fetch the chosen entry's kernel and initrds from this HTTP base URL (pxelinux-config.ts). */
  kernelBaseUrl?: string;
}

/** One ISO of the menu: the main one (prefix '') or one served under its prefix. */
export interface IsoMenu {
  /** '' for the main ISO (served at the root), else its path prefix. */
  prefix: string;
  /** The ISO's file (or folder) name, as boot events name it. */
  name: string;
  /** Menu text for the ISO: its volume label (which carries the release: ARCH_202611), and its prefix. */
  title: string;
  /** Its entries as the top menu lists them (a further ISO's pointed at it: rebaseEntry). */
  entries: MenuEntry[];
}

const baseName = (p: string): string => p.replace(/\/+$/, '').split('/').pop() ?? p;

/** What a store's Arch PXE menu is made of; throws MenuError NO_ENTRY when it has none. */
async function readIsoMenu(store: FileStore): Promise<{ info: ArchisoInfo; menuPath: string; workDir: string; entries: MenuEntry[]; headPath?: string }> {
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
  // archiso's menus keep their look (serial console, UI module, colours) in a head file.
  const headPath = menu.files.find((f) => /_head\.cfg$/i.test(f));
  return { info, menuPath, workDir: info.dhcp.pathPrefix, entries: menu.entries, ...(headPath ? { headPath } : {}) };
}

/** The ISO's title for menus: its volume label, or the file name of a folder store. */
function isoTitle(store: FileStore): string {
  const s = mainStore(store);
  return (s instanceof IsoStore && s.volumeId.trim()) || baseName(s.source);
}

/**
 * The ISO's own PXE menu, and the configs that make a client boot one of its entries without
 * anyone at the keyboard. Generated pxelinux configs are written as published files of the store
 * (so TFTP serves them, and they show in the pxe-files list), under `<path prefix>/pxe-flow/`.
 *
 * A store with further ISOs (MountedStore) gets one generated top menu listing every ISO's
 * entries; a further ISO's entries are named '<prefix>/<label>' and point at that ISO (top-menu.ts).
 */
export class BootMenus {
  private constructor(
    private readonly store: FileStore,
    readonly info: ArchisoInfo,
    /** The ISO's PXE menu file (store path). */
    readonly menuPath: string,
    /** pxelinux's working directory (option 210), e.g. '/boot/syslinux/'. */
    readonly workDir: string,
    /** The main ISO's entries as its menu has them; with further ISOs, theirs follow (rebased). */
    readonly entries: MenuEntry[],
    /** Every ISO, the main one first; one entry for a one-ISO store. */
    readonly isos: IsoMenu[],
    /** The main ISO's menu head (INCLUDEd by the top menu for its look). */
    private readonly headPath: string | undefined,
    /** Further ISOs left out of the menu, and why (no Arch PXE menu in them). */
    readonly skipped: { prefix: string; reason: string }[],
  ) {}

  /** Reads the store's Arch PXE menu (and its further ISOs'); throws MenuError NO_ENTRY when the main store has none. */
  static async load(store: FileStore): Promise<BootMenus> {
    const main = await readIsoMenu(store);
    const mainName = baseName(mainStore(store).source);
    const mounts = isoMounts(store);
    if (mounts.length === 0) {
      return new BootMenus(store, main.info, main.menuPath, main.workDir, main.entries, [{ prefix: '', name: mainName, title: isoTitle(store), entries: main.entries }], main.headPath, []);
    }
    const mainTitle = isoTitle(store);
    const isos: IsoMenu[] = [
      {
        prefix: '',
        name: mainName,
        title: mainTitle,
        entries: linuxEntries({ entries: main.entries, files: [], skipped: [] }).map((e) => ({ ...e, title: `${mainTitle}: ${e.title || e.label}` })),
      },
    ];
    const skipped: { prefix: string; reason: string }[] = [];
    for (const m of mounts) {
      try {
        const menu = await readIsoMenu(m.store);
        const title = `${isoTitle(m.store)} /${m.prefix}/`;
        const entries = linuxEntries({ entries: menu.entries, files: [], skipped: [] }).map((e) => rebaseEntry(e, menu.workDir, { prefix: m.prefix, nbdExport: m.prefix }, title));
        isos.push({ prefix: m.prefix, name: baseName(m.store.source), title, entries });
      } catch (err) {
        skipped.push({ prefix: m.prefix, reason: (err as Error).message });
      }
    }
    return new BootMenus(store, main.info, main.menuPath, main.workDir, isos.flatMap((i) => i.entries), isos, main.headPath, skipped);
  }

  /** True when the store serves further ISOs: BIOS clients get the generated top menu. */
  get multi(): boolean {
    return this.isos.length > 1 || this.skipped.length > 0;
  }

  /** What the editor offers: the bootable entries in menu order. */
  get choices(): { label: string; title: string }[] {
    return linuxEntries({ entries: this.entries, files: [], skipped: [] }).map((e) => ({ label: e.label, title: e.title || e.label }));
  }

  /** The ISO an entry label belongs to (a further ISO's entries are '<prefix>/<label>'). */
  isoOf(label: string): IsoMenu | undefined {
    return this.isos.find((i) => i.entries.some((e) => e.label === label)) ?? (this.isos.length === 1 ? this.isos[0] : undefined);
  }

  /** The pxelinux config text `boot` asks for (the top menu in place of the ISO's when there are several). */
  pxelinux(boot: BootChoice): string {
    const menuLines = this.multi ? topMenuLines({ workDir: this.workDir, ...(this.headPath ? { headPath: this.headPath } : {}), entries: this.entries }) : undefined;
    return pxelinuxConfig({ menuPath: this.menuPath, workDir: this.workDir, entries: this.entries, choice: boot.choice, extraArgs: boot.extraArgs, kernelBaseUrl: boot.kernelBaseUrl, ...(menuLines ? { menuLines } : {}) });
  }

  /**
   * Writes the pxelinux config for `key` (a rule or a MAC: letters, digits, '-', '_') and returns
   * the option 209 value that names it. For the plain menu of one ISO nothing is written: the
   * ISO's own config is the answer (there is no chosen entry to add parameters to). With several
   * ISOs the plain menu is the generated top menu.
   */
  async publishPxelinux(published: PublishedFiles, key: string, boot: BootChoice): Promise<string> {
    if (boot.choice.mode === 'menu' && !this.multi) return this.info.dhcp!.configFile;
    const text = this.pxelinux(boot);
    const name = `${GENERATED_DIR}/${key.replace(/[^\w-]/g, '_')}.cfg`;
    await published.set(`${this.workDir}/${name}`, text);
    // The boot view tells which entry and ISO a client that gets this config boots.
    const label = boot.choice.mode === 'menu' ? undefined : boot.choice.entry;
    const iso = label === undefined ? undefined : this.isoOf(label);
    recordBootChoice(this.workDir, name, label === undefined ? null : { entry: label.slice(label.lastIndexOf('/') + 1), ...(iso ? { iso: iso.name } : {}) });
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
