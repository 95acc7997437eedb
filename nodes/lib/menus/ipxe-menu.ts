import { urlPath } from '../http/ipxe-script';
import { checkExtraArgs, MenuError, type MenuChoice } from './pxelinux-config';
import { resolveMenuPath, type MenuEntry } from './syslinux';

/**
 * The ISO's PXE menu as an iPXE script, for UEFI clients (the ISO's own UEFI boot cannot netboot):
 * the same entries in the same order, kernel and initrds over HTTP from our server, and the same
 * choice as for BIOS clients (wait, boot an entry after a timeout, or boot it at once).
 *
 * pxelinux entries rely on SYSAPPEND 3 (ip= and BOOTIF=) and on archiso replacing `${pxeserver}`
 * with the boot server from ip=. iPXE has neither, and would expand `${pxeserver}` itself (to
 * nothing), so the script names our server outright and asks the initramfs for DHCP (ip=dhcp).
 */
export interface IpxeMenuInput {
  /** The ISO's entries (readMenu); those without an initrd (memtest, chain loaders) are left out. */
  entries: MenuEntry[];
  /** pxelinux's working directory (option 210), to resolve the entries' relative paths. */
  workDir: string;
  /** Where the store is served over HTTP, ending with '/' ('http://10.0.0.1/'). */
  baseUrl: string;
  /** Our server's address as the initramfs should reach it (NBD, NFS, HTTP): '10.0.0.1'. */
  server: string;
  /** Menu title (the ISO's volume label, say). */
  title: string;
  choice: MenuChoice;
  extraArgs?: string;
}

/** iPXE labels and item names: letters, digits, '_', '-', '.' (anything else is replaced). */
const ipxeName = (label: string): string => `e_${label.replace(/[^\w.-]/g, '_')}`;
/** Menu text on one line, without iPXE's setting syntax. */
const ipxeText = (s: string): string => s.replace(/[\r\n]+/g, ' ').replace(/\$\{/g, '$ {').trim();
const basename = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

function bootBlock(e: MenuEntry, input: IpxeMenuInput, extra: string): string[] {
  const base = input.baseUrl.endsWith('/') ? input.baseUrl : `${input.baseUrl}/`;
  const kernel = resolveMenuPath(e.kernel!, input.workDir);
  const initrds = e.initrd!.split(',').map((p) => resolveMenuPath(p.trim(), input.workDir)).filter(Boolean);
  // archiso's parameters name the server through ${pxeserver}; iPXE would expand that to nothing.
  // The HTTP entry's root URL becomes ours (port and path included: it may not be port 80 at /).
  const append = e.append
    .replace(/http:\/\/\$\{pxeserver\}\//g, base)
    .replace(/\$\{pxeserver\}/g, input.server)
    .replace(/\$\{/g, '$ {');
  const args = [append, 'ip=dhcp', ...initrds.map((p) => `initrd=${basename(p)}`), extra].filter(Boolean).join(' ');
  return [`:${ipxeName(e.label)}`, `kernel ${base}${urlPath(kernel)} ${args}`, ...initrds.map((p) => `initrd ${base}${urlPath(p)}`), 'boot', ''];
}

export function ipxeMenuScript(input: IpxeMenuInput): string {
  const extra = checkExtraArgs(input.extraArgs).replace(/\$\{/g, '$ {');
  const entries = input.entries.filter((e) => e.kernel && e.initrd && !e.hidden && !/\.c32$/i.test(e.kernel));
  if (entries.length === 0) throw new MenuError('NO_ENTRY', "the ISO's menu has no Linux entry to offer");
  const head = ['#!ipxe', "# Written by node-red-pxe from the ISO's PXE menu.", ''];
  const { choice } = input;
  const chosen = choice.mode === 'menu' ? undefined : entries.find((e) => e.label === choice.entry);
  if (choice.mode !== 'menu' && !chosen) throw new MenuError('NO_ENTRY', `the ISO's menu has no entry "${choice.entry}" (it has: ${entries.map((e) => e.label).join(', ')})`);
  const blocks = (list: MenuEntry[]): string[] => list.flatMap((e) => bootBlock(e, input, e === chosen ? extra : ''));
  if (choice.mode === 'now') return [...head, ...bootBlock(chosen!, input, extra)].join('\n');

  let choose = 'choose target && goto ${target} || exit';
  if (choice.mode === 'timeout') {
    if (!Number.isFinite(choice.seconds) || choice.seconds < 1 || choice.seconds > 3600) throw new MenuError('BAD_TIMEOUT', 'the menu timeout must be 1 to 3600 seconds');
    choose = `choose --default ${ipxeName(chosen!.label)} --timeout ${Math.round(choice.seconds * 1000)} target && goto \${target} || exit`;
  }
  return [
    ...head,
    `menu ${ipxeText(input.title)}`,
    ...entries.map((e) => `item ${ipxeName(e.label)} ${ipxeText(e.title || e.label)}`),
    choose,
    '',
    ...blocks(entries),
  ].join('\n');
}
