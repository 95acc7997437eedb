/** What a request tells us about the client: identity, architecture, classes — one parse per packet. */
import { clientMac, type DhcpPacket } from './codec';
import {
  archFromVendorClass,
  formatUuid,
  getClientArch,
  getClientId,
  getClientUuid,
  getHostname,
  getIpxeOptions,
  getUserClasses,
  getVendorClass,
} from './options';

export interface ClientInfo {
  mac: string;
  /**
   * Lease identity: option 61 when sent (and at most 255 bytes), else hardware type + address
   * (RFC 2131 §4.2).
   */
  key: string;
  /** Option 93, else the arch in a PXEClient vendor class, else null. */
  arch: number | null;
  vendorClass: string | null;
  userClasses: string[];
  hostname: string | null;
  uuid: string | null;
  isPxe: boolean;
  /**
   * UEFI HTTP Boot firmware (UEFI 2.5+ §24.7): option 60 starts with "HTTPClient"; it wants the
   * boot file as a URL and option 60 "HTTPClient" back.
   */
  isHttpBoot: boolean;
  /** iPXE says so with user class "iPXE" or its encapsulated option 175. */
  isIpxe: boolean;
}

export function describeClient(p: DhcpPacket): ClientInfo {
  const mac = clientMac(p);
  const vendorClass = getVendorClass(p.options);
  const archs = getClientArch(p.options);
  const userClasses = getUserClasses(p.options);
  const uuid = getClientUuid(p.options);
  const id = getClientId(p.options);
  return {
    mac,
    key: id ? `id:${id}` : `hw:${p.htype}:${mac}`,
    arch: archs[0] ?? archFromVendorClass(vendorClass),
    vendorClass,
    userClasses,
    hostname: getHostname(p.options),
    uuid: uuid ? formatUuid(uuid) : null,
    isPxe: !!vendorClass && vendorClass.startsWith('PXEClient'),
    isHttpBoot: !!vendorClass && vendorClass.startsWith('HTTPClient'),
    isIpxe: userClasses.includes('iPXE') || getIpxeOptions(p.options) !== null,
  };
}

/** RFC 4578 / IANA processor architecture types that PXE clients send in option 93. */
const ARCH_NAMES: Record<number, string> = {
  0: 'x86 BIOS',
  6: 'x86 UEFI',
  7: 'x64 UEFI',
  9: 'x64 UEFI',
  10: 'ARM32 UEFI',
  11: 'ARM64 UEFI',
  15: 'x86 UEFI HTTP',
  16: 'x64 UEFI HTTP',
  18: 'ARM32 UEFI HTTP',
  19: 'ARM64 UEFI HTTP',
};

export function archName(arch: number | null): string | null {
  if (arch === null) return null;
  return ARCH_NAMES[arch] ?? `arch ${arch}`;
}
