/**
 * Boot rules: which boot file a client gets. An ordered list, first match wins; a per-MAC
 * override set at run time (from a flow) comes before all rules.
 *
 * A rule's conditions are ANDed; an absent condition matches anything. `ipxe: false` on a rule
 * that hands out an iPXE binary keeps iPXE from chain-loading itself forever; an `ipxe: true`
 * rule placed first gives iPXE its script URL instead.
 *
 * UEFI HTTP Boot clients (option 60 "HTTPClient…", option 93 15/16/18/19) fetch their boot file
 * by HTTP: they get it as an absolute URL and option 60 "HTTPClient" back, or the firmware
 * ignores the offer (edk2 HttpBootDxe). A relative boot file becomes http://<next-server>/<file>,
 * the HTTP node's address for a file of the store.
 *
 * This module is policy: it decides what a client boots and resolves the decision for that client
 * (`BootDecision`). Writing it into a reply's fields and options is the protocol's
 * (boot-options.ts).
 */
import type { ClientInfo } from './client';
import { isIpv4, normalizeMac } from './ip';
import { encodeExtraOption, type ExtraOption } from './options';

export interface BootMatch {
  /** Option 93 values (0 BIOS, 6/7/9 x86/x64 UEFI, 10/11 ARM UEFI …). */
  arch?: number[];
  /** true: iPXE only; false: never iPXE. */
  ipxe?: boolean;
  /** MAC addresses or prefixes (any separator). */
  mac?: string[];
  /** Vendor class (option 60) prefixes, case-insensitive. */
  vendorClass?: string[];
  /** User classes (option 77), exact. */
  userClass?: string[];
  /** Raspberry Pi: a Pi MAC prefix or the Pi's vendor class. */
  raspberryPi?: boolean;
  /** true: UEFI HTTP Boot clients only (option 60 "HTTPClient…"); false: never them. */
  httpBoot?: boolean;
}

export interface BootAction {
  /** siaddr: the TFTP server; defaults to our own address. */
  nextServer?: string;
  /** file field and option 67 (a TFTP path, or an http:// URL for iPXE / UEFI HTTP boot). */
  bootFile?: string;
  /** Option 66; defaults to the next-server address when a boot file is given. */
  tftpServer?: string;
  /** Option 209: PXELINUX configuration file. */
  configFile?: string;
  /** Option 210: PXELINUX path prefix. */
  pathPrefix?: string;
  /** Option 43 "Raspberry Pi Boot" for the Pi boot ROM. */
  raspberryPi?: boolean;
  /** Arbitrary further options. */
  options?: ExtraOption[];
  /** Matched, but give this client no boot information (it boots from disk). */
  noBoot?: boolean;
}

export interface BootRule extends BootAction {
  name?: string;
  match: BootMatch;
}

/** The rule (or override) a client matched, as configured. */
export interface SelectedRule {
  /** Rule name, `rule N`, or `override`. */
  source: string;
  action: BootAction;
}

/**
 * What a client boots, resolved for that client: the next-server chosen, '{next-server}' filled
 * in, a URL for an HTTP Boot client. A plain object with no DHCP encoding in it; new kinds of
 * boot add fields here and their writing in boot-options.ts.
 */
export interface BootDecision {
  /** Rule name, `rule N`, or `override`. */
  source: string;
  /** Matched a rule that gives no boot information: the client boots from its disk. */
  noBoot: boolean;
  /** The server the client boots from (siaddr). */
  nextServer: string;
  /** A TFTP path, or an http(s) URL (iPXE scripts, UEFI HTTP Boot). */
  bootFile?: string;
  /** A UEFI HTTP Boot client: fetches bootFile by HTTP, has no TFTP server and no PXE menu. */
  httpBoot: boolean;
  /** The TFTP server's name (option 66). */
  tftpServer?: string;
  /** PXELINUX configuration file (option 209). */
  configFile?: string;
  /** PXELINUX path prefix (option 210). */
  pathPrefix?: string;
  /** A Raspberry Pi boot ROM, which wants "Raspberry Pi Boot" in option 43. */
  raspberryPi: boolean;
  /** Further options as configured. */
  options: ExtraOption[];
}

/** Raspberry Pi Foundation / Raspberry Pi Trading OUIs. */
export const RASPBERRY_PI_MAC_PREFIXES = ['b8:27:eb', 'dc:a6:32', 'e4:5f:01', '28:cd:c1', 'd8:3a:dd', '2c:cf:67'];

/** The Arch wiki's PXELINUX settings for an Arch ISO served from the TFTP root. */
export const ARCH_BIOS_DEFAULTS = {
  bootFile: '/arch/boot/syslinux/lpxelinux.0',
  configFile: 'boot/syslinux/archiso.cfg',
  pathPrefix: '/arch/',
} as const;

function isPi(c: ClientInfo): boolean {
  if (RASPBERRY_PI_MAC_PREFIXES.some((p) => c.mac.startsWith(p))) return true;
  // The Pi 4/5 EEPROM bootloader identifies itself in its vendor class.
  return !!c.vendorClass && /raspberry ?pi/i.test(c.vendorClass);
}

export function matches(m: BootMatch, c: ClientInfo): boolean {
  if (m.arch && m.arch.length && (c.arch === null || !m.arch.includes(c.arch))) return false;
  if (m.ipxe !== undefined && m.ipxe !== c.isIpxe) return false;
  if (m.mac && m.mac.length && !m.mac.some((p) => c.mac.startsWith(normalizeMac(p)))) return false;
  if (m.vendorClass && m.vendorClass.length) {
    const vc = (c.vendorClass ?? '').toLowerCase();
    if (!m.vendorClass.some((p) => vc.startsWith(p.toLowerCase()))) return false;
  }
  if (m.userClass && m.userClass.length && !m.userClass.some((u) => c.userClasses.includes(u))) return false;
  if (m.raspberryPi !== undefined && m.raspberryPi !== isPi(c)) return false;
  if (m.httpBoot !== undefined && m.httpBoot !== c.isHttpBoot) return false;
  return true;
}

/** Checks a rule or override at configuration time, so bad input fails at deploy, not per packet. */
export function validateAction(a: BootAction, what: string): void {
  if (a.nextServer && !isIpv4(a.nextServer)) throw new Error(`${what}: next-server ${JSON.stringify(a.nextServer)} is not an IPv4 address`);
  if (a.bootFile && Buffer.byteLength(a.bootFile) > 127 && !/^https?:/.test(a.bootFile)) {
    throw new Error(`${what}: boot file name longer than 127 bytes`);
  }
  for (const o of a.options ?? []) {
    try {
      encodeExtraOption(o);
    } catch (e) {
      throw new Error(`${what}: ${(e as Error).message}`);
    }
  }
}

export function validateRule(r: BootRule, index: number): void {
  const what = r.name ? `boot rule "${r.name}"` : `boot rule ${index + 1}`;
  for (const m of r.match.mac ?? []) {
    try {
      normalizeMac(m);
    } catch (e) {
      throw new Error(`${what}: ${(e as Error).message}`);
    }
  }
  for (const a of r.match.arch ?? []) {
    if (!Number.isInteger(a) || a < 0 || a > 0xffff) throw new Error(`${what}: architecture ${a} is not 0..65535`);
  }
  validateAction(r, what);
}

export class BootRules {
  private rules: BootRule[] = [];
  private readonly overrides = new Map<string, BootAction>();

  constructor(rules: BootRule[] = []) {
    this.setRules(rules);
  }

  setRules(rules: BootRule[]): void {
    rules.forEach(validateRule);
    this.rules = rules.slice();
  }

  /** A per-MAC override from a flow (null removes it). */
  setOverride(mac: string, action: BootAction | null): void {
    const key = normalizeMac(mac);
    if (key.split(':').length !== 6) throw new Error(`override needs a full MAC address, got ${JSON.stringify(mac)}`);
    if (action === null) this.overrides.delete(key);
    else {
      validateAction(action, `override for ${key}`);
      this.overrides.set(key, { ...action });
    }
  }

  listOverrides(): { mac: string; action: BootAction }[] {
    return [...this.overrides].map(([mac, action]) => ({ mac, action }));
  }

  /** What `c` boots, from our address `serverIp`; null when no rule matches. */
  decide(c: ClientInfo, serverIp: string): BootDecision | null {
    const selected = this.select(c);
    return selected && resolveBoot(selected, c, serverIp);
  }

  select(c: ClientInfo): SelectedRule | null {
    const o = this.overrides.get(c.mac);
    if (o) return { source: 'override', action: o };
    for (let i = 0; i < this.rules.length; i++) {
      const r = this.rules[i]!;
      if (matches(r.match, c)) return { source: r.name || `rule ${i + 1}`, action: r };
    }
    return null;
  }
}

/** The boot file as an HTTP Boot client needs it: an absolute URL (a bare path: on our HTTP node). */
export function httpBootUrl(bootFile: string, next: string): string {
  if (/^https?:\/\//i.test(bootFile)) return bootFile;
  return `http://${next}/${bootFile.replace(/\\/g, '/').replace(/^\/+/, '')}`;
}

/**
 * A matched rule resolved for client `c`: the next-server is the rule's or our own `serverIp`;
 * '{next-server}' in a boot file (an iPXE script URL) becomes it, so one flow works whatever
 * address the interface has; an HTTP Boot client gets its boot file as a URL and no TFTP server
 * for it; a TFTP boot file names its server (the rule's, or the next-server).
 */
export function resolveBoot({ source, action }: SelectedRule, c: Pick<ClientInfo, 'isHttpBoot'>, serverIp: string): BootDecision {
  const nextServer = action.nextServer || serverIp;
  const httpBoot = c.isHttpBoot;
  let bootFile = action.bootFile?.split('{next-server}').join(nextServer);
  if (bootFile && httpBoot) bootFile = httpBootUrl(bootFile, nextServer);
  const tftpServer = bootFile ? (httpBoot ? undefined : action.tftpServer || nextServer) : action.tftpServer;
  return {
    source,
    noBoot: action.noBoot === true,
    nextServer,
    ...(bootFile ? { bootFile } : {}),
    httpBoot,
    ...(tftpServer ? { tftpServer } : {}),
    ...(action.configFile ? { configFile: action.configFile } : {}),
    ...(action.pathPrefix ? { pathPrefix: action.pathPrefix } : {}),
    raspberryPi: action.raspberryPi === true,
    options: action.options ?? [],
  };
}
