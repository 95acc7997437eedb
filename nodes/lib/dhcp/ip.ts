/** IPv4 and MAC address helpers shared by the DHCP modules (addresses as unsigned 32-bit ints). */

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function isIpv4(s: string): boolean {
  const m = IPV4.exec(s);
  return !!m && m.slice(1).every((p) => Number(p) <= 255);
}

/** Dotted quad to an unsigned int; throws on anything else. */
export function ipToInt(s: string): number {
  const m = IPV4.exec(s.trim());
  if (!m) throw new Error(`not an IPv4 address: ${JSON.stringify(s)}`);
  let n = 0;
  for (const part of m.slice(1)) {
    const v = Number(part);
    if (v > 255) throw new Error(`not an IPv4 address: ${JSON.stringify(s)}`);
    n = n * 256 + v;
  }
  return n;
}

export function intToIp(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function ipToBuf(s: string): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ipToInt(s));
  return b;
}

export function bufToIp(b: Buffer, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

export function prefixToMask(prefix: number): number {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new Error(`bad prefix length ${prefix}`);
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function maskToPrefix(mask: number): number {
  let p = 0;
  while (p < 32 && (mask & (0x80000000 >>> p)) !== 0) p++;
  if (prefixToMask(p) !== mask >>> 0) throw new Error(`not a contiguous netmask: ${intToIp(mask)}`);
  return p;
}

export interface Cidr {
  address: number;
  prefix: number;
  mask: number;
  network: number;
  broadcast: number;
}

/** "192.168.0.1/24" → address, mask, network and broadcast. */
export function parseCidr(s: string): Cidr {
  const [addr, pfx] = s.trim().split('/');
  const address = ipToInt(addr ?? '');
  const prefix = pfx === undefined ? 32 : Number(pfx);
  const mask = prefixToMask(prefix);
  const network = (address & mask) >>> 0;
  return { address, prefix, mask, network, broadcast: (network | ~mask) >>> 0 };
}

export function sameSubnet(a: number, b: number, mask: number): boolean {
  return ((a ^ b) & mask) === 0;
}

/** Normalises a MAC (or MAC prefix) to lower-case colon form; accepts `:`, `-`, `.` or no separators. */
export function normalizeMac(s: string): string {
  const hex = s.trim().toLowerCase().replace(/[:\-.]/g, '');
  if (!/^[0-9a-f]*$/.test(hex) || hex.length % 2 !== 0 || hex.length > 40) {
    throw new Error(`not a MAC address or prefix: ${JSON.stringify(s)}`);
  }
  return hex.replace(/(..)(?=.)/g, '$1:');
}

export function macToString(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
