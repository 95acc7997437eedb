/**
 * The replay script of one simulated BIOS PXE client, made from a recording
 * (bench/storm/recorded-boot.json, written by bench/storm/record.ts from a real QEMU boot).
 * Pure: no I/O, so the replay's shape is unit-tested.
 */
import * as path from 'node:path';

export interface DhcpStep {
  proto: 'dhcp';
  /** The vendor class the client sends (option 60), e.g. PXEClient:Arch:00000:UNDI:002001. */
  vendorClass: string;
  /** User class (option 77) entries, e.g. ['iPXE']. */
  userClass: string[];
  /** Client system architecture (option 93): 0 = BIOS. */
  arch: number;
  /**
   * Proxy DHCP: the client took its address from another server's offer and its boot file from
   * the proxy's offer (yiaddr 0, option 60 PXEClient), so it waits for both before its REQUEST.
   */
  proxy?: boolean;
  /**
   * Proxy DHCP, when the client did it: after the address server's ACK it asked the proxy again,
   * on UDP 4011, for its boot file (iPXE's ProxyDHCP REQUEST, PXE 2.1 §2.2.3), with these
   * classes. QEMU's iPXE ROM does not when the proxy offer already names a next-server and a
   * boot file (dhcp_has_pxeopts in its dhcp.c), as ours and dnsmasq's do: the BIOS recording has none.
   */
  proxyRequest?: { vendorClass: string; userClass: string[]; arch: number };
}

export interface TftpStep {
  proto: 'tftp';
  file: string;
  /** Options in the order the client sent them (blksize, tsize, ...). */
  options: { name: string; value: string }[];
  /**
   * done: read to the end and checked; not-found: the server must answer an ERROR;
   * declined: the client ends after the OACK (a tsize query); aborted: the client sends an ERROR
   * after about `abortAfterBytes` bytes (pxelinux's ldlinux.c32 after each CONFIG).
   */
  outcome: 'done' | 'not-found' | 'declined' | 'aborted';
  abortAfterBytes?: number;
}

export interface HttpStep {
  proto: 'http';
  path: string;
  /** A Range header value (archiso's 1-byte probe: bytes=0-0). */
  range?: string;
  /** The status the server answered in the recording (archiso also probes airootfs.erofs: 404). */
  status: number;
}

export type Step = DhcpStep | TftpStep | HttpStep;

/** The recording of each DHCP mode (written by record.ts, read by bench/storm.ts --dhcp). */
export function recordingFile(mode: 'full' | 'proxy'): string {
  return path.join(__dirname, mode === 'full' ? 'recorded-boot.json' : 'recorded-boot-proxy.json');
}

export interface Recording {
  recordedWith: string;
  how: string;
  iso: string;
  date: string;
  steps: Step[];
}

/** Files of a step list, as the server sees them (leading slashes and // collapsed). */
export function normalisePath(file: string): string {
  return ('/' + file).replace(/\/+/g, '/');
}

/** Every file the replay reads to the end (TFTP done, HTTP without a range), normalised, once each. */
export function filesRead(steps: Step[]): string[] {
  const out = new Set<string>();
  for (const s of steps) {
    if (s.proto === 'tftp' && s.outcome === 'done') out.add(normalisePath(s.file));
    if (s.proto === 'http' && !s.range && s.status === 200) out.add(normalisePath(s.path));
  }
  return [...out];
}

/** A short human summary: counts per kind. */
export function describeSteps(steps: Step[]): string {
  const n = (f: (s: Step) => boolean): number => steps.filter(f).length;
  return [
    `${n((s) => s.proto === 'dhcp')} DHCP exchange(s)` +
      (n((s) => s.proto === 'dhcp' && !!s.proxy) ? ` (proxy DHCP: the address from the address server, the boot file from the proxy's offer; ${n((s) => s.proto === 'dhcp' && !!s.proxyRequest)} port-4011 REQUEST(s))` : ''),
    `${n((s) => s.proto === 'tftp')} TFTP requests (${n((s) => s.proto === 'tftp' && s.outcome === 'done')} read whole, ` +
      `${n((s) => s.proto === 'tftp' && s.outcome === 'not-found')} not-found probes, ${n((s) => s.proto === 'tftp' && s.outcome === 'declined')} tsize queries, ` +
      `${n((s) => s.proto === 'tftp' && s.outcome === 'aborted')} aborted)`,
    `${n((s) => s.proto === 'http')} HTTP requests (${n((s) => s.proto === 'http' && !!s.range)} range probes)`,
  ].join(', ');
}
