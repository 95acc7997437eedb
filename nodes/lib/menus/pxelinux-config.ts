import { urlPath } from '../http/ipxe-script';
import { linuxEntries, resolveMenuPath, type MenuEntry } from './syslinux';

/**
 * What a client gets instead of waiting at the ISO's menu (which has no timeout):
 *  - 'menu':    the ISO's own PXE menu, untouched (today's behaviour);
 *  - 'timeout': the same menu, with `entry` booted after `seconds` if nobody presses a key;
 *  - 'now':     `entry` booted at once, no menu.
 */
export type MenuChoice = { mode: 'menu' } | { mode: 'timeout'; entry: string; seconds: number } | { mode: 'now'; entry: string };

export interface PxelinuxConfigInput {
  /** Store path of the ISO's PXE menu (e.g. 'boot/syslinux/archiso_pxe.cfg'). */
  menuPath: string;
  /** pxelinux's working directory (option 210) as a store path ('boot/syslinux'). */
  workDir: string;
  /** The ISO's entries (readMenu). */
  entries: MenuEntry[];
  choice: MenuChoice;
  /** Kernel parameters added to the chosen entry ('script=http://… copytoram'). */
  extraArgs?: string;
  /**
   * Where our HTTP server serves the store ('http://10.0.0.1/'): the chosen entry's kernel and
   * initrds are fetched from there instead of over TFTP. Only for a loader that speaks HTTP
   * (loaderFetchesHttp); absent: TFTP, as the ISO's entry says.
   */
  kernelBaseUrl?: string;
  /**
   * The menu a person sees ('menu' and 'timeout'), in place of INCLUDEing the ISO's: the top menu
   * of several ISOs (topMenuLines), whose LABELs are the entries' labels.
   */
  menuLines?: string[];
}

/** Our own label for the entry we boot: hidden in the menu, so the ISO's menu looks as shipped. */
export const GENERATED_LABEL = 'pxeflow_boot';

/** Longest extra kernel parameter string: Linux's command line is 2 KiB on x86 anyway. */
export const MAX_EXTRA_ARGS = 1024;

export class MenuError extends Error {
  constructor(
    readonly code: 'NO_ENTRY' | 'BAD_ARGS' | 'BAD_TIMEOUT' | 'BAD_URL',
    message: string,
  ) {
    super(message);
    this.name = 'MenuError';
  }
}

/** Kernel parameters as one config line: no line breaks or control characters (they would start a new directive). */
export function checkExtraArgs(args: string | undefined): string {
  const s = (args ?? '').trim();
  if (s.length > MAX_EXTRA_ARGS) throw new MenuError('BAD_ARGS', `extra kernel parameters are longer than ${MAX_EXTRA_ARGS} characters`);
  // eslint-disable-next-line no-control-regex -- exactly what is refused
  if (/[\x00-\x1f\x7f]/.test(s)) throw new MenuError('BAD_ARGS', 'extra kernel parameters must be one line without control characters');
  return s;
}

/** How a config in `workDir` names a store path: relative when below it, else from the TFTP root. */
export function nameFrom(workDir: string, storePath: string): string {
  const dir = workDir.replace(/^\/+|\/+$/g, '');
  return dir && storePath.startsWith(`${dir}/`) ? storePath.slice(dir.length + 1) : `::/${storePath}`;
}

/**
 * lpxelinux.0 (syslinux's loader with its own TCP/IP stack) fetches http:// URLs in LINUX and
 * INITRD; pxelinux.0 speaks TFTP only. Named by the boot file the client is handed.
 */
export function loaderFetchesHttp(bootFile: string | undefined): boolean {
  return /(^|\/)lpxelinux\.0$/i.test(String(bootFile ?? '').trim());
}

/** An http:// base URL usable in a pxelinux config line: no spaces, quotes or control characters; ends with '/'. */
export function checkKernelBaseUrl(url: string): string {
  // eslint-disable-next-line no-control-regex -- exactly what is refused
  if (!/^http:\/\/[^\s/?#]+(\/[^\s?#]*)?$/i.test(url) || /[\x00-\x1f\x7f"',]/.test(url)) {
    throw new MenuError('BAD_URL', `"${url}" is not an http:// base URL for the kernel (lpxelinux cannot fetch https://)`);
  }
  return url.endsWith('/') ? url : `${url}/`;
}

/**
 * The entry with its kernel and initrds named as URLs below `baseUrl`: TFTP's lock-step transfer
 * of ~100 MB of kernel and initramfs is the slowest part of a BIOS boot, HTTP streams them. Paths
 * are resolved as pxelinux would ('::/x' from the root, the rest from its working directory).
 */
export function kernelOverHttp(e: MenuEntry, workDir: string, baseUrl: string): MenuEntry {
  const base = checkKernelBaseUrl(baseUrl);
  const url = (name: string): string => `${base}${urlPath(resolveMenuPath(name.trim(), workDir))}`;
  return {
    ...e,
    kernel: e.kernel && url(e.kernel),
    initrd: e.initrd && e.initrd.split(',').filter((p) => p.trim()).map(url).join(','),
  };
}

function entryBlock(e: MenuEntry, extra: string): string[] {
  const lines = [`LABEL ${GENERATED_LABEL}`, 'MENU HIDE', `LINUX ${e.kernel}`];
  if (e.initrd) lines.push(`INITRD ${e.initrd}`);
  const append = [e.append, extra].filter(Boolean).join(' ');
  if (append) lines.push(`APPEND ${append}`);
  if (e.sysappend !== undefined) lines.push(`SYSAPPEND ${e.sysappend}`);
  return lines;
}

/**
 * A pxelinux config that boots the way `choice` says. The ISO's files are not changed: 'menu' and
 * 'timeout' INCLUDE its PXE menu, and the entry we boot is a hidden copy of the chosen one with
 * the extra parameters appended, so the menu a person sees is the ISO's own.
 */
export function pxelinuxConfig(input: PxelinuxConfigInput): string {
  const extra = checkExtraArgs(input.extraArgs);
  const head = ['# Written by node-red-pxe for pxelinux. The ISO\'s own files are unchanged.'];
  const { choice } = input;
  const menu = input.menuLines ?? [`INCLUDE ${nameFrom(input.workDir, input.menuPath)}`];
  if (choice.mode === 'menu') return [...head, ...menu, ''].join('\n');

  const found = input.entries.find((e) => e.label === choice.entry);
  if (!found?.kernel) throw new MenuError('NO_ENTRY', `the ISO's menu has no entry "${choice.entry}" (it has: ${linuxEntries({ entries: input.entries, files: [], skipped: [] }).map((e) => e.label).join(', ') || 'none'})`);
  // A COM32 module (chain.c32, a memtest) stays as the ISO names it: only a Linux boot is sped up.
  const entry = input.kernelBaseUrl && !/\.c32$/i.test(found.kernel) ? kernelOverHttp(found, input.workDir, input.kernelBaseUrl) : found;
  if (choice.mode === 'now') {
    // No UI line: with PROMPT 0 pxelinux boots DEFAULT straight away.
    return [...head, `DEFAULT ${GENERATED_LABEL}`, 'PROMPT 0', ...entryBlock(entry, extra), ''].join('\n');
  }
  const seconds = choice.seconds;
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > 3600) throw new MenuError('BAD_TIMEOUT', 'the menu timeout must be 1 to 3600 seconds');
  return [
    ...head,
    ...menu,
    // The ISO's entry stays highlighted; the timeout boots our copy with the extra parameters.
    `DEFAULT ${found.label}`,
    `TIMEOUT ${Math.round(seconds * 10)}`,
    `ONTIMEOUT ${GENERATED_LABEL}`,
    ...entryBlock(entry, extra),
    '',
  ].join('\n');
}
