/**
 * Option codes and typed accessors over a packet's option map (codec.ts gives already-concatenated
 * values). Getters never throw: a malformed value reads as absent (null / empty), because one odd
 * option from a buggy ROM must not stop us from answering the rest of the packet.
 */
import { bufToIp, ipToBuf } from './ip';

export const Opt = {
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  BROADCAST: 28,
  VENDOR_SPECIFIC: 43,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAMETER_REQUEST_LIST: 55,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  TFTP_SERVER_NAME: 66,
  BOOTFILE_NAME: 67,
  USER_CLASS: 77,
  RELAY_AGENT_INFO: 82,
  CLIENT_ARCH: 93,
  CLIENT_NDI: 94,
  CLIENT_UUID: 97,
  IPXE: 175,
  PXELINUX_CONFIG_FILE: 209,
  PXELINUX_PATH_PREFIX: 210,
  PXELINUX_REBOOT_TIME: 211,
} as const;

export const MessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;
export type MessageTypeName = 'discover' | 'offer' | 'request' | 'decline' | 'ack' | 'nak' | 'release' | 'inform';
const TYPE_NAMES: Record<number, MessageTypeName> = {
  1: 'discover',
  2: 'offer',
  3: 'request',
  4: 'decline',
  5: 'ack',
  6: 'nak',
  7: 'release',
  8: 'inform',
};
export function messageTypeName(t: number | null): MessageTypeName | null {
  return t === null ? null : (TYPE_NAMES[t] ?? null);
}

/** PXE vendor sub-options carried in option 43 (PXE spec 2.1, table 2-1). */
export const PxeSub = {
  DISCOVERY_CONTROL: 6,
  BOOT_SERVERS: 8,
  BOOT_MENU: 9,
  MENU_PROMPT: 10,
  BOOT_ITEM: 71,
} as const;

/** PXE discovery-control bit 3: boot the file named in the offer without menu or discovery. */
export const PXE_DISCOVERY_USE_BOOTFILE = 8;

export type Options = Map<number, Buffer>;

// ---- generic readers -------------------------------------------------------------------------

export function getU8(o: Options, code: number): number | null {
  const v = o.get(code);
  return v && v.length === 1 ? v[0]! : null;
}
export function getU16(o: Options, code: number): number | null {
  const v = o.get(code);
  return v && v.length === 2 ? v.readUInt16BE(0) : null;
}
export function getU32(o: Options, code: number): number | null {
  const v = o.get(code);
  return v && v.length === 4 ? v.readUInt32BE(0) : null;
}
export function getIp(o: Options, code: number): string | null {
  const v = o.get(code);
  return v && v.length === 4 ? bufToIp(v) : null;
}
export function getIps(o: Options, code: number): string[] {
  const v = o.get(code);
  if (!v || v.length === 0 || v.length % 4 !== 0) return [];
  const out: string[] = [];
  for (let i = 0; i < v.length; i += 4) out.push(bufToIp(v, i));
  return out;
}
/** A text option; trailing NULs (sent by some clients) are dropped. */
export function getString(o: Options, code: number): string | null {
  const v = o.get(code);
  if (!v) return null;
  let end = v.length;
  while (end > 0 && v[end - 1] === 0) end--;
  return v.subarray(0, end).toString('utf8');
}

/** Sub-options of an encapsulated option (43, 82, 175): code → value, concatenated per code. */
export function parseSubOptions(v: Buffer | undefined): Map<number, Buffer> | null {
  if (!v) return null;
  const acc = new Map<number, Buffer[]>();
  let i = 0;
  while (i < v.length) {
    const code = v[i]!;
    if (code === 0) {
      i++;
      continue;
    }
    if (code === 255) break;
    if (i + 1 >= v.length) return null;
    const len = v[i + 1]!;
    if (i + 2 + len > v.length) return null;
    const list = acc.get(code);
    const val = v.subarray(i + 2, i + 2 + len);
    if (list) list.push(val);
    else acc.set(code, [val]);
    i += 2 + len;
  }
  const out = new Map<number, Buffer>();
  for (const [c, l] of acc) out.set(c, Buffer.concat(l));
  return out;
}

/** Encodes sub-options (each ≤ 255 bytes) followed by END, as PXE ROMs expect in option 43. */
export function encodeSubOptions(subs: Iterable<[number, Buffer]>, withEnd = true): Buffer {
  const parts: Buffer[] = [];
  for (const [code, val] of subs) {
    if (val.length > 255) throw new Error(`sub-option ${code} is longer than 255 bytes`);
    parts.push(Buffer.from([code, val.length]), val);
  }
  if (withEnd) parts.push(Buffer.from([255]));
  return Buffer.concat(parts);
}

// ---- client options ----------------------------------------------------------------------------

export function getMessageType(o: Options): number | null {
  return getU8(o, Opt.MESSAGE_TYPE);
}

export function getRequestedIp(o: Options): string | null {
  return getIp(o, Opt.REQUESTED_IP);
}

export function getServerId(o: Options): string | null {
  return getIp(o, Opt.SERVER_ID);
}

export function getLeaseTime(o: Options): number | null {
  return getU32(o, Opt.LEASE_TIME);
}

/** Parameter request list without duplicates, in the client's order (RFC 2132 §9.8). */
export function getParameterRequestList(o: Options): number[] {
  const v = o.get(Opt.PARAMETER_REQUEST_LIST);
  if (!v) return [];
  return [...new Set(v)];
}

/** Option 57, clamped to what RFC 2132 allows (576 minimum). */
export function getMaxMessageSize(o: Options): number | null {
  const v = getU16(o, Opt.MAX_MESSAGE_SIZE);
  return v === null ? null : Math.max(576, v);
}

export function getVendorClass(o: Options): string | null {
  return getString(o, Opt.VENDOR_CLASS);
}

export function getHostname(o: Options): string | null {
  return getString(o, Opt.HOSTNAME);
}

/** Longest client identifier taken: one option's worth (RFC 2132 §9.14 gives no other bound). */
export const MAX_CLIENT_ID = 255;

/**
 * Option 61 as hex (type byte included), the client's identity when present (RFC 2132 §9.14).
 * Longer than MAX_CLIENT_ID (only possible by RFC 3396 concatenation, up to ~64 KB a packet)
 * reads as absent, so the client is known by its MAC and a spoofed DISCOVER cannot make us hold
 * a huge key with each offer.
 */
export function getClientId(o: Options): string | null {
  const v = o.get(Opt.CLIENT_ID);
  return v && v.length >= 2 && v.length <= MAX_CLIENT_ID ? v.toString('hex') : null;
}

/**
 * Option 77. RFC 3004 encodes a list of length-prefixed classes, but iPXE and many ROMs send a
 * bare string ("iPXE"): if the bytes do not parse exactly as RFC 3004, the whole value is one class.
 */
export function getUserClasses(o: Options): string[] {
  const v = o.get(Opt.USER_CLASS);
  if (!v || v.length === 0) return [];
  const list: string[] = [];
  let i = 0;
  while (i < v.length) {
    const len = v[i]!;
    if (len === 0 || i + 1 + len > v.length) break;
    list.push(v.subarray(i + 1, i + 1 + len).toString('utf8'));
    i += 1 + len;
  }
  const printable = (s: string): boolean => /^[\x20-\x7e]+$/.test(s);
  if (i === v.length && list.length > 0 && list.every(printable)) return list;
  const whole = getString(o, Opt.USER_CLASS) ?? '';
  return whole ? [whole] : [];
}

/** Option 93 (RFC 4578): the client's architecture types, usually one. */
export function getClientArch(o: Options): number[] {
  const v = o.get(Opt.CLIENT_ARCH);
  if (!v || v.length === 0 || v.length % 2 !== 0) return [];
  const out: number[] = [];
  for (let i = 0; i < v.length; i += 2) out.push(v.readUInt16BE(i));
  return out;
}

/** The architecture from a vendor class like "PXEClient:Arch:00007:UNDI:003016" (fallback for 93). */
export function archFromVendorClass(vc: string | null): number | null {
  const m = vc ? /^(?:PXEClient|HTTPClient):Arch:(\d{5})/.exec(vc) : null;
  return m ? Number(m[1]) : null;
}

export interface ClientNdi {
  type: number;
  major: number;
  minor: number;
}
/** Option 94 (RFC 4578): network interface identifier (type 1 = UNDI, then version). */
export function getClientNdi(o: Options): ClientNdi | null {
  const v = o.get(Opt.CLIENT_NDI);
  return v && v.length === 3 ? { type: v[0]!, major: v[1]!, minor: v[2]! } : null;
}

/** Option 97 (RFC 4578): machine UUID/GUID; type 0 followed by 16 bytes. Returned raw for echoing. */
export function getClientUuid(o: Options): Buffer | null {
  const v = o.get(Opt.CLIENT_UUID);
  return v && v.length === 17 && v[0] === 0 ? v : null;
}

/** The UUID of option 97 in the usual text form (SMBIOS byte order as sent). */
export function formatUuid(v: Buffer): string {
  const h = v.subarray(1).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Option 175 (iPXE encapsulated options) — its presence alone says the client is iPXE. */
export function getIpxeOptions(o: Options): Map<number, Buffer> | null {
  return parseSubOptions(o.get(Opt.IPXE));
}

export interface PxeVendorOptions {
  discoveryControl: number | null;
  bootItem: { type: number; layer: number } | null;
  raw: Map<number, Buffer>;
}
/** Option 43 as PXE vendor sub-options (only meaningful when the vendor class is PXEClient). */
export function getPxeVendorOptions(o: Options): PxeVendorOptions | null {
  const subs = parseSubOptions(o.get(Opt.VENDOR_SPECIFIC));
  if (!subs) return null;
  const dc = subs.get(PxeSub.DISCOVERY_CONTROL);
  const item = subs.get(PxeSub.BOOT_ITEM);
  return {
    discoveryControl: dc && dc.length === 1 ? dc[0]! : null,
    bootItem: item && item.length === 4 ? { type: item.readUInt16BE(0), layer: item.readUInt16BE(2) } : null,
    raw: subs,
  };
}

/** Option 82 (RFC 3046): kept raw, because a server must echo it back unchanged. */
export function getRelayAgentInfo(o: Options): Buffer | null {
  return o.get(Opt.RELAY_AGENT_INFO) ?? null;
}

// ---- server options ----------------------------------------------------------------------------

export function u8(n: number): Buffer {
  return Buffer.from([n & 255]);
}
export function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n & 0xffff);
  return b;
}
export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
export function ips(list: string[]): Buffer {
  return Buffer.concat(list.map(ipToBuf));
}
export function str(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

/**
 * Option 43 for PXE clients. Discovery control 8 ("use the boot file in the offer") makes ROMs
 * download the file at once, with no boot-server discovery or menu.
 */
export function pxeVendorOption(discoveryControl = PXE_DISCOVERY_USE_BOOTFILE): Buffer {
  return encodeSubOptions([[PxeSub.DISCOVERY_CONTROL, u8(discoveryControl)]]);
}

/**
 * Option 43 for the Raspberry Pi boot ROM, which looks for "Raspberry Pi Boot" in a PXE boot
 * menu. Same bytes as dnsmasq's `pxe-service=0,"Raspberry Pi Boot"`: discovery control 3, a
 * menu prompt "PXE" with timeout 0, and a boot menu item of type 0.
 */
export function raspberryPiVendorOption(): Buffer {
  const label = Buffer.from('Raspberry Pi Boot', 'ascii');
  const menu = Buffer.concat([u16(0), u8(label.length), label]);
  const prompt = Buffer.concat([u8(0), Buffer.from('PXE', 'ascii')]);
  return encodeSubOptions([
    [PxeSub.DISCOVERY_CONTROL, u8(3)],
    [PxeSub.MENU_PROMPT, prompt],
    [PxeSub.BOOT_MENU, menu],
  ]);
}

/** Value kinds for user-defined extra options (boot rules, editor). */
export type OptionKind = 'string' | 'ip' | 'ips' | 'u8' | 'u16' | 'u32' | 'bool' | 'hex';
export const OPTION_KINDS: readonly OptionKind[] = ['string', 'ip', 'ips', 'u8', 'u16', 'u32', 'bool', 'hex'];

export interface ExtraOption {
  code: number;
  kind: OptionKind;
  value: string;
}

function intIn(s: string, max: number, code: number): number {
  const n = Number(s.trim());
  if (!Number.isInteger(n) || n < 0 || n > max) throw new Error(`option ${code}: ${JSON.stringify(s)} is not an integer 0..${max}`);
  return n;
}

/** Encodes a user-defined option value; throws a readable error for bad input. */
export function encodeExtraOption(e: ExtraOption): Buffer {
  const { code, kind, value } = e;
  if (!Number.isInteger(code) || code < 1 || code > 254 || code === Opt.OVERLOAD || code === Opt.MESSAGE_TYPE) {
    throw new Error(`option code ${code} cannot be set (1..254, not 52 or 53)`);
  }
  switch (kind) {
    case 'string':
      return str(value);
    case 'ip':
      return ipToBuf(value);
    case 'ips':
      return ips(value.split(/[\s,]+/).filter(Boolean));
    case 'u8':
      return u8(intIn(value, 0xff, code));
    case 'u16':
      return u16(intIn(value, 0xffff, code));
    case 'u32':
      return u32(intIn(value, 0xffffffff, code));
    case 'bool':
      return u8(/^(1|true|yes|on)$/i.test(value.trim()) ? 1 : 0);
    case 'hex': {
      const h = value.replace(/[\s:]/g, '');
      if (!/^([0-9a-fA-F]{2})*$/.test(h)) throw new Error(`option ${code}: ${JSON.stringify(value)} is not hex bytes`);
      return Buffer.from(h, 'hex');
    }
    default:
      throw new Error(`option ${code}: unknown kind ${String(kind)}`);
  }
}
