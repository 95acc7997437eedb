import { RASPBERRY_PI_MAC_PREFIXES } from '../dhcp/boot-rules';

/**
 * What a client booted with, as a person names it: the firmware that asked DHCP (BIOS, UEFI of an
 * architecture, a Raspberry Pi's boot ROM), and whether iPXE took over (the ROM itself, or a
 * chain-loaded undionly.kpxe / snponly.efi / ipxe.efi). Codes, not text: the editor words them.
 */
export type Firmware = 'bios' | 'uefi-x64' | 'uefi-ia32' | 'uefi-arm64' | 'uefi-arm32' | 'uefi-http' | 'rpi' | 'other';

export interface FirmwareHints {
  mac?: string;
  /** Option 93 as the DHCP node names it ('x86 BIOS', 'x64 UEFI', 'arch 22'). */
  arch?: string;
  vendorClass?: string;
  userClass?: string[];
}

/** RFC 4578 option 93 numbers, as in the vendor class 'PXEClient:Arch:00007:…'. */
const BY_NUMBER: Record<number, Firmware> = { 0: 'bios', 6: 'uefi-ia32', 7: 'uefi-x64', 9: 'uefi-x64', 10: 'uefi-arm32', 11: 'uefi-arm64', 15: 'uefi-http', 16: 'uefi-http', 18: 'uefi-http', 19: 'uefi-http' };

function fromArchName(arch: string): Firmware | undefined {
  const a = arch.toLowerCase();
  if (/http/.test(a)) return 'uefi-http';
  if (/bios/.test(a)) return 'bios';
  if (/uefi|efi/.test(a)) {
    if (/arm64|aarch64/.test(a)) return 'uefi-arm64';
    if (/arm/.test(a)) return 'uefi-arm32';
    if (/x86(?!.?64)|ia32|i386/.test(a)) return 'uefi-ia32';
    return 'uefi-x64';
  }
  const n = /^arch (\d+)$/.exec(a);
  return n ? (BY_NUMBER[Number(n[1])] ?? 'other') : undefined;
}

export function isRaspberryPi(h: FirmwareHints): boolean {
  const mac = h.mac?.toLowerCase();
  if (mac && RASPBERRY_PI_MAC_PREFIXES.some((p) => mac.startsWith(p))) return true;
  return !!h.vendorClass && /raspberry ?pi/i.test(h.vendorClass);
}

/** The firmware from what DHCP saw; undefined when nothing tells. */
export function firmwareOf(h: FirmwareHints): Firmware | undefined {
  if (isRaspberryPi(h)) return 'rpi';
  if (h.arch) {
    const f = fromArchName(h.arch);
    if (f) return f;
  }
  if (/^HTTPClient/i.test(h.vendorClass ?? '')) return 'uefi-http';
  const m = /PXEClient:Arch:(\d{5})/i.exec(h.vendorClass ?? '');
  if (m) return BY_NUMBER[Number(m[1])] ?? 'other';
  return undefined;
}

/**
 * The firmware of a boot that already had `prev` when DHCP now says `next`. The iPXE that UEFI
 * HTTP Boot loaded asks DHCP again as a PXE client (arch 7): the machine still booted by HTTP, so
 * 'uefi-http' stays, as 'rpi' does.
 */
export function nextFirmware(prev: Firmware | undefined, next: Firmware | undefined): Firmware | undefined {
  if (prev === 'rpi' || prev === 'uefi-http') return prev;
  return next ?? prev;
}

/** iPXE says so in its user class (option 77). */
export function isIpxe(h: FirmwareHints): boolean {
  return (h.userClass ?? []).some((u) => u.toLowerCase() === 'ipxe');
}

/** What fetching `file` tells about the client: an iPXE binary or script, a Pi's boot files. */
export function firmwareFromFile(file: string): 'ipxe' | 'rpi' | undefined {
  const name = file.replace(/\\/g, '/').toLowerCase().split('/').pop() ?? '';
  if (/\.(ipxe|kpxe|kkpxe|kkkpxe)$/.test(name) || name === 'ipxe.efi' || name === 'snponly.efi' || name === 'ipxe.pxe' || name === 'undionly.pxe') return 'ipxe';
  if (name === 'bootcode.bin' || /^start\d?(x|db|cd)?\.elf$/.test(name)) return 'rpi';
  return undefined;
}
