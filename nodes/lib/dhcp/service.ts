/**
 * A running DHCP service on one interface: sockets, lease store, rogue-server guard, the mode's
 * responder and the run-time operations a flow can ask for. Knows nothing of Node-RED; the node
 * (nodes/pxe-dhcp.ts) and the network tests' child process both drive it.
 */
import { EventEmitter } from 'node:events';
import { BootRules, type BootAction, type BootRule } from './boot-rules';
import type { DhcpEvent } from './events';
import { FullResponder, type LeaseLog } from './full';
import { intToIp, ipToInt, normalizeMac, parseCidr } from './ip';
import { LeaseStore, MemoryLeaseLog, type LeaseRecord, type LeaseSnapshot } from './lease-store';
import { AddressPool, type Reservation, type SubnetConfig } from './address-pool';
import { ProxyResponder } from './proxy';
import type { ReplyRoute } from './reply-route';
import { DhcpMessageLoop } from './message-loop';
import { DhcpSockets, interfaceAddress, type InterfaceAddress, type Isolation } from './socket';
import { DEFAULT_PROBE_MS, probeForServers, type ProbeAnswer } from './guard';

export type DhcpMode = 'proxy' | 'full';

export interface PoolConfig {
  /** First and last address handed out; default: the middle half of the interface's subnet. */
  start?: string;
  end?: string;
  router?: string[];
  dns?: string[];
  domain?: string;
}

export interface DhcpServiceConfig {
  mode: DhcpMode;
  iface: string;
  isolation?: Isolation;
  rules: BootRule[];
  /** Full mode. */
  pool?: PoolConfig;
  /** Further pools for relayed requests (chosen by giaddr). */
  relayPools?: SubnetConfig[];
  reservations?: Reservation[];
  /** Seconds. */
  leaseTime?: number;
  authoritative?: boolean;
  /** Lease log path (full mode); without it leases live in memory only. */
  leaseFile?: string;
  /** Serve even if another DHCP server answers the probe (full mode). */
  force?: boolean;
  /** Rogue probe wait in ms (default 3000); 0 skips the probe. */
  probeMs?: number;
  /** For tests: the interface address instead of reading it from the system. */
  address?: InterfaceAddress;
}

export class RogueServerError extends Error {
  override name = 'RogueServerError';
  constructor(readonly servers: ProbeAnswer[]) {
    super(
      `another DHCP server answers on this segment (${servers.map((s) => `${s.server} offered ${s.offered}`).join(', ')}); ` +
        'not serving. Use proxy mode beside it, stop it, or set "force" if you are sure',
    );
  }
}

export interface DhcpServiceEvents {
  event: [e: DhcpEvent, route: ReplyRoute | undefined];
  warn: [warning: DhcpWarning];
  error: [err: Error];
}

/** The default pool: the middle half of the subnet (e.g. .64–.192 of a /24). */
export function defaultRange(address: string, prefix: number): { start: string; end: string } {
  const c = parseCidr(`${address}/${prefix}`);
  const size = c.broadcast - c.network + 1;
  if (size < 8) throw new Error(`subnet /${prefix} is too small for an address pool`);
  return { start: intToIp(c.network + Math.ceil(size / 4)), end: intToIp(c.network + Math.floor((3 * size) / 4)) };
}


/**
 * Something the operator should know that does not stop the service: `key` names the text in the
 * node's locale (pxe-dhcp.warn.<key>, with `subs`); `text` is the same in English for logs outside
 * Node-RED.
 */
export interface DhcpWarning {
  key: 'malformed' | 'probeSkipped' | 'forced' | 'leaseFile' | 'leaseFileTorn' | 'isolationFilter';
  subs: Record<string, string | number>;
  text: string;
}

const warning = (key: DhcpWarning['key'], subs: DhcpWarning['subs'], text: string): DhcpWarning => ({ key, subs, text });

export class DhcpService extends EventEmitter<DhcpServiceEvents> {
  /** Things the user should know about how the service started (logged by the node). */
  startupWarnings: DhcpWarning[] = [];

  private constructor(
    readonly config: DhcpServiceConfig,
    readonly sockets: DhcpSockets,
    readonly loop: DhcpMessageLoop,
    readonly rules: BootRules,
    private readonly pool: AddressPool | null,
    private readonly store: LeaseStore | null,
    private readonly sweepTimer: NodeJS.Timeout | null,
  ) {
    super();
    loop.on('event', (e, r) => this.emit('event', e, r));
    loop.on('error', (err) => this.emit('error', err));
    loop.on('malformed', (err, from) => this.emit('warn', warning('malformed', { from, message: err.message }, `malformed DHCP packet from ${from}: ${err.message}`)));
  }

  get address(): InterfaceAddress {
    return this.sockets.addr;
  }

  static async start(cfg: DhcpServiceConfig): Promise<DhcpService> {
    const addr = cfg.address ?? interfaceAddress(cfg.iface);
    const rules = new BootRules(cfg.rules);
    // Validate everything before binding anything.
    let pool: AddressPool | null = null;
    let subnets: SubnetConfig[] = [];
    if (cfg.mode === 'full') {
      const local = parseCidr(`${addr.address}/${addr.prefix}`);
      const range = cfg.pool?.start && cfg.pool?.end ? { start: cfg.pool.start, end: cfg.pool.end } : defaultRange(addr.address, addr.prefix);
      subnets = [
        {
          network: `${intToIp(local.network)}/${local.prefix}`,
          rangeStart: range.start,
          rangeEnd: range.end,
          router: cfg.pool?.router,
          dns: cfg.pool?.dns,
          domain: cfg.pool?.domain,
        },
        ...(cfg.relayPools ?? []),
      ];
      // Throws on a bad pool or reservation, with nothing opened yet.
      new AddressPool(subnets, cfg.reservations ?? [], { leases: new Map(), declined: new Map() }, { serverIps: [addr.address] });
    }
    const sockets = await DhcpSockets.open({ iface: cfg.iface, pxePort: cfg.mode === 'proxy', isolation: cfg.isolation ?? 'auto', address: addr });
    let store: LeaseStore | null = null;
    const warnings: DhcpWarning[] = [];
    try {
      if (cfg.mode === 'full' && (cfg.probeMs ?? DEFAULT_PROBE_MS) > 0) {
        const found = await probeForServers(sockets, { mac: addr.mac, ownAddress: addr.address, timeoutMs: cfg.probeMs ?? DEFAULT_PROBE_MS });
        if (found === null) warnings.push(warning('probeSkipped', {}, 'rogue-server probe skipped: port 68 is in use'));
        else if (found.length && !cfg.force) throw new RogueServerError(found);
        else if (found.length) {
          const seen = new RogueServerError(found).message.split(';')[0]!;
          warnings.push(warning('forced', { seen }, `forced: serving although ${seen}`));
        }
      }
      let log: LeaseLog & { state: LeaseSnapshot };
      if (cfg.mode === 'full' && cfg.leaseFile) {
        store = await LeaseStore.open(cfg.leaseFile);
        log = store;
      } else log = new MemoryLeaseLog();
      let responder;
      let timer: NodeJS.Timeout | null = null;
      if (cfg.mode === 'full') {
        pool = new AddressPool(subnets, cfg.reservations ?? [], log.state, { serverIps: [addr.address] });
        responder = new FullResponder({
          serverIp: addr.address,
          pool,
          log,
          rules,
          leaseTime: cfg.leaseTime ?? 3600,
          authoritative: cfg.authoritative ?? true,
        });
        const p = pool;
        timer = setInterval(() => p.sweep(Date.now()), 30_000);
        timer.unref();
      } else responder = new ProxyResponder({ serverIp: addr.address, rules });
      const loop = new DhcpMessageLoop(sockets, responder);
      const svc = new DhcpService(cfg, sockets, loop, rules, pool, store, timer);
      if (store && (store.loadReport.badLines || store.loadReport.tornTail)) {
        const { badLines, tornTail } = store.loadReport;
        warnings.push(warning(tornTail ? 'leaseFileTorn' : 'leaseFile', { file: store.file, count: badLines }, `lease file ${store.file}: ignored ${badLines} bad line(s)${tornTail ? ' and a torn last line' : ''}`));
      }
      if (sockets.isolation === 'filter') {
        const note = sockets.isolationNote ?? 'chosen';
        warnings.push(warning('isolationFilter', { note }, `interface isolation by source-address filter (${note}); see the README`));
      }
      svc.startupWarnings = warnings;
      return svc;
    } catch (e) {
      await sockets.close();
      await store?.close();
      throw e;
    }
  }

  // ---- run-time operations (input messages) ---------------------------------------------------

  private needPool(): AddressPool {
    if (!this.pool) throw new Error('reservations and leases exist only in full mode');
    return this.pool;
  }

  addReservation(r: Reservation): Reservation[] {
    const pool = this.needPool();
    const mac = normalizeMac(r.mac);
    const rest = pool.reservations().filter((x) => x.mac !== mac);
    pool.setReservations([...rest, { ...r, mac }]);
    return pool.reservations();
  }

  removeReservation(mac: string): Reservation[] {
    const pool = this.needPool();
    const norm = normalizeMac(mac);
    pool.setReservations(pool.reservations().filter((x) => x.mac !== norm));
    return pool.reservations();
  }

  reservations(): Reservation[] {
    return this.needPool().reservations();
  }

  setBootOverride(mac: string, action: BootAction | null): void {
    this.rules.setOverride(mac, action);
  }

  leases(): LeaseRecord[] {
    const now = Date.now();
    return this.needPool()
      .activeLeases(now)
      .sort((a, b) => ipToInt(a.ip) - ipToInt(b.ip));
  }

  /** Stops answering, waits for pending lease writes, closes sockets and the lease log. */
  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await this.loop.close();
    await this.store?.close();
  }
}
