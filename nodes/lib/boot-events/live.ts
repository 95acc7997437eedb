import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { bootBus, type BootSignal } from './bus';
import { JsonFile } from './history';
import { BootTracker, STAGE_ORDER, type BootError, type BootEvent, type BootRecord, type TransferInfo } from './tracker';

/**
 * The one boot tracker of a Node-RED runtime (module-level, like the bus): it listens to the bus
 * from the first time a pxe-boot-events node or the editor's PXE sidebar asks for it, feeds every
 * pxe-boot-events node, answers the sidebar's admin endpoints, keeps the last boots and the names
 * people gave machines in the user dir, and survives redeploys (nodes come and go, it stays).
 */

export const DEFAULT_STALL_MS = 120_000;
export const MAX_BOOTS = 200;
const MAX_NAMES = 1000;
const MAX_NAME = 64;
const MAX_REMOVED_LOG = 1000;
/** rootfs progress events go out every percent; each pxe-boot-events node keeps its own step. */
const EVENT_STEP = 1;

/** One row of the sidebar: what a person reads at a glance. */
export interface BootSummary {
  id: string;
  /** Version of the last change (for deltas). */
  v: number;
  mac?: string;
  ip?: string;
  name?: string;
  hostname?: string;
  arch?: string;
  firmware?: BootRecord['firmware'];
  ipxe?: boolean;
  state: BootRecord['state'];
  stage: BootRecord['stage'];
  stalledStage?: BootRecord['stalledStage'];
  hint?: BootRecord['hint'];
  error?: BootError;
  startedAt: number;
  lastAt: number;
  endedAt?: number;
  root?: BootRecord['root'];
  kernel?: string;
  /** The ISO booted (several behind one store: the chosen one), else the store files came from. */
  store?: string;
  /** The menu entry booted, when a generated config chose it. */
  entry?: string;
  /** The transfer that matters now: the furthest one in flight, else the furthest one seen. */
  transfer?: TransferInfo;
  retries: number;
  probes: number;
  interrupted?: boolean;
}

export interface BootList {
  /** Changes when the runtime restarts: a client holding another epoch reloads everything. */
  epoch: string;
  v: number;
  /** true: `boots` is everything (newest first); false: only what changed since the asked version. */
  full: boolean;
  boots: BootSummary[];
  removed: string[];
  stallSeconds: number;
  now: number;
}

export interface BootDetail extends BootRecord {
  name?: string;
  v: number;
}

interface Host {
  userDir?: string;
  warn?: (msg: string) => void;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){1,19}$/;

export function cleanName(name: unknown): string {
  // eslint-disable-next-line no-control-regex
  return String(name ?? '').replace(/[\u0000-\u001f\u007f]/g, ' ').trim().slice(0, MAX_NAME);
}

export class BootMonitor {
  tracker!: BootTracker;
  epoch = '';
  private v = 0;
  private vOf = new Map<string, number>();
  private removedLog: { id: string; v: number }[] = [];
  /** Removals older than this version were forgotten: a client behind it reloads everything. */
  private removedFloor = 0;
  private names = new Map<string, string>();
  private readonly eventListeners = new Set<(events: BootEvent[]) => void>();
  private readonly changeListeners = new Set<() => void>();
  private readonly stallTimes = new Map<string, number>();
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private boots: JsonFile<unknown> | undefined;
  private namesFile: JsonFile<unknown> | undefined;
  private userDir: string | undefined;
  private exitHook: (() => void) | undefined;
  private warn: (msg: string) => void = () => undefined;

  constructor(private readonly opts: { persistDelayMs?: number; namesDelayMs?: number; now?: () => number } = {}) {
    this.reset();
  }

  private get now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /** Back to empty, unattached (tests; a runtime never needs it). */
  reset(): void {
    this.stop();
    this.epoch = randomBytes(6).toString('hex');
    this.v = 0;
    this.vOf.clear();
    this.removedLog = [];
    this.removedFloor = 0;
    this.names.clear();
    this.stallTimes.clear();
    this.boots = undefined;
    this.namesFile = undefined;
    this.userDir = undefined;
    this.tracker = new BootTracker({
      stallAfterMs: DEFAULT_STALL_MS,
      rootfsStep: EVENT_STEP,
      timelineStep: 10,
      maxBoots: MAX_BOOTS,
      onChange: (rec) => this.touch(rec.id),
      onRemove: (id) => this.removed(id),
    });
  }

  /**
   * Starts listening (once) and, the first time a user dir is known, loads the kept boots and
   * names from it. Called by every pxe-boot-events node and by the sidebar plugin.
   */
  start(host: Host = {}): void {
    if (host.warn) this.warn = host.warn;
    if (host.userDir && !this.userDir) this.attach(host.userDir);
    if (!this.unsubscribe) this.unsubscribe = bootBus.subscribe((s) => this.handle(s));
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(this.now), 1000);
      this.timer.unref();
    }
  }

  /** Stops listening and writes what is pending (tests; the runtime keeps it for its life). */
  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.flushSync();
    if (this.exitHook) process.off('exit', this.exitHook);
    this.exitHook = undefined;
  }

  handle(s: BootSignal): void {
    this.deliver(this.tracker.handle(s));
  }

  tick(now: number): void {
    this.deliver(this.tracker.tick(now));
  }

  /** Stage events for pxe-boot-events nodes; returns the unsubscribe function. */
  onEvents(fn: (events: BootEvent[]) => void): () => void {
    this.eventListeners.add(fn);
    return () => this.eventListeners.delete(fn);
  }

  /** Called after every change (many a second): the listener coalesces. */
  onChange(fn: () => void): () => void {
    this.changeListeners.add(fn);
    return () => this.changeListeners.delete(fn);
  }

  /** A pxe-boot-events node's stall time: the shortest one deployed applies (120 s with none). */
  setStallTime(owner: string, ms: number | undefined): void {
    if (ms === undefined) this.stallTimes.delete(owner);
    else this.stallTimes.set(owner, ms);
    this.tracker.stallAfterMs = this.stallTimes.size ? Math.min(...this.stallTimes.values()) : DEFAULT_STALL_MS;
  }

  /** pxe-boot-events nodes (and others) listening for stage events. */
  get subscriberCount(): number {
    return this.eventListeners.size;
  }

  get version(): number {
    return this.v;
  }

  /** Everything, or what changed since `since` of `epoch`. */
  list(since?: number, epoch?: string): BootList {
    const full = since === undefined || !Number.isFinite(since) || epoch !== this.epoch || since < this.removedFloor || since > this.v;
    const recs = this.tracker.records();
    const boots = (full ? recs : recs.filter((r) => (this.vOf.get(r.id) ?? 0) > since!)).map((r) => this.summary(r));
    const removed = full ? [] : this.removedLog.filter((x) => x.v > since!).map((x) => x.id);
    return { epoch: this.epoch, v: this.v, full, boots, removed, stallSeconds: Math.round(this.tracker.stallAfterMs / 1000), now: this.now };
  }

  detail(id: string): BootDetail | undefined {
    const r = this.tracker.get(id);
    if (!r) return undefined;
    const name = r.mac ? this.names.get(r.mac) : undefined;
    return { ...structuredClone(r), v: this.vOf.get(id) ?? 0, ...(name ? { name } : {}) };
  }

  /** Forgets finished and stalled boots (machines booting now stay). */
  clear(): number {
    const n = this.tracker.clear();
    this.persist();
    return n;
  }

  /** Names a machine (by MAC); an empty name removes it. Throws on a bad MAC. */
  setName(mac: string, name: string): void {
    const m = String(mac).trim().toLowerCase().replace(/-/g, ':');
    if (!MAC_RE.test(m)) throw new Error(`not a MAC address: ${mac}`);
    const n = cleanName(name);
    if (n) {
      this.names.delete(m);
      this.names.set(m, n);
      // The oldest names go first past the bound.
      while (this.names.size > MAX_NAMES) this.names.delete(this.names.keys().next().value as string);
    } else this.names.delete(m);
    for (const r of this.tracker.records()) if (r.mac === m) this.touch(r.id);
    this.namesFile?.schedule(() => ({ version: 1, names: Object.fromEntries(this.names) }));
  }

  nameOf(mac: string | undefined): string | undefined {
    return mac ? this.names.get(mac) : undefined;
  }

  /** Writes pending files now (and waits). */
  async flush(): Promise<void> {
    await this.boots?.flush();
    await this.namesFile?.flush();
  }

  flushSync(): void {
    this.boots?.flushSync();
    this.namesFile?.flushSync();
  }

  get files(): { boots?: string; names?: string } {
    return { boots: this.boots?.file, names: this.namesFile?.file };
  }

  // ---- inside ----------------------------------------------------------------------------------

  private summary(r: BootRecord): BootSummary {
    const name = this.nameOf(r.mac);
    const s: BootSummary = {
      id: r.id,
      v: this.vOf.get(r.id) ?? 0,
      state: r.state,
      stage: r.stage,
      startedAt: r.startedAt,
      lastAt: r.lastAt,
      retries: r.retries,
      probes: r.probes.length,
    };
    const opt = {
      mac: r.mac,
      ip: r.ip,
      name,
      hostname: r.hostname,
      arch: r.arch,
      firmware: r.firmware,
      ipxe: r.ipxe || undefined,
      stalledStage: r.stalledStage,
      hint: r.hint,
      error: r.state === 'stalled' ? r.stallError : undefined,
      endedAt: r.endedAt,
      root: r.root,
      kernel: r.kernel,
      store: r.iso ?? r.store,
      entry: r.entry,
      transfer: currentTransfer(r),
      interrupted: r.interrupted,
    };
    for (const [k, v] of Object.entries(opt)) if (v !== undefined) (s as unknown as Record<string, unknown>)[k] = v;
    return s;
  }

  private deliver(events: BootEvent[]): void {
    if (!events.length) return;
    for (const fn of this.eventListeners) {
      try {
        fn(events);
      } catch (err) {
        this.warn(`pxe-boot-events listener failed: ${(err as Error).message}`);
      }
    }
  }

  private touch(id: string): void {
    this.vOf.set(id, ++this.v);
    this.changed();
  }

  private removed(id: string): void {
    this.vOf.delete(id);
    this.removedLog.push({ id, v: ++this.v });
    if (this.removedLog.length > MAX_REMOVED_LOG) {
      const gone = this.removedLog.splice(0, this.removedLog.length - MAX_REMOVED_LOG);
      this.removedFloor = gone.at(-1)!.v;
    }
    this.changed();
  }

  private changed(): void {
    this.persist();
    for (const fn of this.changeListeners) {
      try {
        fn();
      } catch (err) {
        this.warn(`pxe boot view: ${(err as Error).message}`);
      }
    }
  }

  private persist(): void {
    this.boots?.schedule(() => ({ version: 1, boots: [...this.tracker.records()].reverse() }));
  }

  private attach(userDir: string): void {
    this.userDir = userDir;
    const dir = path.join(userDir, 'pxe-boot-events');
    const onError = (err: Error): void => this.warn(`pxe-boot-events: ${err.message}`);
    this.boots = new JsonFile(path.join(dir, 'boots.json'), { delayMs: this.opts.persistDelayMs ?? 3000, onError });
    this.namesFile = new JsonFile(path.join(dir, 'names.json'), { delayMs: this.opts.namesDelayMs ?? 500, onError });
    const names = this.namesFile.load() as { names?: Record<string, unknown> } | undefined;
    for (const [mac, name] of Object.entries(names?.names ?? {})) {
      const n = cleanName(name);
      if (MAC_RE.test(mac) && n && this.names.size < MAX_NAMES) this.names.set(mac, n);
    }
    const kept = this.boots.load() as { boots?: unknown } | undefined;
    if (Array.isArray(kept?.boots)) this.tracker.restore(kept.boots.slice(-MAX_BOOTS).filter(isRecord));
    this.exitHook = () => this.flushSync();
    process.on('exit', this.exitHook);
  }
}

function isRecord(x: unknown): x is BootRecord {
  const r = x as BootRecord;
  return !!r && typeof r === 'object' && typeof r.id === 'string' && typeof r.startedAt === 'number' && typeof r.lastAt === 'number' && (STAGE_ORDER as readonly string[]).includes(r.stage);
}

function currentTransfer(r: BootRecord): TransferInfo | undefined {
  const order = ['rootfs', 'initrd', 'kernel', 'loader'] as const;
  for (const k of order) if (r.transfers[k]?.state === 'active') return r.transfers[k];
  for (const k of order) if (r.transfers[k]) return r.transfers[k];
  return undefined;
}

/** The runtime's one monitor. */
export const bootMonitor = new BootMonitor();
