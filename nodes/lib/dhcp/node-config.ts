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

const list = (s: string | undefined): string[] =>
  String(s ?? '')
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean);

/** `code kind value` lines → typed extra options; throws naming the bad line. */
export function parseExtraOptions(text: string | undefined): ExtraOption[] {
  const out: ExtraOption[] = [];
  for (const [i, raw] of String(text ?? '').split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\d+)\s+(\w+)\s*(.*)$/.exec(line);
    if (!m || !OPTION_KINDS.includes(m[2] as OptionKind)) {
      throw new Error(`extra option line ${i + 1} "${line}": expected "code kind value", kind one of ${OPTION_KINDS.join(', ')}`);
    }
    out.push({ code: Number(m[1]), kind: m[2] as OptionKind, value: m[3] ?? '' });
  }
  return out;
}

/** The unattended-boot choice of a rule (or a run-time message), or null for the ISO's own menu. */
export function menuChoiceOf(d: Pick<RuleDef, 'menu' | 'entry' | 'menuSeconds' | 'kernelArgs'>, what: string): BootChoice | null {
  const mode = d.menu || 'iso';
  if (mode === 'iso') return null;
  const entry = String(d.entry ?? '').trim();
  if (!entry) throw new Error(`${what}: choose the menu entry to boot`);
  const kernelArgs = String(d.kernelArgs ?? '').trim();
  const extra = kernelArgs ? { extraArgs: kernelArgs } : {};
  if (mode === 'now') return { choice: { mode: 'now', entry }, ...extra };
  if (mode === 'timeout') {
    const seconds = Number(d.menuSeconds ?? 10);
    if (!Number.isFinite(seconds) || seconds < 1 || seconds > 3600) throw new Error(`${what}: the menu timeout must be 1 to 3600 seconds`);
    return { choice: { mode: 'timeout', entry, seconds }, ...extra };
  }
  throw new Error(`${what}: unknown menu choice "${mode}"`);
}

function archNumbers(values: string[], what: string): number[] {
  return values.map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new Error(`${what}: architecture "${v}" is not a number`);
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

export function toBootRules(defs: RuleDef[] | undefined, bios: BiosDefaults = ARCH_BIOS_DEFAULTS): BootRule[] {
  const rows = defs && defs.length ? defs : defaultRuleDefs();
  return rows.map((d, i) => {
    const what = d.name ? `boot rule "${d.name}"` : `boot rule ${i + 1}`;
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
        throw new Error(`${what}: unknown match "${String(d.match)}"`);
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
    try {
      const extra = parseExtraOptions(d.options);
      if (extra.length) rule.options = extra;
    } catch (e) {
      throw new Error(`${what}: ${(e as Error).message}`);
    }
    return rule;
  });
}

export function toServiceConfig(def: DhcpNodeDef, opts: { leaseFile?: string; bios?: BiosDefaults } = {}): DhcpServiceConfig {
  const mode = def.mode === 'full' ? 'full' : 'proxy';
  const iface = String(def.iface ?? '').trim();
  if (!iface) throw new Error('no network interface selected');
  const isolation = def.isolation === 'nftables' || def.isolation === 'filter' ? def.isolation : 'auto';
  const leaseTime = Number(def.leaseTime || 3600);
  if (!Number.isInteger(leaseTime) || leaseTime < 60 || leaseTime > 365 * 86400) throw new Error(`lease time ${def.leaseTime} is not 60..31536000 seconds`);
  const cfg: DhcpServiceConfig = {
    mode,
    iface,
    isolation,
    rules: toBootRules(def.rules, opts.bios),
    leaseTime,
    authoritative: def.authoritative !== false,
    force: !!def.force,
  };
  if (mode === 'full') {
    const start = def.poolStart?.trim();
    const end = def.poolEnd?.trim();
    if (!!start !== !!end) throw new Error('give both the first and the last pool address, or neither');
    cfg.pool = { start, end, router: list(def.router), dns: list(def.dns), domain: def.domain?.trim() || undefined };
    cfg.reservations = (def.reservations ?? []).filter((r) => r && (r.mac || r.ip)).map((r) => ({ mac: String(r.mac), ip: String(r.ip), ...(r.hostname ? { hostname: String(r.hostname) } : {}) }));
    if (opts.leaseFile) cfg.leaseFile = opts.leaseFile;
  }
  return cfg;
}
