/**
 * The pxe-dhcp editor's flat settings → the service's typed configuration. Kept apart from the
 * node so it is unit-tested and so the merge can feed detected Arch ISO files into the BIOS rule.
 */
import type { BootChoice } from '../menus/boot-menus';
import { ARCH_BIOS_DEFAULTS, type BootAction, type BootRule } from './boot-rules';
import { OPTION_KINDS, type ExtraOption, type OptionKind } from './options';
import type { Reservation } from './address-pool';
import type { DhcpServiceConfig } from './service';

/** One row of the editor's boot-rule list. */
export interface RuleDef {
  name?: string;
  /** What the rule matches on. */
  match?: 'any' | 'arch' | 'ipxe' | 'mac' | 'vendor' | 'userclass' | 'raspberrypi' | 'httpboot';
  /**
   * Arch numbers "7,9", MAC prefixes, vendor class prefixes, user classes (comma separated); for
   * 'httpboot', optional arch numbers ("16" x64, "19" ARM64).
   */
  value?: string;
  /** 'any' | 'yes' | 'no': restrict the rule to iPXE or non-iPXE clients. */
  ipxe?: string;
  nextServer?: string;
  bootFile?: string;
  configFile?: string;
  pathPrefix?: string;
  raspberryPi?: boolean;
  /** Extra options, one per line: `code kind value`, e.g. `211 u32 30`. */
  options?: string;
  /**
   * BIOS (pxelinux) clients: 'iso' shows the ISO's own menu (the default); 'timeout' boots
   * `entry` after `menuSeconds` unless someone presses a key; 'now' boots `entry` at once.
   */
  menu?: string;
  /** A LABEL of the ISO's PXE menu ('arch_nfs'). */
  entry?: string;
  menuSeconds?: string | number;
  /** Kernel parameters added to the chosen entry ('script=http://… copytoram'). */
  kernelArgs?: string;
  /**
   * Where the chosen entry's kernel and initramfs come from (kernelHttpOf): '' or 'auto' (the
   * default) over HTTP from the flow's pxe-http node serving the store, when the loader can
   * (lpxelinux.0); 'tftp' as the ISO's entry says; or an http:// base URL ('{next-server}' allowed).
   */
  kernelHttp?: string;
}

export interface DhcpNodeDef {
  mode?: string;
  iface?: string;
  isolation?: string;
  poolStart?: string;
  poolEnd?: string;
  router?: string;
  dns?: string;
  domain?: string;
  leaseTime?: string | number;
  authoritative?: boolean;
  force?: boolean;
  reservations?: Reservation[];
  rules?: RuleDef[];
}

/**
 * A bad setting. The node words it from its locale (`pxe-dhcp.config.<key>`, with `subs`, and
 * `subs.what` naming the rule or message it came from); `message` is the same in English for
 * logs and tests outside Node-RED.
 */
export class DhcpConfigError extends Error {
  constructor(
    readonly key: DhcpConfigErrorKey,
    readonly subs: Record<string, string | number>,
    text: string,
  ) {
    super(text);
  }
}

export const DHCP_CONFIG_ERROR_KEYS = ['optionLine', 'menuEntry', 'menuSeconds', 'menuMode', 'kernelHttp', 'archNumber', 'match', 'iface', 'leaseTime', 'poolEnds'] as const;
export type DhcpConfigErrorKey = (typeof DHCP_CONFIG_ERROR_KEYS)[number];

/** `what` in English for a rule: its name, else its place in the list. */
export const ruleLabel = (d: Pick<RuleDef, 'name'>, i: number): string => (d.name ? `boot rule "${d.name}"` : `boot rule ${i + 1}`);

const list = (s: string | undefined): string[] =>
  String(s ?? '')
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean);

/** `code kind value` lines → typed extra options; throws naming the bad line (and `what` holds them). */
export function parseExtraOptions(text: string | undefined, what = 'extra options'): ExtraOption[] {
  const out: ExtraOption[] = [];
  for (const [i, raw] of String(text ?? '').split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\d+)\s+(\w+)\s*(.*)$/.exec(line);
    if (!m || !OPTION_KINDS.includes(m[2] as OptionKind)) {
      const kinds = OPTION_KINDS.join(', ');
      throw new DhcpConfigError('optionLine', { what, line: i + 1, text: line, kinds }, `${what}: extra option line ${i + 1} "${line}": expected "code kind value", kind one of ${kinds}`);
    }
    out.push({ code: Number(m[1]), kind: m[2] as OptionKind, value: m[3] ?? '' });
  }
  return out;
}

/**
 * The unattended-boot choice of a rule (or a run-time message), or null for the ISO's own menu.
 * `what` names the rule or message in errors (the node passes it in the user's language).
 */
export function menuChoiceOf(d: Pick<RuleDef, 'menu' | 'entry' | 'menuSeconds' | 'kernelArgs'>, what: string): BootChoice | null {
  const mode = d.menu || 'iso';
  if (mode === 'iso') return null;
  const entry = String(d.entry ?? '').trim();
  if (!entry) throw new DhcpConfigError('menuEntry', { what }, `${what}: choose the menu entry to boot`);
  const kernelArgs = String(d.kernelArgs ?? '').trim();
  const extra = kernelArgs ? { extraArgs: kernelArgs } : {};
  if (mode === 'now') return { choice: { mode: 'now', entry }, ...extra };
  if (mode === 'timeout') {
    const seconds = Number(d.menuSeconds ?? 10);
    if (!Number.isFinite(seconds) || seconds < 1 || seconds > 3600) throw new DhcpConfigError('menuSeconds', { what }, `${what}: the menu timeout must be 1 to 3600 seconds`);
    return { choice: { mode: 'timeout', entry, seconds }, ...extra };
  }
  throw new DhcpConfigError('menuMode', { what, mode }, `${what}: unknown menu choice "${mode}"`);
}

/** A rule's kernel source: 'auto', 'tftp', or an http:// base URL (still with '{next-server}'). */
export type KernelHttp = 'auto' | 'tftp' | `http://${string}`;

export function kernelHttpOf(d: Pick<RuleDef, 'kernelHttp'>, what: string): KernelHttp {
  const v = String(d.kernelHttp ?? '').trim();
  if (v === '' || v.toLowerCase() === 'auto') return 'auto';
  if (['tftp', 'off', 'no'].includes(v.toLowerCase())) return 'tftp';
  if (/^http:\/\/\S+$/i.test(v) && v.length <= 512) return `http://${v.slice('http://'.length)}`;
  throw new DhcpConfigError('kernelHttp', { what, value: v }, `${what}: kernel over HTTP from "${v}": give auto, tftp or an http:// URL (lpxelinux cannot fetch https://)`);
}

function archNumbers(values: string[], what: string): number[] {
  return values.map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new DhcpConfigError('archNumber', { what, value: v }, `${what}: architecture "${v}" is not a number`);
    return n;
  });
}

/** BIOS settings used to fill a BIOS rule's empty fields (the wiki's, or detected from the ISO). */
export type BiosDefaults = Pick<BootAction, 'bootFile' | 'configFile' | 'pathPrefix'>;

/** The rule list given when the user configured none: BIOS clients boot the Arch ISO's PXELINUX. */
export function defaultRuleDefs(): RuleDef[] {
  return [{ name: 'BIOS', match: 'arch', value: '0', ipxe: 'any' }];
}

function isBiosRule(d: RuleDef): boolean {
  return d.match === 'arch' && list(d.value).length > 0 && list(d.value).every((v) => Number(v) === 0);
}

/**
 * Whether a rule's clients can run pxelinux, so an unattended-boot menu choice means something:
 * not a rule that matches only UEFI, HTTP Boot, iPXE or Raspberry Pi clients (a generated
 * pxelinux config would hand them a BIOS loader).
 */
export function menuApplies(rule: BootRule): boolean {
  const m = rule.match;
  if (m.httpBoot || m.raspberryPi || m.ipxe === true) return false;
  return !m.arch || m.arch.includes(0);
}

export function toBootRules(defs: RuleDef[] | undefined, bios: BiosDefaults = ARCH_BIOS_DEFAULTS, label = ruleLabel): BootRule[] {
  const rows = defs && defs.length ? defs : defaultRuleDefs();
  return rows.map((d, i) => {
    const what = label(d, i);
    const values = list(d.value);
    const match: BootRule['match'] = {};
    switch (d.match ?? 'any') {
      case 'any':
        break;
      case 'arch':
        match.arch = archNumbers(values, what);
        break;
      case 'ipxe':
        match.ipxe = true;
        break;
      case 'mac':
        match.mac = values;
        break;
      case 'vendor':
        match.vendorClass = values;
        break;
      case 'userclass':
        match.userClass = values;
        break;
      case 'raspberrypi':
        match.raspberryPi = true;
        break;
      case 'httpboot':
        match.httpBoot = true;
        if (values.length) match.arch = archNumbers(values, what);
        break;
      default:
        throw new DhcpConfigError('match', { what, match: String(d.match) }, `${what}: unknown match "${String(d.match)}"`);
    }
    if (d.ipxe === 'yes') match.ipxe = true;
    else if (d.ipxe === 'no') match.ipxe = false;
    const rule: BootRule = { match };
    if (d.name) rule.name = d.name;
    const fill = isBiosRule(d) ? bios : {};
    const bootFile = d.bootFile?.trim() || fill.bootFile;
    const configFile = d.configFile?.trim() || fill.configFile;
    const pathPrefix = d.pathPrefix?.trim() || fill.pathPrefix;
    if (d.nextServer?.trim()) rule.nextServer = d.nextServer.trim();
    if (bootFile) rule.bootFile = bootFile;
    if (configFile) rule.configFile = configFile;
    if (pathPrefix) rule.pathPrefix = pathPrefix;
    if (d.raspberryPi || d.match === 'raspberrypi') rule.raspberryPi = true;
    const extra = parseExtraOptions(d.options, what);
    if (extra.length) rule.options = extra;
    return rule;
  });
}

export function toServiceConfig(def: DhcpNodeDef, opts: { leaseFile?: string; bios?: BiosDefaults; label?: typeof ruleLabel } = {}): DhcpServiceConfig {
  const mode = def.mode === 'full' ? 'full' : 'proxy';
  const iface = String(def.iface ?? '').trim();
  if (!iface) throw new DhcpConfigError('iface', {}, 'no network interface selected');
  const isolation = def.isolation === 'nftables' || def.isolation === 'filter' ? def.isolation : 'auto';
  const leaseTime = Number(def.leaseTime || 3600);
  if (!Number.isInteger(leaseTime) || leaseTime < 60 || leaseTime > 365 * 86400) throw new DhcpConfigError('leaseTime', { value: String(def.leaseTime) }, `lease time ${def.leaseTime} is not 60..31536000 seconds`);
  const cfg: DhcpServiceConfig = {
    mode,
    iface,
    isolation,
    rules: toBootRules(def.rules, opts.bios, opts.label),
    leaseTime,
    authoritative: def.authoritative !== false,
    force: !!def.force,
  };
  if (mode === 'full') {
    const start = def.poolStart?.trim();
    const end = def.poolEnd?.trim();
    if (!!start !== !!end) throw new DhcpConfigError('poolEnds', {}, 'give both the first and the last pool address, or neither');
    cfg.pool = { start, end, router: list(def.router), dns: list(def.dns), domain: def.domain?.trim() || undefined };
    cfg.reservations = (def.reservations ?? []).filter((r) => r && (r.mac || r.ip)).map((r) => ({ mac: String(r.mac), ip: String(r.ip), ...(r.hostname ? { hostname: String(r.hostname) } : {}) }));
    if (opts.leaseFile) cfg.leaseFile = opts.leaseFile;
  }
  return cfg;
}
