import type { BootSignal } from './bus';

export type BootStage = 'dhcp' | 'loader' | 'kernel' | 'initrd' | 'rootfs' | 'complete' | 'stalled';

export interface TimelineEntry {
  stage: BootStage;
  at: number;
  file?: string;
  via?: BootSignal['source'];
  percent?: number;
}

export interface BootEvent {
  stage: BootStage;
  client: { mac?: string; ip?: string; arch?: string };
  file?: string;
  percent?: number;
  at: number;
  /** Everything this boot did so far, oldest first (this event included). */
  timeline: TimelineEntry[];
}

export interface TrackerOptions {
  /** A boot with no news for this long is reported stalled once (ms). */
  stallAfterMs: number;
  /** rootfs progress is reported every this many percent. */
  rootfsStep: number;
}

interface Client {
  mac?: string;
  ip?: string;
  arch?: string;
  bootFile?: string;
  timeline: TimelineEntry[];
  seen: Set<BootStage>;
  lastAt: number;
  lastPercent: number;
  stalled: boolean;
  done: boolean;
}

/** Which boot stage fetching `file` is, by the names PXE loaders and archiso use. */
export function classifyFile(file: string, bootFile?: string): 'loader' | 'kernel' | 'initrd' | 'rootfs' | null {
  const f = file.replace(/\\/g, '/').replace(/^\/+/, '').toLowerCase();
  const name = f.slice(f.lastIndexOf('/') + 1);
  if (bootFile && f === bootFile.replace(/^\/+/, '').toLowerCase()) return 'loader';
  if (/\.(sfs|squashfs)$/.test(name) || name === 'airootfs.img') return 'rootfs';
  // archiso.img is the initramfs of the wiki-era Arch ISOs.
  if (/^(initramfs|initrd)/.test(name) || name === 'archiso.img' || name.endsWith('.cpio.gz')) return 'initrd';
  if (/^(vmlinuz|vmlinux|bzimage|kernel|linux)([-.]|$)/.test(name)) return 'kernel';
  if (/(pxelinux\.0|\.kpxe|\.pxe|\.efi|\.ipxe)$/.test(name)) return 'loader';
  return null;
}

/**
 * Follows each client through its boot. Pure: signals in, events out; the clock comes with each
 * call so tests drive it. Clients are keyed by MAC; TFTP/HTTP/NBD/NFS only know the IP, which DHCP
 * ties to a MAC (an unknown IP gets a timeline of its own).
 */
export class BootTracker {
  private readonly byMac = new Map<string, Client>();
  private readonly byIp = new Map<string, Client>();

  constructor(private readonly opts: TrackerOptions) {}

  get activeCount(): number {
    return [...new Set([...this.byMac.values(), ...this.byIp.values()])].filter((c) => !c.done && !c.stalled).length;
  }

  handle(s: BootSignal): BootEvent[] {
    if (s.source === 'dhcp') return this.onDhcp(s);
    const known = this.byIp.get(s.ip);
    const stage = s.source === 'nbd' ? 'rootfs' : classifyFile(s.file, known?.bootFile);
    // Files that are no boot stage (menus, modules, probes) neither start nor feed a timeline.
    if (!stage || s.kind === 'error') return [];
    const client = known ?? this.clientForIp(s.ip, s.at);
    client.lastAt = s.at;
    client.stalled = false;
    if (stage === 'rootfs') return this.onRootfs(client, s);
    if (s.kind !== 'done') return [];
    return this.emitOnce(client, stage, s.at, { file: s.file, via: s.source });
  }

  /** Reports boots that went quiet; call periodically. */
  tick(now: number): BootEvent[] {
    const out: BootEvent[] = [];
    for (const c of new Set([...this.byMac.values(), ...this.byIp.values()])) {
      if (c.done || c.stalled || now - c.lastAt < this.opts.stallAfterMs) continue;
      c.stalled = true;
      out.push(this.push(c, { stage: 'stalled', at: now }));
    }
    // Forget finished or long-dead clients so memory does not grow with the number of boots.
    for (const [k, c] of [...this.byMac, ...this.byIp]) {
      if ((c.done || c.stalled) && now - c.lastAt > 10 * this.opts.stallAfterMs) {
        this.byMac.delete(k);
        this.byIp.delete(k);
      }
    }
    return out;
  }

  private onDhcp(s: Extract<BootSignal, { source: 'dhcp' }>): BootEvent[] {
    const mac = s.mac.toLowerCase();
    let c = this.byMac.get(mac);
    // A finished (or stalled) client that asks again is booting again: a fresh timeline.
    if (!c || c.done || c.stalled) {
      c = this.newClient(s.at);
      c.mac = mac;
      this.byMac.set(mac, c);
    }
    // A TFTP/HTTP client seen before its DHCP (proxy mode learns the IP late) joins this timeline.
    if (s.ip) {
      const byIp = this.byIp.get(s.ip);
      if (byIp && byIp !== c && !byIp.mac) {
        c.timeline.push(...byIp.timeline);
        c.timeline.sort((x, y) => x.at - y.at);
        for (const st of byIp.seen) c.seen.add(st);
      }
      c.ip = s.ip;
      this.byIp.set(s.ip, c);
    }
    if (s.arch) c.arch = s.arch;
    if (s.bootFile) c.bootFile = s.bootFile;
    c.lastAt = s.at;
    // Boot information is final with an ACK, or with a proxyDHCP offer (no address): PXE ROMs
    // told to use the boot file directly never come back to port 4011.
    if (s.kind !== 'ack' && s.ip !== undefined) return [];
    return this.emitOnce(c, 'dhcp', s.at, { file: s.bootFile, via: 'dhcp' });
  }

  private onRootfs(c: Client, s: Extract<BootSignal, { kind: string; bytes: number }>): BootEvent[] {
    const percent = s.size > 0 ? Math.min(100, Math.floor((s.bytes / s.size) * 100)) : 100;
    const out: BootEvent[] = [];
    const stepped = Math.floor(percent / this.opts.rootfsStep) * this.opts.rootfsStep;
    if (!c.seen.has('rootfs') || stepped > c.lastPercent || (percent === 100 && c.lastPercent < 100)) {
      c.seen.add('rootfs');
      c.lastPercent = percent === 100 ? 100 : stepped;
      out.push(this.push(c, { stage: 'rootfs', at: s.at, file: s.file || undefined, via: s.source, percent: c.lastPercent }));
    }
    if (s.kind === 'done' && percent === 100) out.push(...this.emitOnce(c, 'complete', s.at, { file: s.file || undefined, via: s.source }));
    return out;
  }

  private emitOnce(c: Client, stage: BootStage, at: number, extra: Partial<TimelineEntry>): BootEvent[] {
    if (c.seen.has(stage)) return [];
    c.seen.add(stage);
    if (stage === 'complete') c.done = true;
    return [this.push(c, { stage, at, ...extra })];
  }

  private push(c: Client, entry: TimelineEntry): BootEvent {
    const clean = Object.fromEntries(Object.entries(entry).filter(([, v]) => v !== undefined)) as unknown as TimelineEntry;
    c.timeline.push(clean);
    return {
      stage: entry.stage,
      client: { mac: c.mac, ip: c.ip, arch: c.arch },
      file: entry.file,
      percent: entry.percent,
      at: entry.at,
      timeline: c.timeline.map((e) => ({ ...e })),
    };
  }

  private clientForIp(ip: string, at: number): Client {
    let c = this.byIp.get(ip);
    if (!c) {
      c = this.newClient(at);
      c.ip = ip;
      this.byIp.set(ip, c);
    }
    return c;
  }

  private newClient(at: number): Client {
    return { timeline: [], seen: new Set(), lastAt: at, lastPercent: -1, stalled: false, done: false };
  }
}
