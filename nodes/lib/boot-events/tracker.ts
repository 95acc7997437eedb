import { randomBytes } from 'node:crypto';
import type { BootSignal, DhcpSignal, TransferSignal } from './bus';
import { firmwareFromFile, firmwareOf, isIpxe, nextFirmware, type Firmware } from './firmware';

export type BootStage = 'dhcp' | 'loader' | 'kernel' | 'initrd' | 'rootfs' | 'complete' | 'stalled';
/** The stages a boot goes through, in order (stalled is not one: it is a state). */
export const STAGE_ORDER = ['dhcp', 'loader', 'kernel', 'initrd', 'rootfs', 'complete'] as const;
export type ProgressStage = (typeof STAGE_ORDER)[number];
export type TransferStage = 'loader' | 'kernel' | 'initrd' | 'rootfs';
export type BootState = 'booting' | 'complete' | 'stalled';
export type Via = TransferSignal['source'];

/** How much one boot may hold: the tracker's memory is bounded by these times `maxBoots`. */
export const LIMITS = { timeline: 40, files: 32, probes: 8, fileName: 256, message: 200 } as const;

export interface TimelineEntry {
  stage: BootStage;
  at: number;
  file?: string;
  via?: BootSignal['source'];
  percent?: number;
  /** stalled: what went wrong last ('TFTP: file not found …' in the editor). */
  error?: string;
}

export interface BootError {
  via: Via;
  file: string;
  message: string;
  at: number;
  notFound?: boolean;
}

export interface BootEvent {
  stage: BootStage;
  client: { mac?: string; ip?: string; arch?: string; firmware?: Firmware };
  file?: string;
  percent?: number;
  at: number;
  /** Everything this boot did so far, oldest first (this event included). */
  timeline: TimelineEntry[];
  /** Which boot this is (stable for the boot's life; a new DHCP after the end starts another). */
  bootId: string;
  /** stalled: the stage it stopped in and the last error, when there was one. */
  stalledStage?: ProgressStage;
  error?: BootError;
  /** The menu entry the client boots ('arch_nfs'), when a generated config chose it. */
  entry?: string;
  /** The ISO it boots (its file name): from its kernel's store, else from the choice. */
  iso?: string;
}

export interface TransferInfo {
  stage: TransferStage;
  file: string;
  via: Via;
  bytes: number;
  /** 0 when unknown. */
  size: number;
  startedAt: number;
  at: number;
  /** Bytes per second, smoothed; 0 until known. */
  rate: number;
  state: 'active' | 'done' | 'failed';
}

export interface FileEntry {
  file: string;
  via: Via;
  at: number;
  bytes: number;
  size: number;
  state: 'active' | 'done' | 'failed' | 'notFound';
  /** How many times it was asked for. */
  requests: number;
  message?: string;
}

export interface DhcpInfo {
  kind: DhcpSignal['kind'];
  at: number;
  mode?: 'full' | 'proxy';
  bootFile?: string;
  configFile?: string;
  pathPrefix?: string;
  bootRule?: string;
  vendorClass?: string;
  userClass?: string[];
  /** DHCP answers this boot got (offers and ACKs). */
  answers: number;
}

/** One boot of one client: what the sidebar shows and what is kept in the user dir. */
export interface BootRecord {
  id: string;
  mac?: string;
  ip?: string;
  arch?: string;
  firmware?: Firmware;
  /** iPXE ran (the NIC's ROM, or chain-loaded). */
  ipxe?: boolean;
  hostname?: string;
  startedAt: number;
  lastAt: number;
  endedAt?: number;
  state: BootState;
  /** The furthest stage reached (a transfer in flight counts). */
  stage: ProgressStage;
  /** stalled: where it stopped. */
  stalledStage?: ProgressStage;
  /** stalled with nothing to blame but the boot menu: probably waiting for someone at the console. */
  hint?: 'menu';
  /** The last error this boot saw (missing files included). */
  error?: BootError;
  /** stalled: the error that stopped it, when the last thing that happened was one (or a real failure). */
  stallError?: BootError;
  dhcp?: DhcpInfo;
  /** The root filesystem: how (NBD/NFS/HTTP/TFTP) and which file; the kernel command line is not visible to us. */
  root?: { via: Via; file: string };
  kernel?: string;
  initrd?: string;
  /** The store (ISO) the boot files came from, when the serving node says. */
  store?: string;
  /** The menu entry booted, when a generated config chose it (DHCP's entry). */
  entry?: string;
  /** The ISO booted (its file name): the store its kernel came from, else the chosen entry's. */
  iso?: string;
  transfers: Partial<Record<TransferStage, TransferInfo>>;
  files: FileEntry[];
  /** The last missing files asked for (pxelinux probes many paths): shown quietly. */
  probes: BootError[];
  timeline: TimelineEntry[];
  /** DHCP answers beyond the first of a boot, and files asked for again after failing. */
  retries: number;
  /** Loaded from the user dir; 'restart' when it was still booting as Node-RED stopped. */
  restored?: boolean;
  interrupted?: boolean;
}

export interface TrackerOptions {
  /** A boot with no news for this long is reported stalled once (ms). */
  stallAfterMs: number;
  /** rootfs progress is reported every this many percent. */
  rootfsStep: number;
  /** rootfs progress is kept in the timeline every this many percent (at least rootfsStep; default 10). */
  timelineStep?: number;
  /** A boot whose kernel, initramfs, rootfs or loader was refused and that asks nothing else for this long stalls then (default 5 s). */
  failAfterMs?: number;
  /** Boots kept (finished ones first out); default 200. */
  maxBoots?: number;
  /** Told about every boot that changed, and every boot that is gone (evicted, merged, cleared). */
  onChange?: (rec: BootRecord) => void;
  onRemove?: (id: string) => void;
  newId?: () => string;
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

/** Menus and modules of the loaders: a boot that stops after these is sitting in a menu. */
function isMenuFile(file: string): boolean {
  return /\.(cfg|c32|conf)$/i.test(file) || /pxelinux\.cfg\//i.test(file);
}

const rank = (s: ProgressStage): number => STAGE_ORDER.indexOf(s);
const clip = (s: string, n: number): string => (s.length > n ? s.slice(0, n - 1) + '…' : s);
/** Time constant of the smoothed transfer rate. */
const RATE_TAU_MS = 2000;

interface Client {
  rec: BootRecord;
  seen: Set<BootStage>;
  lastPercent: number;
  timelinePercent: number;
  /** A boot file was refused: stalled at this time unless something else comes first. */
  failAt?: number;
  /** The stage of the boot file refused last (until the boot goes on). */
  failStage?: TransferStage;
  /** Still tied to its MAC / IP for lookups (forgotten long after the end). */
  linked: boolean;
}

/**
 * Follows each client through its boot. Pure: signals in, events out; the clock comes with each
 * call so tests drive it. Clients are keyed by MAC; TFTP/HTTP/NBD/NFS only know the IP, which DHCP
 * ties to a MAC (an unknown IP gets a timeline of its own). It keeps the last `maxBoots` boots
 * with what the editor's sidebar shows about each, every list within LIMITS.
 */
export class BootTracker {
  private readonly byMac = new Map<string, Client>();
  private readonly byIp = new Map<string, Client>();
  /** Every boot kept, oldest first. */
  private readonly boots = new Map<string, Client>();
  private readonly active = new Set<Client>();
  private readonly newId: () => string;

  constructor(private readonly opts: TrackerOptions) {
    const prefix = randomBytes(3).toString('hex');
    let n = 0;
    this.newId = opts.newId ?? (() => `${prefix}-${(n++).toString(36)}`);
  }

  /** Boots in progress (neither complete nor stalled). */
  get activeCount(): number {
    return this.active.size;
  }

  get size(): number {
    return this.boots.size;
  }

  get stallAfterMs(): number {
    return this.opts.stallAfterMs;
  }

  set stallAfterMs(ms: number) {
    this.opts.stallAfterMs = ms;
  }

  private get maxBoots(): number {
    return this.opts.maxBoots ?? 200;
  }

  /** The boots kept, newest first. Live objects: callers copy what they keep. */
  records(): BootRecord[] {
    return [...this.boots.values()].reverse().map((c) => c.rec);
  }

  get(id: string): BootRecord | undefined {
    return this.boots.get(id)?.rec;
  }

  handle(s: BootSignal): BootEvent[] {
    if (s.source === 'dhcp') return this.onDhcp(s);
    const known = this.byIp.get(s.ip);
    const stage = s.source === 'nbd' ? 'rootfs' : classifyFile(s.file, known?.rec.dhcp?.bootFile);
    // Files that are no boot stage (menus, modules, probes) never start a timeline of their own.
    if (!known && !stage) return [];
    const client = known ?? this.clientForIp(s.ip, s.at);
    const rec = client.rec;
    rec.lastAt = Math.max(rec.lastAt, s.at);
    if (s.store) rec.store = clip(s.store, LIMITS.fileName);
    const hint = firmwareFromFile(s.file);
    if (hint === 'ipxe') rec.ipxe = true;
    if (hint === 'rpi') rec.firmware = 'rpi';
    this.noteFile(client, s, stage);
    if (s.kind === 'error') {
      this.noteError(client, s, stage);
      this.changed(client);
      return [];
    }
    // Anything but an error is news: the boot goes on.
    client.failAt = undefined;
    client.failStage = undefined;
    const out: BootEvent[] = [];
    if (rec.state === 'stalled' && !rec.restored) this.resume(client);
    if (stage) this.noteTransfer(client, s, stage);
    if (stage === 'rootfs') out.push(...this.onRootfs(client, s));
    else if (stage && s.kind === 'done') out.push(...this.emitOnce(client, stage, s.at, { file: s.file, via: s.source }));
    this.changed(client);
    return out;
  }

  /** Reports boots that went quiet; call periodically. */
  tick(now: number): BootEvent[] {
    const out: BootEvent[] = [];
    for (const c of [...this.active]) {
      const failed = c.failAt !== undefined && now >= c.failAt;
      if (!failed && now - c.rec.lastAt < this.opts.stallAfterMs) continue;
      out.push(this.stall(c, now));
    }
    // Forget finished or long-dead clients for lookups: a later signal from that address starts afresh.
    for (const [k, c] of this.byMac) if (c.rec.state !== 'booting' && now - c.rec.lastAt > 10 * this.opts.stallAfterMs) this.unlink(c, k);
    for (const [k, c] of this.byIp) if (c.rec.state !== 'booting' && now - c.rec.lastAt > 10 * this.opts.stallAfterMs) this.unlink(c, undefined, k);
    return out;
  }

  /** Forgets finished and stalled boots (booting ones stay); returns how many went. */
  clear(): number {
    let n = 0;
    for (const c of [...this.boots.values()]) {
      if (c.rec.state === 'booting') continue;
      this.drop(c);
      n++;
    }
    return n;
  }

  /**
   * Boots kept from an earlier run (the user dir), oldest first. They are history: a boot still
   * going when Node-RED stopped is shown stalled ("interrupted"), and a new signal from the same
   * client starts a new boot.
   */
  restore(records: BootRecord[]): void {
    for (const r of records) {
      if (!r || typeof r.id !== 'string' || this.boots.has(r.id)) continue;
      const rec: BootRecord = { ...r, restored: true, transfers: r.transfers ?? {}, files: r.files ?? [], probes: r.probes ?? [], timeline: r.timeline ?? [], retries: r.retries ?? 0 };
      if (rec.state === 'booting') {
        rec.state = 'stalled';
        rec.stalledStage = rec.stage;
        rec.interrupted = true;
        for (const t of Object.values(rec.transfers)) if (t && t.state === 'active') t.state = 'failed';
      }
      const c: Client = { rec, seen: new Set(rec.timeline.map((t) => t.stage)), lastPercent: -1, timelinePercent: -1, linked: false };
      this.boots.set(rec.id, c);
    }
    while (this.boots.size > this.maxBoots) this.drop(this.boots.values().next().value as Client);
  }

  // ---- DHCP ------------------------------------------------------------------------------------

  private onDhcp(s: DhcpSignal): BootEvent[] {
    const mac = s.mac.toLowerCase();
    let c = this.byMac.get(mac);
    // A finished (or stalled) client that asks again is booting again: a fresh timeline.
    if (!c || c.rec.state !== 'booting') {
      c = this.newClient(s.at);
      c.rec.mac = mac;
      this.byMac.set(mac, c);
    }
    const rec = c.rec;
    // A TFTP/HTTP client seen before its DHCP (proxy mode learns the IP late) joins this timeline.
    if (s.ip) {
      const byIp = this.byIp.get(s.ip);
      if (byIp && byIp !== c && !byIp.rec.mac) this.merge(byIp, c);
      rec.ip = s.ip;
      this.byIp.set(s.ip, c);
    }
    if (s.arch) rec.arch = s.arch;
    if (s.hostname) rec.hostname = clip(s.hostname, 64);
    if (s.entry) rec.entry = clip(s.entry, LIMITS.fileName);
    if (s.iso && !rec.kernel) rec.iso = clip(s.iso, LIMITS.fileName);
    const fw = firmwareOf({ mac, arch: s.arch, vendorClass: s.vendorClass, userClass: s.userClass });
    const firmware = nextFirmware(rec.firmware, fw);
    if (firmware) rec.firmware = firmware;
    if (isIpxe(s)) rec.ipxe = true;
    rec.lastAt = Math.max(rec.lastAt, s.at);
    c.failAt = undefined;
    c.failStage = undefined;
    if (s.kind !== 'request') {
      const prev = rec.dhcp;
      // A full-mode offer while the last one is still unanswered: the client asked again.
      if (prev && s.kind === 'offer' && prev.kind === 'offer' && s.ip !== undefined) rec.retries++;
      rec.dhcp = {
        kind: s.kind,
        at: s.at,
        answers: (prev?.answers ?? 0) + 1,
        ...pick(s, ['mode', 'bootFile', 'configFile', 'pathPrefix', 'bootRule', 'vendorClass']),
        ...(s.userClass?.length ? { userClass: s.userClass.slice(0, 8).map((u) => clip(u, 64)) } : {}),
      };
      // A later answer without boot information (iPXE's own DHCP in proxy mode) keeps what the ROM was told.
      for (const k of ['bootFile', 'configFile', 'pathPrefix', 'bootRule', 'mode'] as const) if (rec.dhcp[k] === undefined && prev?.[k] !== undefined) (rec.dhcp as unknown as Record<string, unknown>)[k] = prev[k];
    }
    if (rec.state === 'stalled') this.resume(c);
    this.changed(c);
    // Boot information is final with an ACK, or with a proxyDHCP offer (no address): PXE ROMs
    // told to use the boot file directly never come back to port 4011.
    if (s.kind !== 'ack' && s.ip !== undefined) return [];
    return this.emitOnce(c, 'dhcp', s.at, { file: s.bootFile, via: 'dhcp' });
  }

  // ---- files -----------------------------------------------------------------------------------

  private noteFile(c: Client, s: TransferSignal, stage: TransferStage | null): void {
    const rec = c.rec;
    const file = clip(s.file, LIMITS.fileName);
    const state: FileEntry['state'] = s.kind === 'error' ? (s.notFound ? 'notFound' : 'failed') : s.kind === 'done' ? 'done' : 'active';
    let f = rec.files.find((x) => x.file === file && x.via === s.source);
    const fresh = s.kind === 'start' || (!!f && (f.state === 'done' || f.state === 'failed' || f.state === 'notFound') && s.kind !== 'error');
    if (!f) {
      f = { file, via: s.source, at: s.at, bytes: 0, size: 0, state, requests: 0 };
      rec.files.push(f);
      if (rec.files.length > LIMITS.files) rec.files.splice(0, rec.files.length - LIMITS.files);
    } else if (fresh && (f.state === 'failed' || f.state === 'notFound')) {
      // Asked again after it failed.
      rec.retries++;
    }
    if (fresh || f.requests === 0) f.requests++;
    f.at = s.at;
    f.state = state;
    f.bytes = s.bytes;
    if (s.size > 0) f.size = s.size;
    if (s.kind === 'error') f.message = clip(s.error ?? 'error', LIMITS.message);
    else delete f.message;
    // NBD reads no file: its whole export stands for the root filesystem.
    if (stage === 'rootfs') rec.root = { via: s.source, file };
    else if (stage === 'kernel') {
      rec.kernel = file;
      // The kernel's store is the ISO booted (several ISOs: the one under the kernel's prefix).
      if (s.store) rec.iso = clip(s.store, LIMITS.fileName);
    }
    else if (stage === 'initrd') rec.initrd = file;
  }

  private noteError(c: Client, s: TransferSignal, stage: TransferStage | null): void {
    const rec = c.rec;
    const err: BootError = { via: s.source, file: clip(s.file, LIMITS.fileName), message: clip(s.error ?? (s.notFound ? 'file not found' : 'error'), LIMITS.message), at: s.at };
    if (s.notFound) err.notFound = true;
    rec.error = err;
    if (s.notFound) {
      rec.probes.push(err);
      if (rec.probes.length > LIMITS.probes) rec.probes.splice(0, rec.probes.length - LIMITS.probes);
    }
    if (!stage || rec.state !== 'booting') return;
    const t = rec.transfers[stage];
    if (t && t.file === err.file && t.via === s.source) {
      t.state = 'failed';
      t.at = s.at;
    } else if (!t || t.state !== 'active') {
      rec.transfers[stage] = { stage, file: err.file, via: s.source, bytes: s.bytes, size: s.size, startedAt: s.at, at: s.at, rate: 0, state: 'failed' };
    }
    // A boot file refused: the boot stops here unless the client finds another way soon.
    if (!c.seen.has(stage) || stage === 'rootfs') {
      c.failAt = s.at + (this.opts.failAfterMs ?? 5000);
      c.failStage = stage;
    }
  }

  private noteTransfer(c: Client, s: TransferSignal, stage: TransferStage): void {
    const rec = c.rec;
    const file = clip(s.file, LIMITS.fileName);
    let t = rec.transfers[stage];
    const again = (t?.state !== 'active' && s.kind === 'start') || t?.state === 'failed' || (t?.state === 'done' && s.bytes < t.bytes);
    if (!t || t.file !== file || t.via !== s.source || again) {
      t = { stage, file, via: s.source, bytes: 0, size: s.size, startedAt: s.at, at: s.at, rate: 0, state: 'active' };
      rec.transfers[stage] = t;
    }
    const dt = s.at - t.at;
    const db = s.bytes - t.bytes;
    if (s.kind === 'progress' && dt > 0 && db >= 0) {
      const inst = (db * 1000) / dt;
      const w = 1 - Math.exp(-dt / RATE_TAU_MS);
      t.rate = t.rate > 0 ? t.rate + w * (inst - t.rate) : inst;
    }
    if (s.kind === 'done') {
      const whole = s.at - t.startedAt;
      // Nothing in between (a TFTP transfer reports start and end only): the average is the rate.
      if (t.rate === 0 && whole > 0) t.rate = (s.bytes * 1000) / whole;
      t.state = 'done';
    } else t.state = 'active';
    t.bytes = s.bytes;
    if (s.size > 0) t.size = s.size;
    t.at = s.at;
    if (rank(stage) > rank(rec.stage)) rec.stage = stage;
  }

  private onRootfs(c: Client, s: TransferSignal): BootEvent[] {
    const percent = s.size > 0 ? Math.min(100, Math.floor((s.bytes / s.size) * 100)) : 100;
    const out: BootEvent[] = [];
    const step = Math.max(1, this.opts.rootfsStep);
    const tlStep = Math.max(step, this.opts.timelineStep ?? 10);
    const stepped = Math.floor(percent / step) * step;
    if (!c.seen.has('rootfs') || stepped > c.lastPercent || (percent === 100 && c.lastPercent < 100)) {
      const first = !c.seen.has('rootfs');
      c.seen.add('rootfs');
      c.lastPercent = percent === 100 ? 100 : stepped;
      const entry: TimelineEntry = { stage: 'rootfs', at: s.at, file: s.file || undefined, via: s.source, percent: c.lastPercent };
      const tl = percent === 100 ? 100 : Math.floor(percent / tlStep) * tlStep;
      // The timeline keeps coarser steps than the events (a sidebar, not a log).
      const keep = first || tl > c.timelinePercent;
      if (keep) c.timelinePercent = tl;
      out.push(this.push(c, keep ? { ...entry, percent: first ? c.lastPercent : tl } : null, entry));
    }
    if (s.kind === 'done' && percent === 100) out.push(...this.emitOnce(c, 'complete', s.at, { file: s.file || undefined, via: s.source }));
    return out;
  }

  // ---- states ----------------------------------------------------------------------------------

  private stall(c: Client, now: number): BootEvent {
    const rec = c.rec;
    rec.state = 'stalled';
    // Where it stopped: the stage whose file was refused, else the furthest one reached.
    rec.stalledStage = c.failStage && rank(c.failStage) > rank(rec.stage) ? c.failStage : rec.stage;
    rec.endedAt = now;
    c.failAt = undefined;
    this.active.delete(c);
    for (const t of Object.values(rec.transfers)) if (t && t.state === 'active') t.state = 'failed';
    // Nothing went wrong, it just stopped after reading menus: someone has to pick an entry.
    const last = [...rec.files].sort((a, b) => b.at - a.at)[0];
    if (rec.stage === 'loader' && last && isMenuFile(last.file) && (!rec.error || rec.error.at < last.at)) rec.hint = 'menu';
    else delete rec.hint;
    // The error to blame: the last thing that happened, or a real failure (not a missing-file probe).
    const err = rec.error && (!last || rec.error.at >= last.at || !rec.error.notFound) ? rec.error : undefined;
    if (err) rec.stallError = { ...err };
    else delete rec.stallError;
    const entry: TimelineEntry = { stage: 'stalled', at: now };
    if (err) entry.error = errorLine(err);
    const ev = this.push(c, entry);
    ev.stalledStage = rec.stalledStage;
    if (err) ev.error = { ...err };
    this.changed(c);
    return ev;
  }

  private resume(c: Client): void {
    const rec = c.rec;
    rec.state = 'booting';
    delete rec.stalledStage;
    delete rec.endedAt;
    delete rec.hint;
    delete rec.stallError;
    this.active.add(c);
  }

  private emitOnce(c: Client, stage: BootStage, at: number, extra: Partial<TimelineEntry>): BootEvent[] {
    if (c.seen.has(stage)) return [];
    c.seen.add(stage);
    const rec = c.rec;
    if (stage !== 'stalled' && rank(stage as ProgressStage) > rank(rec.stage)) rec.stage = stage as ProgressStage;
    if (stage === 'complete') {
      rec.state = 'complete';
      rec.endedAt = at;
      c.failAt = undefined;
      this.active.delete(c);
    }
    return [this.push(c, { stage, at, ...extra })];
  }

  /** Adds `entry` to the timeline (null: to the event only) and makes the event. */
  private push(c: Client, entry: TimelineEntry | null, eventEntry: TimelineEntry | null = entry): BootEvent {
    const rec = c.rec;
    if (entry) {
      rec.timeline.push(clean(entry));
      trimTimeline(rec.timeline);
    }
    const e = eventEntry!;
    this.changed(c);
    return {
      stage: e.stage,
      client: { mac: rec.mac, ip: rec.ip, arch: rec.arch, ...(rec.firmware ? { firmware: rec.firmware } : {}) },
      file: e.file,
      percent: e.percent,
      at: e.at,
      timeline: rec.timeline.map((t) => ({ ...t })),
      bootId: rec.id,
      ...(rec.entry ? { entry: rec.entry } : {}),
      ...(rec.iso ? { iso: rec.iso } : {}),
    };
  }

  // ---- bookkeeping -----------------------------------------------------------------------------

  private changed(c: Client): void {
    if (this.boots.has(c.rec.id)) this.opts.onChange?.(c.rec);
  }

  private clientForIp(ip: string, at: number): Client {
    let c = this.byIp.get(ip);
    if (!c) {
      c = this.newClient(at);
      c.rec.ip = ip;
      this.byIp.set(ip, c);
    }
    return c;
  }

  private newClient(at: number): Client {
    const rec: BootRecord = { id: this.newId(), startedAt: at, lastAt: at, state: 'booting', stage: 'dhcp', transfers: {}, files: [], probes: [], timeline: [], retries: 0 };
    const c: Client = { rec, seen: new Set(), lastPercent: -1, timelinePercent: -1, linked: true };
    this.boots.set(rec.id, c);
    this.active.add(c);
    if (this.boots.size > this.maxBoots) {
      // Finished boots go first; only 200 machines booting at once push out a booting one.
      let victim: Client | undefined;
      for (const b of this.boots.values()) {
        if (b.rec.state !== 'booting') {
          victim = b;
          break;
        }
      }
      this.drop(victim ?? (this.boots.values().next().value as Client));
    }
    return c;
  }

  /** An IP-only boot (seen before its DHCP) becomes part of the MAC's boot. */
  private merge(from: Client, into: Client): void {
    const a = from.rec;
    const b = into.rec;
    b.timeline.push(...a.timeline);
    b.timeline.sort((x, y) => x.at - y.at);
    trimTimeline(b.timeline);
    for (const st of from.seen) into.seen.add(st);
    into.lastPercent = Math.max(into.lastPercent, from.lastPercent);
    into.timelinePercent = Math.max(into.timelinePercent, from.timelinePercent);
    b.files = [...b.files, ...a.files].sort((x, y) => x.at - y.at).slice(-LIMITS.files);
    b.probes = [...b.probes, ...a.probes].sort((x, y) => x.at - y.at).slice(-LIMITS.probes);
    for (const [k, t] of Object.entries(a.transfers) as [TransferStage, TransferInfo][]) if (!b.transfers[k] || b.transfers[k]!.at < t.at) b.transfers[k] = t;
    if (rank(a.stage) > rank(b.stage)) b.stage = a.stage;
    b.startedAt = Math.min(a.startedAt, b.startedAt);
    b.lastAt = Math.max(a.lastAt, b.lastAt);
    b.retries += a.retries;
    for (const k of ['root', 'kernel', 'initrd', 'store', 'entry', 'iso', 'error', 'ipxe'] as const) if (a[k] !== undefined && b[k] === undefined) (b as unknown as Record<string, unknown>)[k] = a[k];
    if (a.firmware === 'rpi') b.firmware = 'rpi';
    if (from.failAt !== undefined) into.failAt = from.failAt;
    this.drop(from);
  }

  private unlink(c: Client, mac = c.rec.mac, ip = c.rec.ip): void {
    if (mac && this.byMac.get(mac) === c) this.byMac.delete(mac);
    if (ip && this.byIp.get(ip) === c) this.byIp.delete(ip);
    if (this.byMac.get(c.rec.mac ?? '') !== c && this.byIp.get(c.rec.ip ?? '') !== c) c.linked = false;
  }

  private drop(c: Client): void {
    this.unlink(c, c.rec.mac, c.rec.ip);
    this.active.delete(c);
    if (this.boots.delete(c.rec.id)) this.opts.onRemove?.(c.rec.id);
  }
}

/** 'TFTP: file not found arch/boot/x86_64/vmlinuz-linux' (English: node messages; the sidebar words its own). */
export function errorLine(e: BootError): string {
  const via = e.via.toUpperCase();
  if (e.notFound) return `${via}: file not found ${e.file}`.trim();
  return e.file && !e.message.includes(e.file) ? `${via}: ${e.message} ${e.file}` : `${via}: ${e.message}`;
}

function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) {
    const v = o[k];
    if (v !== undefined && v !== null && v !== '') out[k] = (typeof v === 'string' ? clip(v, LIMITS.fileName) : v) as T[K];
  }
  return out;
}

function clean(entry: TimelineEntry): TimelineEntry {
  return Object.fromEntries(Object.entries(entry).filter(([, v]) => v !== undefined)) as unknown as TimelineEntry;
}

/** Keeps a timeline within LIMITS.timeline: in-between rootfs progress goes first, then the oldest after the first. */
function trimTimeline(tl: TimelineEntry[]): void {
  while (tl.length > LIMITS.timeline) {
    const i = tl.findIndex((t, k) => k > 0 && t.stage === 'rootfs' && t.percent !== undefined && t.percent > 0 && t.percent < 100);
    tl.splice(i >= 0 ? i : 1, 1);
  }
}
