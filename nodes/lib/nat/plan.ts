/**
 * Validated NAT settings → the rules to apply. Pure: nothing here touches the system. Everything
 * that later ends up in an nft script or an iptables-restore line passes through these checks, so
 * no user text reaches a firewall tool unvalidated.
 */
import { createHash } from 'node:crypto';
import { NatError } from './errors';
import { formatMark, parseMark, type OwnerMark } from './owner';

export const BACKENDS = ['nftables', 'iptables-nft', 'iptables-legacy'] as const;
export type BackendKind = (typeof BACKENDS)[number];
export type BackendChoice = 'auto' | BackendKind;

/** The value of net.ipv4.ip_forward before we changed it. */
export type ForwardValue = '0' | '1';

export interface Subnet {
  network: string;
  prefix: number;
  cidr: string;
}

export interface Redirect {
  /** The port clients connect to on this machine (usually 80). */
  fromPort: number;
  /** The port the local server really listens on. */
  toPort: number;
}

export interface NatPlan {
  /** Who the rules belong to (the Node-RED node id); tags our table/chains and comments. */
  owner: string;
  subnet: Subnet;
  /** Masquerade only traffic leaving through this interface; null = any interface. */
  outInterface: string | null;
  redirect: Redirect | null;
  /** Turn net.ipv4.ip_forward on while the rules are in force. */
  forward: boolean;
}

export interface NatSettingsInput {
  subnet?: unknown;
  outInterface?: unknown;
  redirect?: unknown;
  redirectFrom?: unknown;
  redirectTo?: unknown;
  forward?: unknown;
}

function bad(message: string): never {
  throw new NatError('EINVAL', message);
}

function ipToInt(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    // Decimal only, no leading zeros: "010" is octal to some tools and decimal to others.
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    n = n * 256 + v;
  }
  return n;
}

function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/** "192.168.77.0/24" → a subnet; a host address with a prefix (192.168.77.5/24) is refused. */
export function parseSubnet(input: unknown): Subnet {
  if (typeof input !== 'string' || input.trim() === '') bad('source subnet is required, e.g. 192.168.77.0/24');
  const text = input.trim();
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  if (!m) bad(`source subnet "${text}" is not of the form a.b.c.d/prefix, e.g. 192.168.77.0/24`);
  const addr = ipToInt(m[1]!);
  const prefix = Number(m[2]);
  if (addr === null) bad(`source subnet "${text}" does not start with a valid IPv4 address`);
  if (prefix < 1 || prefix > 32) bad(`source subnet "${text}": the prefix must be 1 to 32`);
  const size = 2 ** (32 - prefix);
  const network = addr - (addr % size);
  if (network !== addr) {
    bad(`source subnet "${text}" has host bits set: did you mean ${intToIp(network)}/${prefix}?`);
  }
  const net = intToIp(network);
  return { network: net, prefix, cidr: `${net}/${prefix}` };
}

/**
 * A Linux interface name (at most 15 bytes). Restricted to the characters real names use, which
 * also keeps it safe inside an nft script's quotes and an iptables-restore line.
 */
export function parseInterface(input: unknown): string | null {
  if (input === undefined || input === null) return null;
  if (typeof input !== 'string') bad('outgoing interface must be a name such as eth0');
  const name = input.trim();
  if (name === '') return null;
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name) || name === '.' || name === '..') {
    bad(`outgoing interface "${name}" is not a valid interface name (letters, digits, _ . -; at most 15)`);
  }
  return name;
}

export function parsePort(input: unknown, what: string): number {
  const n = typeof input === 'string' && input.trim() !== '' ? Number(input) : input;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) {
    bad(`${what} must be a port number from 1 to 65535 (got ${JSON.stringify(input)})`);
  }
  return n;
}

function flag(input: unknown, dflt: boolean): boolean {
  if (input === undefined || input === null || input === '') return dflt;
  if (typeof input === 'boolean') return input;
  if (input === 'true') return true;
  if (input === 'false') return false;
  bad(`expected true or false, got ${JSON.stringify(input)}`);
}

/** Node-RED ids are hex (older ones with a dot); anything else is kept out of comments and names. */
export function parseOwner(owner: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(owner)) bad(`owner id "${owner}" is not usable in a rule comment`);
  return owner;
}

export function makePlan(owner: string, input: NatSettingsInput): NatPlan {
  const redirect = flag(input.redirect, false)
    ? { fromPort: parsePort(input.redirectFrom ?? 80, 'redirect from port'), toPort: parsePort(input.redirectTo, 'redirect to port') }
    : null;
  if (redirect && redirect.fromPort === redirect.toPort) bad(`redirect from port ${redirect.fromPort} to the same port does nothing`);
  return {
    owner: parseOwner(owner),
    subnet: parseSubnet(input.subnet),
    outInterface: parseInterface(input.outInterface),
    redirect,
    forward: flag(input.forward, true),
  };
}

/** A short stable tag for names that have a length limit (iptables chains: 28 characters). */
export function ownerTag(owner: string): string {
  return createHash('sha256').update(owner).digest('hex').slice(0, 8);
}

/**
 * The comment on every rule we create. It marks the rule as ours, carries the value of ip_forward
 * from before we changed it ("-" when we did not), so a restart after a kill still knows what to
 * restore, and the mark of the process that owns it (owner.ts), so any later start can tell a
 * leftover from the rules of a live Node-RED. No spaces: iptables-save would quote it. At most
 * 13 + 64 + 8 + 4 + 52 characters, within nft's 128.
 */
export function ruleComment(owner: string, priorForward: ForwardValue | null, mark?: OwnerMark | null): string {
  return `pxe-flow:nat:${parseOwner(owner)}:ipfwd=${priorForward ?? '-'}${mark ? `:by=${formatMark(mark)}` : ''}`;
}

export interface RuleComment {
  owner: string;
  priorForward: ForwardValue | null;
  /** Null in comments of older versions, which did not mark their rules. */
  mark: OwnerMark | null;
}

export function parseRuleComment(comment: string): RuleComment | null {
  const m = /^"?pxe-flow:nat:([A-Za-z0-9._-]{1,64}):ipfwd=([01-])(?::by=([0-9.]{5,60}))?"?$/.exec(comment.trim());
  if (!m) return null;
  const mark = m[3] ? parseMark(m[3]) : null;
  if (m[3] && !mark) return null;
  return { owner: m[1]!, priorForward: m[2] === '-' ? null : (m[2] as ForwardValue), mark };
}

/** What the plan does, in words, for the output message and the logs. */
export function describePlan(plan: NatPlan): string[] {
  const out = [
    `masquerade ${plan.subnet.cidr} leaving ${plan.outInterface ? `via ${plan.outInterface}` : 'via any interface'}`,
  ];
  if (plan.redirect) out.push(`redirect tcp port ${plan.redirect.fromPort} to ${plan.redirect.toPort} for ${plan.subnet.cidr} (local addresses only)`);
  if (plan.forward) out.push('net.ipv4.ip_forward = 1');
  return out;
}
