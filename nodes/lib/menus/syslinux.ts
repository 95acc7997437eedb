/**
 * Reads the boot entries of a syslinux/pxelinux menu as pxelinux would: from one config file,
 * following INCLUDE, collecting each LABEL block. Only what choosing and rewriting an entry needs
 * (label, menu text, kernel, initrd, append, sysappend); everything else is kept as raw lines.
 *
 * Trust: the files come from the user's ISO, which we serve but did not write. Parsing is bounded
 * (MENU_LIMITS: files, bytes per file, INCLUDE depth, entries) and never throws on odd content;
 * an unreadable or missing INCLUDE is skipped, as pxelinux skips it.
 */
export const MENU_LIMITS = {
  files: 32,
  bytesPerFile: 256 * 1024,
  depth: 8,
  entries: 256,
};

export interface MenuEntry {
  /** The LABEL name, as typed at the boot: prompt. */
  label: string;
  /** MENU LABEL text without the '^' hotkey marks ('' when the block has none). */
  title: string;
  /** LINUX or KERNEL. */
  kernel?: string;
  /** INITRD (comma-separated as written). */
  initrd?: string;
  /** APPEND, as written ('' when absent). */
  append: string;
  /** SYSAPPEND bitmask, when set. */
  sysappend?: number;
  /** MENU HIDE entries are not shown in the menu. */
  hidden: boolean;
  /** The config file that defined it (store path). */
  file: string;
}

export interface ParsedMenu {
  entries: MenuEntry[];
  /** Every config file read, in order (store paths). */
  files: string[];
  /** INCLUDEs that could not be read (missing or over the limits). */
  skipped: string[];
}

/** Reads one store file as text, or null when it is not there. */
export type ReadText = (storePath: string) => Promise<string | null>;

/**
 * Where pxelinux finds a name from a config: '::/x' and '/x' from the TFTP root, anything else
 * from its working directory (DHCP option 210, the path prefix). Returns a store path ('a/b').
 */
export function resolveMenuPath(name: string, workDir: string): string {
  const root = name.startsWith('::') ? name.slice(2) : name;
  const joined = root.startsWith('/') ? root : `${workDir.replace(/\/+$/, '')}/${root}`;
  const out: string[] = [];
  for (const seg of joined.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return out.join('/');
}

const keyword = (line: string): [string, string] => {
  const m = /^\s*(\S+)\s*(.*?)\s*$/.exec(line);
  return m ? [m[1]!.toUpperCase(), m[2]!] : ['', ''];
};

/** Reads `configPath` (a store path) and what it INCLUDEs, with `workDir` the path prefix. */
export async function readMenu(read: ReadText, configPath: string, workDir: string): Promise<ParsedMenu> {
  const menu: ParsedMenu = { entries: [], files: [], skipped: [] };
  const walk = async (file: string, depth: number): Promise<void> => {
    if (depth > MENU_LIMITS.depth || menu.files.length >= MENU_LIMITS.files) {
      menu.skipped.push(file);
      return;
    }
    const text = await read(file).catch(() => null);
    if (text === null || text.length > MENU_LIMITS.bytesPerFile) {
      menu.skipped.push(file);
      return;
    }
    menu.files.push(file);
    let entry: MenuEntry | undefined;
    let inText = false;
    for (const raw of text.split(/\r?\n/)) {
      const [kw, rest] = keyword(raw);
      if (inText) {
        if (kw === 'ENDTEXT') inText = false;
        continue;
      }
      if (kw === '' || kw.startsWith('#')) continue;
      if (kw === 'TEXT' && rest.toUpperCase() === 'HELP') {
        inText = true;
        continue;
      }
      if (kw === 'LABEL') {
        entry = undefined;
        if (menu.entries.length >= MENU_LIMITS.entries || !rest) continue;
        entry = { label: rest, title: '', append: '', hidden: false, file };
        menu.entries.push(entry);
        continue;
      }
      if (kw === 'INCLUDE') {
        // 'INCLUDE file [menu title]': only the file name matters here.
        const name = rest.split(/\s+/)[0];
        if (name) await walk(resolveMenuPath(name, workDir), depth + 1);
        continue;
      }
      if (!entry) continue;
      if (kw === 'LINUX' || kw === 'KERNEL') entry.kernel = rest;
      else if (kw === 'INITRD') entry.initrd = rest;
      else if (kw === 'APPEND') entry.append = rest;
      else if (kw === 'SYSAPPEND' || kw === 'IPAPPEND') entry.sysappend = Number.parseInt(rest, 10) || 0;
      else if (kw === 'MENU') {
        const [sub, arg] = keyword(rest);
        if (sub === 'LABEL') entry.title = arg.replace(/\^/g, '');
        else if (sub === 'HIDE') entry.hidden = true;
      }
    }
  };
  await walk(resolveMenuPath(configPath, '/'), 0);
  return menu;
}

/** The entries a user can boot Linux from (a kernel and not hidden), in menu order. */
export function linuxEntries(menu: ParsedMenu): MenuEntry[] {
  return menu.entries.filter((e) => e.kernel && !e.hidden && !/\.c32$/i.test(e.kernel));
}
