import { nameFrom } from './pxelinux-config';
import { resolveMenuPath, type MenuEntry } from './syslinux';

/**
 * Several ISOs in one boot menu. The main ISO is served at the root, each further ISO under its
 * own path prefix ('/arch-2021/...', MountedStore); its entries are copied into one generated
 * menu with what they name pointed at that ISO:
 *  - LINUX and INITRD become '::/<prefix>/<path>' (from the TFTP root, whatever pxelinux's
 *    working directory is: the main ISO's);
 *  - archiso_http_srv gets '<prefix>/' appended: the HTTP server serves that ISO's root there;
 *  - archiso_nfs_srv's export path gets '/<prefix>': the NFS server mounts a folder below an
 *    export, and that folder is the ISO's root;
 *  - archiso_nbd_name names the ISO's own NBD export (the NBD node exports each further ISO under
 *    its prefix), added when the entry has archiso_nbd_srv;
 *  - archisobasedir stays as the ISO has it: it is a path inside the ISO's root (NBD finds it on
 *    the attached image), and every method above now reaches that ISO's root.
 */
export interface IsoPlace {
  /** The path prefix the ISO is served under (one segment, no slashes). */
  prefix: string;
  /** The NBD export name of the ISO (its prefix, as the NBD node exports it). */
  nbdExport: string;
}

/** The kernel parameters of a further ISO's entry, pointed at that ISO (see above). */
export function rebaseAppend(append: string, place: IsoPlace): string {
  const words = append.split(/\s+/).filter(Boolean);
  let nbd = false;
  let named = false;
  const out = words.map((w) => {
    const eq = w.indexOf('=');
    const key = eq > 0 ? w.slice(0, eq) : w;
    const value = eq > 0 ? w.slice(eq + 1) : '';
    switch (key) {
      case 'archiso_http_srv':
        return `${key}=${value.endsWith('/') ? value : `${value}/`}${place.prefix}/`;
      case 'archiso_nfs_srv':
        return `${key}=${value.replace(/\/+$/, '')}/${place.prefix}`;
      case 'archiso_nbd_srv':
        nbd = true;
        return w;
      case 'archiso_nbd_name':
        named = true;
        return `${key}=${place.nbdExport}`;
      default:
        return w;
    }
  });
  if (nbd && !named) out.push(`archiso_nbd_name=${place.nbdExport}`);
  return out.join(' ');
}

/** One name of an entry (kernel or initrd), resolved in the ISO and named from the TFTP root under its prefix. */
function rebasePath(name: string, workDir: string, prefix: string): string {
  return `::/${prefix}/${resolveMenuPath(name, workDir)}`;
}

/**
 * A further ISO's entry as the top menu lists it: labelled '<prefix>/<label>' (what a rule names
 * to boot it), its menu text prefixed with `isoTitle`, its files and parameters pointed at it.
 */
export function rebaseEntry(e: MenuEntry, workDir: string, place: IsoPlace, isoTitle: string): MenuEntry {
  return {
    ...e,
    label: `${place.prefix}/${e.label}`,
    title: `${isoTitle}: ${e.title || e.label}`,
    ...(e.kernel ? { kernel: rebasePath(e.kernel, workDir, place.prefix) } : {}),
    ...(e.initrd
      ? {
          initrd: e.initrd
            .split(',')
            .map((p) => p.trim())
            .filter(Boolean)
            .map((p) => rebasePath(p, workDir, place.prefix))
            .join(','),
        }
      : {}),
    append: rebaseAppend(e.append, place),
  };
}

export interface TopMenuInput {
  /** pxelinux's working directory (the main ISO's option 210) as a store path. */
  workDir: string;
  /**
   * Store path of the main ISO's menu head (archiso_head.cfg: serial console, UI vesamenu.c32,
   * colours), INCLUDEd so the top menu looks like the ISO's; none: a plain boot: prompt.
   */
  headPath?: string;
  /** Every ISO's bootable entries, in menu order (the main ISO's first). */
  entries: MenuEntry[];
}

/** Menu text on one line (a line break would start a directive). */
const oneLine = (s: string): string => s.replace(/[\r\n]+/g, ' ').trim();

/** The pxelinux lines of the top menu: the main ISO's menu head, then one LABEL block per entry. */
export function topMenuLines(input: TopMenuInput): string[] {
  const lines: string[] = [];
  if (input.headPath) lines.push(`INCLUDE ${nameFrom(input.workDir, input.headPath)}`);
  for (const e of input.entries) {
    if (!e.kernel) continue;
    lines.push('', `LABEL ${e.label}`, `MENU LABEL ${oneLine(e.title || e.label)}`, `LINUX ${e.kernel}`);
    if (e.initrd) lines.push(`INITRD ${e.initrd}`);
    if (e.append) lines.push(`APPEND ${e.append}`);
    if (e.sysappend !== undefined) lines.push(`SYSAPPEND ${e.sysappend}`);
  }
  lines.push('');
  return lines;
}
