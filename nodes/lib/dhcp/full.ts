/**
 * Full DHCP server (RFC 2131 §4.3): addresses, network options and boot rules.
 *
 * REQUEST states (§4.3.2), told apart by option 54 / option 50 / ciaddr:
 *  - SELECTING (54 set): for another server → forget our offer, stay silent; for us → ACK the
 *    address we offered, NAK anything else.
 *  - INIT-REBOOT (no 54, 50 set, ciaddr 0): ACK our own record of the client; a wrong network or
 *    an address that is someone else's → NAK, but only when authoritative, else silence.
 *  - RENEWING / REBINDING (no 54, ciaddr set): extend the client's lease; otherwise as INIT-REBOOT.
 * An ACK that grants or extends a lease is sent only after the lease store made it durable.
 * DECLINE quarantines the address, RELEASE frees it, INFORM gets options without a lease.
 */
import { writeBoot } from './boot-options';
import type { BootRules } from './boot-rules';
import type { ClientInfo } from './client';
import type { DhcpPacket } from './codec';
import { makeEvent, sentPxelinuxOptions, type DhcpEvent } from './events';
import { intToIp, ipToInt } from './ip';
import type { LogRecord } from './lease-store';
import { getMessageType, getRequestedIp, getServerId, ips, MessageType, messageTypeName, Opt, str, u32 } from './options';
import type { AddressPool, Subnet } from './address-pool';
import { baseReply, finishReply, NO_REPLY, type HandleResult, type Responder } from './reply';

/** Where leases go: the LeaseStore, or a MemoryLeaseLog in tests. append() applies to the pool's state. */
export interface LeaseLog {
  append(rec: LogRecord): Promise<void>;
}

export interface FullConfig {
  serverIp: string;
  pool: AddressPool;
  log: LeaseLog;
  rules: BootRules;
  /** Seconds, when a subnet does not say. */
  leaseTime: number;
  /** NAK requests for addresses we do not know or that are wrong for the segment. */
  authoritative: boolean;
  now?: () => number;
}

const ZERO = '0.0.0.0';

export class FullResponder implements Responder {
  private readonly now: () => number;
  constructor(private readonly cfg: FullConfig) {
    this.now = cfg.now ?? Date.now;
  }

  async handle(req: DhcpPacket, c: ClientInfo, localPort: number): Promise<HandleResult> {
    if (localPort !== 67) return NO_REPLY([]);
    const type = getMessageType(req.options);
    const name = messageTypeName(type);
    if (!name) return NO_REPLY([]);
    const subnet = this.cfg.pool.subnetFor(req.giaddr, req.ciaddr);
    const requested = getRequestedIp(req.options);
    const received = makeEvent(name, c, req.xid, req.giaddr, { ip: requested ?? (req.ciaddr !== ZERO ? req.ciaddr : null) });
    if (!subnet) return NO_REPLY([{ ...received, reason: `no pool for relay ${req.giaddr}` }]);
    switch (type) {
      case MessageType.DISCOVER:
        return this.discover(req, c, subnet, requested, received);
      case MessageType.REQUEST:
        return this.request(req, c, subnet, requested, received);
      case MessageType.DECLINE:
        return this.decline(req, c, requested, received);
      case MessageType.RELEASE:
        return this.release(req, c, received);
      case MessageType.INFORM:
        return this.inform(req, c, subnet, received);
      default:
        return NO_REPLY([]);
    }
  }

  private leaseSeconds(subnet: Subnet): number {
    return subnet.config.leaseTime || this.cfg.leaseTime;
  }

  /** Network options and boot information for an OFFER/ACK (and INFORM without lease times). */
  private fill(reply: DhcpPacket, c: ClientInfo, subnet: Subnet, withLease: boolean): { bootFile: string | null; rule: string | null } {
    const o = reply.options;
    const sc = subnet.config;
    if (withLease) {
      const t = this.leaseSeconds(subnet);
      o.set(Opt.LEASE_TIME, u32(t));
      o.set(Opt.RENEWAL_TIME, u32(Math.floor(t / 2)));
      o.set(Opt.REBINDING_TIME, u32(Math.floor((t * 7) / 8)));
    }
    o.set(Opt.SUBNET_MASK, u32(subnet.mask));
    o.set(Opt.BROADCAST, u32(subnet.broadcast));
    if (sc.router?.length) o.set(Opt.ROUTER, ips(sc.router));
    if (sc.dns?.length) o.set(Opt.DNS, ips(sc.dns));
    if (sc.domain) o.set(Opt.DOMAIN_NAME, str(sc.domain));
    const host = this.cfg.pool.hostnameFor(c.mac, null);
    if (host) o.set(Opt.HOSTNAME, str(host));
    const decision = this.cfg.rules.decide(c, this.cfg.serverIp);
    if (!decision) return { bootFile: null, rule: null };
    return { bootFile: writeBoot(reply, decision, c.isPxe), rule: decision.source };
  }

  private reply(req: DhcpPacket, c: ClientInfo, type: number, subnet: Subnet, yiaddr: string, received: DhcpEvent, withLease = true): HandleResult {
    const reply = baseReply(req, type, this.cfg.serverIp, c.isPxe);
    reply.yiaddr = yiaddr;
    if (req.ciaddr !== ZERO && type === MessageType.ACK) reply.ciaddr = req.ciaddr;
    const { bootFile, rule } = this.fill(reply, c, subnet, withLease);
    finishReply(req, reply);
    const sent = makeEvent(type === MessageType.OFFER ? 'offer' : 'ack', c, req.xid, req.giaddr, {
      ip: yiaddr === ZERO ? received.ip : yiaddr,
      hostname: this.cfg.pool.hostnameFor(c.mac, c.hostname),
      bootFile,
      bootRule: rule,
      ...sentPxelinuxOptions(reply.options),
    });
    return { events: [received, sent], reply, replyType: type };
  }

  private nak(req: DhcpPacket, c: ClientInfo, received: DhcpEvent, reason: string): HandleResult {
    const reply = baseReply(req, MessageType.NAK, this.cfg.serverIp, false);
    // RFC 2131 table 3: a NAK carries no addresses of the client's, no file, no lease options.
    reply.flags = req.flags;
    finishReply(req, reply);
    const sent = makeEvent('nak', c, req.xid, req.giaddr, { ip: received.ip, reason });
    return { events: [received, sent], reply, replyType: MessageType.NAK };
  }

  /** NAK when authoritative, silence otherwise (RFC 2131 §4.3.2 and §3.1 note on authority). */
  private refuse(req: DhcpPacket, c: ClientInfo, received: DhcpEvent, reason: string): HandleResult {
    if (this.cfg.authoritative) return this.nak(req, c, received, reason);
    return NO_REPLY([{ ...received, reason: `${reason} (not authoritative: silent)` }]);
  }

  private discover(req: DhcpPacket, c: ClientInfo, subnet: Subnet, requested: string | null, received: DhcpEvent): HandleResult {
    const ip = this.cfg.pool.offer(subnet, c.key, c.mac, requested, this.now());
    if (!ip) return NO_REPLY([{ ...received, reason: 'address pool exhausted' }]);
    return this.reply(req, c, MessageType.OFFER, subnet, ip, received);
  }

  /**
   * Grants/extends the lease durably, then builds the ACK. A client that had another address
   * (it moved to another subnet, its reservation became free, …) gives that one up in the same
   * write, instead of holding it until it expires.
   */
  private async commit(req: DhcpPacket, c: ClientInfo, subnet: Subnet, ip: string, received: DhcpEvent): Promise<HandleResult> {
    const now = this.now();
    const expires = now + this.leaseSeconds(subnet) * 1000;
    const prev = this.cfg.pool.leaseOf(c.key);
    const rec = { op: 'lease' as const, ip, key: c.key, mac: c.mac, hostname: this.cfg.pool.hostnameFor(c.mac, c.hostname), expires };
    // The pool sees the lease before the write so a concurrent DISCOVER cannot pick the address.
    const done = [this.cfg.log.append(rec)];
    this.cfg.pool.noteLease(ip);
    if (prev && prev.ip !== ip && prev.expires > now) done.push(this.cfg.log.append({ op: 'free', ip: prev.ip, key: c.key }));
    await Promise.all(done);
    return this.reply(req, c, MessageType.ACK, subnet, ip, received);
  }

  private async request(req: DhcpPacket, c: ClientInfo, subnet: Subnet, requested: string | null, received: DhcpEvent): Promise<HandleResult> {
    const pool = this.cfg.pool;
    const now = this.now();
    const sid = getServerId(req.options);
    if (sid !== null) {
      // SELECTING.
      if (sid !== this.cfg.serverIp) {
        pool.cancelOffer(c.key);
        return NO_REPLY([{ ...received, reason: `client chose server ${sid}` }]);
      }
      if (!requested) return NO_REPLY([{ ...received, reason: 'SELECTING request without requested address' }]);
      if (!pool.usableBy(ipToInt(requested), subnet, c.key, c.mac, now)) return this.nak(req, c, received, `${requested} is not available`);
      return this.commit(req, c, subnet, requested, received);
    }
    const lease = pool.leaseOf(c.key);
    const ip = req.ciaddr !== ZERO ? req.ciaddr : requested;
    if (!ip) return NO_REPLY([{ ...received, reason: 'request without address' }]);
    const ipInt = ipToInt(ip);
    if (!subnet.contains(ipInt)) return this.refuse(req, c, received, `${ip} is not on ${intToIp(subnet.network)}/${subnet.prefix}`);
    const mine = !!lease && lease.ip === ip && pool.usableBy(ipInt, subnet, c.key, c.mac, now);
    if (mine) return this.commit(req, c, subnet, ip, received);
    if (lease && lease.ip !== ip) return this.refuse(req, c, received, `client's lease is ${lease.ip}, not ${ip}`);
    // No record of this client (e.g. the lease file was lost): RFC 2131 wants silence, but an
    // authoritative server may hand out the address if it is genuinely free, else NAK.
    if (!this.cfg.authoritative) return NO_REPLY([{ ...received, reason: 'no record of this client (not authoritative: silent)' }]);
    if (pool.usableBy(ipInt, subnet, c.key, c.mac, now)) return this.commit(req, c, subnet, ip, received);
    return this.nak(req, c, received, `${ip} is not available`);
  }

  private async decline(req: DhcpPacket, c: ClientInfo, requested: string | null, received: DhcpEvent): Promise<HandleResult> {
    const sid = getServerId(req.options);
    if (sid !== this.cfg.serverIp || !requested) return NO_REPLY([{ ...received, reason: 'not for this server' }]);
    const lease = this.cfg.pool.leaseOf(c.key);
    if (!lease || lease.ip !== requested) return NO_REPLY([{ ...received, reason: 'no such lease' }]);
    // Another host answers on this address: keep it out of the pool for a while.
    const done = this.cfg.log.append({ op: 'decline', ip: requested, until: this.now() + this.cfg.pool.declineMs });
    this.cfg.pool.forgetLease(c.key);
    await done;
    return NO_REPLY([{ ...received, reason: 'address quarantined' }]);
  }

  private async release(req: DhcpPacket, c: ClientInfo, received: DhcpEvent): Promise<HandleResult> {
    const sid = getServerId(req.options);
    if (sid !== this.cfg.serverIp) return NO_REPLY([{ ...received, reason: 'not for this server' }]);
    const lease = this.cfg.pool.leaseOf(c.key);
    if (!lease || lease.ip !== req.ciaddr) return NO_REPLY([{ ...received, reason: 'no such lease' }]);
    await this.cfg.log.append({ op: 'free', ip: lease.ip, key: c.key });
    return NO_REPLY([received]);
  }

  private inform(req: DhcpPacket, c: ClientInfo, subnet: Subnet, received: DhcpEvent): HandleResult {
    if (req.ciaddr === ZERO) return NO_REPLY([{ ...received, reason: 'INFORM without ciaddr' }]);
    return this.reply(req, c, MessageType.ACK, subnet, ZERO, received, false);
  }
}
