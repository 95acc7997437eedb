/**
 * Address allocation for full mode: subnets with a dynamic range, static reservations, offers held
 * briefly, declined addresses in quarantine, and the lease state (shared with the lease store, so
 * what is allocated is exactly what is persisted).
 *
 * Allocation order for a client (RFC 2131 §4.3.1): its reservation; its current or previous
 * address; the address it is being offered; the address it asks for, if free; then the next
 * never-used address after a rotating cursor, and only then an expired one of someone else.
 *
 * A reserved address is its owner's only while nobody else holds an unexpired lease on it (the
 * reservation was added at run time) and it is not in decline quarantine; until then the owner is
 * served from the dynamic range like any client, as dnsmasq does, and moves to its reserved
 * address once that is free (its renewal of the other address is then refused).
 */
import type { LeaseRecord, LeaseSnapshot } from './lease-store';
import { intToIp, ipToInt, isIpv4, normalizeMac, prefixToMask, sameSubnet } from './ip';

export interface SubnetConfig {
  /** Network in CIDR form, e.g. 192.168.0.0/24 (the host part is ignored). */
  network: string;
  rangeStart: string;
  rangeEnd: string;
  router?: string[];
  dns?: string[];
  domain?: string;
  /** Seconds. */
  leaseTime?: number;
}

export interface Reservation {
  mac: string;
  ip: string;
  hostname?: string;
}

export class Subnet {
  readonly network: number;
  readonly mask: number;
  readonly prefix: number;
  readonly start: number;
  readonly end: number;
  readonly broadcast: number;

  constructor(readonly config: SubnetConfig) {
    const [addr, pfx] = config.network.split('/');
    this.prefix = Number(pfx);
    this.mask = prefixToMask(this.prefix);
    this.network = (ipToInt(addr ?? '') & this.mask) >>> 0;
    this.broadcast = (this.network | ~this.mask) >>> 0;
    this.start = ipToInt(config.rangeStart);
    this.end = ipToInt(config.rangeEnd);
    if (this.start > this.end) throw new Error(`pool ${config.rangeStart}-${config.rangeEnd}: start is after end`);
    if (!this.contains(this.start) || !this.contains(this.end)) {
      throw new Error(`pool ${config.rangeStart}-${config.rangeEnd} is not inside ${config.network}`);
    }
    for (const ip of [...(config.router ?? []), ...(config.dns ?? [])]) {
      if (!isIpv4(ip)) throw new Error(`${JSON.stringify(ip)} is not an IPv4 address`);
    }
  }

  contains(ip: number): boolean {
    return sameSubnet(ip, this.network, this.mask);
  }

  inRange(ip: number): boolean {
    return ip >= this.start && ip <= this.end && ip !== this.network && ip !== this.broadcast;
  }
}

interface Offer {
  key: string;
  ip: number;
  until: number;
}

export interface PoolOptions {
  /** Our own addresses: never handed out. */
  serverIps: string[];
  offerHoldMs?: number;
  declineMs?: number;
}

export class AddressPool {
  readonly subnets: Subnet[];
  private readonly byKey = new Map<string, LeaseRecord>();
  private readonly offersByIp = new Map<number, Offer>();
  private readonly offersByKey = new Map<string, Offer>();
  private reservationsByMac = new Map<string, Reservation & { ipInt: number }>();
  private reservedIps = new Map<number, string>();
  private readonly cursor: number[];
  private readonly serverIps: Set<number>;
  readonly offerHoldMs: number;
  readonly declineMs: number;

  constructor(
    subnets: SubnetConfig[],
    reservations: Reservation[],
    readonly state: LeaseSnapshot,
    opts: PoolOptions,
  ) {
    if (!subnets.length) throw new Error('full mode needs an address pool');
    this.subnets = subnets.map((s) => new Subnet(s));
    this.cursor = this.subnets.map((s) => s.start);
    this.serverIps = new Set(opts.serverIps.map(ipToInt));
    this.offerHoldMs = opts.offerHoldMs ?? 60_000;
    this.declineMs = opts.declineMs ?? 3600_000;
    for (const l of state.leases.values()) {
      const prev = this.byKey.get(l.key);
      if (!prev || prev.expires < l.expires) this.byKey.set(l.key, l);
    }
    this.setReservations(reservations);
  }

  setReservations(list: Reservation[]): void {
    const byMac = new Map<string, Reservation & { ipInt: number }>();
    const ips = new Map<number, string>();
    for (const r of list) {
      const mac = normalizeMac(r.mac);
      if (mac.split(':').length !== 6) throw new Error(`reservation: ${JSON.stringify(r.mac)} is not a MAC address`);
      const ipInt = ipToInt(r.ip);
      if (!this.subnets.some((s) => s.contains(ipInt))) throw new Error(`reservation ${r.ip} is in none of the pools' subnets`);
      if (ips.has(ipInt) && ips.get(ipInt) !== mac) throw new Error(`${r.ip} is reserved twice`);
      byMac.set(mac, { ...r, mac, ipInt });
      ips.set(ipInt, mac);
    }
    this.reservationsByMac = byMac;
    this.reservedIps = ips;
  }

  reservations(): Reservation[] {
    return [...this.reservationsByMac.values()].map(({ mac, ip, hostname }) => ({ mac, ip, ...(hostname ? { hostname } : {}) }));
  }

  reservationFor(mac: string): Reservation | null {
    return this.reservationsByMac.get(mac) ?? null;
  }

  /**
   * The subnet serving a request (RFC 2131 §4.3.1): the relay's (giaddr); without a relay, the one
   * holding ciaddr (a RENEWING or INFORMing client unicasts straight to us, also from behind a
   * relay); else the local one (the first).
   */
  subnetFor(giaddr: string, ciaddr = '0.0.0.0'): Subnet | null {
    if (giaddr === '0.0.0.0') {
      const c = ciaddr === '0.0.0.0' ? undefined : this.subnets.find((s) => s.contains(ipToInt(ciaddr)));
      return c ?? this.subnets[0]!;
    }
    const g = ipToInt(giaddr);
    return this.subnets.find((s) => s.contains(g)) ?? null;
  }

  leaseOf(key: string): LeaseRecord | null {
    return this.byKey.get(key) ?? null;
  }

  /** Called after a lease record for `ip` is applied to the state, to keep the per-client index. */
  noteLease(ip: string): void {
    const l = this.state.leases.get(ip);
    if (!l) return;
    this.byKey.set(l.key, l);
    const o = this.offersByKey.get(l.key);
    if (o) this.dropOffer(o);
  }

  /** The client's address was declined: it no longer points at it. */
  forgetLease(key: string): void {
    this.byKey.delete(key);
    this.cancelOffer(key);
  }

  /**
   * May `key`/`mac` have `ip` in `subnet` now? Not one of ours; its own reservation, or nobody
   * else's; in the dynamic range, unclaimed, and not on offer to another client.
   */
  usableBy(ip: number, subnet: Subnet, key: string, mac: string, now: number): boolean {
    if (!subnet.contains(ip) || this.serverIps.has(ip)) return false;
    const res = this.reservationsByMac.get(mac);
    if (res && subnet.contains(res.ipInt)) {
      if (res.ipInt === ip) return this.unclaimed(ip, key, now);
      // While its reserved address is taken, the client is served from the pool below.
      if (this.unclaimed(res.ipInt, key, now)) return false;
    }
    const owner = this.reservedIps.get(ip);
    if (owner !== undefined) return owner === mac && this.unclaimed(ip, key, now);
    if (!subnet.inRange(ip)) return false;
    if (!this.unclaimed(ip, key, now)) return false;
    const o = this.offersByIp.get(ip);
    if (o && o.key !== key && o.until > now) return false;
    return true;
  }

  /** Not in decline quarantine, and no other client holds an unexpired lease on it. */
  private unclaimed(ip: number, key: string, now: number): boolean {
    const until = this.state.declined.get(intToIp(ip));
    if (until !== undefined && until > now) return false;
    const l = this.state.leases.get(intToIp(ip));
    return !(l && l.key !== key && l.expires > now);
  }

  /** Picks an address for a DISCOVER and holds it for this client. Null when the pool is full. */
  offer(subnet: Subnet, key: string, mac: string, requested: string | null, now: number): string | null {
    const candidates: number[] = [];
    const res = this.reservationsByMac.get(mac);
    if (res && subnet.contains(res.ipInt)) candidates.push(res.ipInt);
    const lease = this.byKey.get(key);
    if (lease) candidates.push(ipToInt(lease.ip));
    const held = this.offersByKey.get(key);
    if (held && held.until > now) candidates.push(held.ip);
    if (requested && isIpv4(requested)) candidates.push(ipToInt(requested));
    let ip = candidates.find((c) => this.usableBy(c, subnet, key, mac, now));
    ip ??= this.scan(subnet, key, mac, now);
    if (ip === undefined) return null;
    this.hold(key, ip, now);
    return intToIp(ip);
  }

  private scan(subnet: Subnet, key: string, mac: string, now: number): number | undefined {
    const idx = this.subnets.indexOf(subnet);
    const size = subnet.end - subnet.start + 1;
    // Pass 1: addresses nobody ever had (keeps old addresses for returning clients).
    // Pass 2: anything usable, e.g. another client's long-expired lease.
    for (const fresh of [true, false]) {
      let ip = this.cursor[idx]!;
      for (let n = 0; n < size; n++, ip = ip >= subnet.end ? subnet.start : ip + 1) {
        if (fresh && this.state.leases.has(intToIp(ip))) continue;
        if (this.usableBy(ip, subnet, key, mac, now)) {
          this.cursor[idx] = ip >= subnet.end ? subnet.start : ip + 1;
          return ip;
        }
      }
    }
    return undefined;
  }

  private hold(key: string, ip: number, now: number): void {
    const prev = this.offersByKey.get(key);
    if (prev) this.dropOffer(prev);
    const o = { key, ip, until: now + this.offerHoldMs };
    this.offersByIp.set(ip, o);
    this.offersByKey.set(key, o);
  }

  private dropOffer(o: Offer): void {
    if (this.offersByIp.get(o.ip) === o) this.offersByIp.delete(o.ip);
    if (this.offersByKey.get(o.key) === o) this.offersByKey.delete(o.key);
  }

  /** The client chose another server: its held offer is released. */
  cancelOffer(key: string): void {
    const o = this.offersByKey.get(key);
    if (o) this.dropOffer(o);
  }

  /** Forgets expired offers (called periodically so memory stays bounded). */
  sweep(now: number): void {
    for (const o of this.offersByKey.values()) if (o.until <= now) this.dropOffer(o);
  }

  /** Hostname for a reply: the reservation's, else what the client said. */
  hostnameFor(mac: string, clientName: string | null): string | null {
    return this.reservationsByMac.get(mac)?.hostname || clientName;
  }

  activeLeases(now: number): LeaseRecord[] {
    return [...this.state.leases.values()].filter((l) => l.expires > now);
  }
}
