import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BootRules } from '../../nodes/lib/dhcp/boot-rules';
import { FLAG_BROADCAST } from '../../nodes/lib/dhcp/codec';
import type { DhcpEvent } from '../../nodes/lib/dhcp/events';
import { FullResponder, type LeaseLog } from '../../nodes/lib/dhcp/full';
import { MemoryLeaseLog, type LogRecord } from '../../nodes/lib/dhcp/lease-store';
import { getIp, getIps, getLeaseTime, getMessageType, getString, MessageType as T } from '../../nodes/lib/dhcp/options';
import { AddressPool, type Reservation } from '../../nodes/lib/dhcp/address-pool';
import { DhcpMessageLoop } from '../../nodes/lib/dhcp/message-loop';
import { FakeTransport, request, tick } from './dhcp-helpers';

const SERVER = '10.40.0.1';

function setup(opts: { authoritative?: boolean; reservations?: Reservation[]; log?: LeaseLog & { state: MemoryLeaseLog['state'] }; end?: string } = {}) {
  const log = opts.log ?? new MemoryLeaseLog();
  const pool = new AddressPool(
    [
      { network: '10.40.0.0/24', rangeStart: '10.40.0.100', rangeEnd: opts.end ?? '10.40.0.150', router: ['10.40.0.1'], dns: ['10.40.0.1', '1.1.1.1'], domain: 'lab.test' },
      { network: '10.41.0.0/24', rangeStart: '10.41.0.10', rangeEnd: '10.41.0.20', router: ['10.41.0.1'] },
    ],
    opts.reservations ?? [],
    log.state,
    { serverIps: [SERVER] },
  );
  const rules = new BootRules([{ match: {}, bootFile: 'pxelinux.0', configFile: 'boot/syslinux/archiso.cfg', pathPrefix: '/arch/' }]);
  const responder = new FullResponder({ serverIp: SERVER, pool, log, rules, leaseTime: 600, authoritative: opts.authoritative ?? true });
  const t = new FakeTransport();
  const server = new DhcpMessageLoop(t, responder);
  const events: DhcpEvent[] = [];
  server.on('event', (e) => events.push(e));
  server.on('error', (e) => assert.fail(e));
  return { t, server, pool, log, events };
}

async function dora(s: ReturnType<typeof setup>, mac: string, xid = 1): Promise<string> {
  const n = s.t.sent.length;
  s.t.deliver({ buf: request({ type: T.DISCOVER, mac, xid }) });
  const offer = (await s.t.waitSent(n + 1))[n]!;
  assert.equal(getMessageType(offer.packet.options), T.OFFER);
  s.t.deliver({ buf: request({ type: T.REQUEST, mac, xid, requested: offer.packet.yiaddr, serverId: SERVER }) });
  const ack = (await s.t.waitSent(n + 2))[n + 1]!;
  assert.equal(getMessageType(ack.packet.options), T.ACK, `ack for ${mac}`);
  return ack.packet.yiaddr;
}

describe('DHCP full mode', () => {
  it('DORA: offers from the pool with network and boot options, ACKs after the lease is durable', async () => {
    const s = setup();
    s.t.deliver({ buf: request({ type: T.DISCOVER, mac: '52:54:00:00:00:01', hostname: 'alpha' }) });
    const [offer] = await s.t.waitSent(1);
    const o = offer!.packet;
    assert.equal(o.yiaddr, '10.40.0.100');
    assert.equal(o.siaddr, SERVER);
    assert.equal(o.file, 'pxelinux.0');
    assert.deepEqual([offer!.address, offer!.port], ['255.255.255.255', 68]);
    assert.equal(getIp(o.options, 54), SERVER);
    assert.equal(getIp(o.options, 1), '255.255.255.0');
    assert.deepEqual(getIps(o.options, 3), ['10.40.0.1']);
    assert.deepEqual(getIps(o.options, 6), ['10.40.0.1', '1.1.1.1']);
    assert.equal(getString(o.options, 15), 'lab.test');
    assert.equal(getLeaseTime(o.options), 600);
    assert.equal(getString(o.options, 209), 'boot/syslinux/archiso.cfg');
    assert.equal(getString(o.options, 210), '/arch/');
    assert.equal(s.log.state.leases.size, 0, 'an offer is not a lease');
    await new Promise((r) => setImmediate(r));
    const offered = s.events.find((e) => e.type === 'offer')!;
    assert.deepEqual([offered.bootFile, offered.configFile, offered.pathPrefix, offered.hostname], ['pxelinux.0', 'boot/syslinux/archiso.cfg', '/arch/', 'alpha']);

    // Hold the lease write: the ACK must wait for it.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const mem = s.log as MemoryLeaseLog;
    const orig = mem.append.bind(mem);
    mem.append = async (rec: LogRecord) => {
      await orig(rec);
      await gate;
    };
    s.t.deliver({ buf: request({ type: T.REQUEST, requested: '10.40.0.100', serverId: SERVER, hostname: 'alpha' }) });
    await tick(50);
    assert.equal(s.t.sent.length, 1, 'no ACK before the lease is durable');
    release();
    const ack = (await s.t.waitSent(2))[1]!.packet;
    assert.equal(getMessageType(ack.options), T.ACK);
    assert.equal(ack.yiaddr, '10.40.0.100');
    assert.equal(s.log.state.leases.get('10.40.0.100')!.hostname, 'alpha');
    await tick();
    assert.deepEqual(
      s.events.map((e) => e.type),
      ['discover', 'offer', 'request', 'ack'],
    );
    assert.equal(s.events[3]!.bootFile, 'pxelinux.0');
    assert.equal(s.events[3]!.hostname, 'alpha');
  });

  it('gives distinct addresses to many concurrent clients and the same one back to a returning client', async () => {
    const s = setup();
    const macs = Array.from({ length: 40 }, (_, i) => `52:54:00:00:01:${i.toString(16).padStart(2, '0')}`);
    for (const [i, mac] of macs.entries()) s.t.deliver({ buf: request({ type: T.DISCOVER, mac, xid: i }) });
    const offers = await s.t.waitSent(40);
    assert.equal(new Set(offers.map((o) => o.packet.yiaddr)).size, 40);
    const again = await dora(s, macs[5]!, 99);
    assert.equal(again, offers.find((o) => o.packet.xid === 5)!.packet.yiaddr);
  });

  it('ignores a REQUEST naming another server and frees the offered address', async () => {
    const s = setup({ end: '10.40.0.100' });
    s.t.deliver({ buf: request({ type: T.DISCOVER, mac: '52:54:00:00:00:01' }) });
    await s.t.waitSent(1);
    s.t.deliver({ buf: request({ type: T.DISCOVER, mac: '52:54:00:00:00:02' }) });
    await tick();
    assert.equal(s.t.sent.length, 1, 'single address held for the first client');
    s.t.deliver({ buf: request({ type: T.REQUEST, mac: '52:54:00:00:00:01', requested: '10.40.0.100', serverId: '10.40.0.254' }) });
    await tick();
    assert.equal(s.t.sent.length, 1, 'no answer to a request for another server');
    assert.match(s.events.at(-1)!.reason!, /chose server 10.40.0.254/);
    s.t.deliver({ buf: request({ type: T.DISCOVER, mac: '52:54:00:00:00:02' }) });
    assert.equal((await s.t.waitSent(2))[1]!.packet.yiaddr, '10.40.0.100');
  });

  it('INIT-REBOOT: ACKs the same address, NAKs a wrong one only when authoritative', async () => {
    for (const authoritative of [true, false]) {
      const s = setup({ authoritative });
      const ip = await dora(s, '52:54:00:00:00:01');
      s.t.deliver({ buf: request({ type: T.REQUEST, requested: ip, xid: 7 }) });
      const ack = (await s.t.waitSent(3))[2]!;
      assert.equal(getMessageType(ack.packet.options), T.ACK);
      assert.equal(ack.packet.yiaddr, ip);
      s.t.deliver({ buf: request({ type: T.REQUEST, requested: '10.40.0.140', xid: 8 }) });
      s.t.deliver({ buf: request({ type: T.REQUEST, requested: '192.168.9.9', xid: 9, mac: '52:54:00:00:00:09' }) });
      await tick();
      if (authoritative) {
        const naks = (await s.t.waitSent(5)).slice(3);
        assert.deepEqual(naks.map((n) => getMessageType(n.packet.options)), [T.NAK, T.NAK]);
        assert.deepEqual(naks.map((n) => n.address), ['255.255.255.255', '255.255.255.255']);
        assert.equal(naks[0]!.packet.yiaddr, '0.0.0.0');
      } else assert.equal(s.t.sent.length, 3, 'non-authoritative: silent');
    }
  });

  it('RENEWING: extends the lease and answers unicast to ciaddr; unknown client is NAKed or left alone', async () => {
    const s = setup();
    const ip = await dora(s, '52:54:00:00:00:01');
    const before = s.log.state.leases.get(ip)!.expires;
    await tick(5);
    s.t.deliver({ buf: request({ type: T.REQUEST, ciaddr: ip, flags: 0 }), address: ip });
    const ack = (await s.t.waitSent(3))[2]!;
    assert.equal(getMessageType(ack.packet.options), T.ACK);
    assert.deepEqual([ack.address, ack.port], [ip, 68]);
    assert.equal(ack.packet.ciaddr, ip);
    assert.ok(s.log.state.leases.get(ip)!.expires > before);
    // Another client claims that address: it is taken.
    s.t.deliver({ buf: request({ type: T.REQUEST, ciaddr: ip, mac: '52:54:00:00:00:02', flags: 0 }), address: ip });
    const nak = (await s.t.waitSent(4))[3]!;
    assert.equal(getMessageType(nak.packet.options), T.NAK);
  });

  it('RELEASE frees, DECLINE quarantines, INFORM is answered without a lease', async () => {
    const s = setup({ end: '10.40.0.101' });
    const a = await dora(s, '52:54:00:00:00:01');
    s.t.deliver({ buf: request({ type: T.RELEASE, ciaddr: a, serverId: SERVER, flags: 0 }) });
    await tick();
    assert.ok(s.log.state.leases.get(a)!.expires <= Date.now());
    assert.equal(s.events.at(-1)!.type, 'release');

    const b = await dora(s, '52:54:00:00:00:02');
    assert.notEqual(b, a, 'a fresh address before reusing a released one');
    s.t.deliver({ buf: request({ type: T.DECLINE, mac: '52:54:00:00:00:02', requested: b, serverId: SERVER }) });
    await tick();
    assert.ok(s.log.state.declined.has(b));
    // Client 2 comes back: the declined address is not offered again; it gets the released one.
    s.t.deliver({ buf: request({ type: T.DISCOVER, mac: '52:54:00:00:00:02', xid: 5 }) });
    const offer = (await s.t.waitSent(5))[4]!;
    assert.equal(offer.packet.yiaddr, a);

    s.t.deliver({ buf: request({ type: T.INFORM, mac: '52:54:00:00:00:03', ciaddr: '10.40.0.77', flags: 0 }) });
    const inf = (await s.t.waitSent(6))[5]!;
    assert.equal(getMessageType(inf.packet.options), T.ACK);
    assert.equal(inf.packet.yiaddr, '0.0.0.0');
    assert.equal(getLeaseTime(inf.packet.options), null);
    assert.deepEqual([inf.address, inf.port], ['10.40.0.77', 68]);
    assert.deepEqual(getIps(inf.packet.options, 3), ['10.40.0.1']);
  });

  it('relay: pool by the relay subnet, reply to giaddr:67, option 82 echoed; unknown relay ignored', async () => {
    const s = setup();
    const rai = Buffer.from([1, 4, 0, 0, 0, 7]);
    s.t.deliver({ buf: request({ type: T.DISCOVER, giaddr: '10.41.0.1', relayInfo: rai, flags: 0 }), address: '10.41.0.1', port: 67 });
    const [offer] = await s.t.waitSent(1);
    assert.equal(offer!.packet.yiaddr, '10.41.0.10');
    assert.deepEqual([offer!.address, offer!.port], ['10.41.0.1', 67]);
    assert.equal(offer!.packet.giaddr, '10.41.0.1');
    assert.deepEqual(offer!.packet.options.get(82), rai);
    assert.deepEqual(getIps(offer!.packet.options, 3), ['10.41.0.1']);
    // A NAK through a relay: broadcast bit set so the relay broadcasts it.
    s.t.deliver({ buf: request({ type: T.REQUEST, giaddr: '10.41.0.1', requested: '10.40.0.100', flags: 0, xid: 3 }), address: '10.41.0.1', port: 67 });
    const nak = (await s.t.waitSent(2))[1]!;
    assert.equal(getMessageType(nak.packet.options), T.NAK);
    assert.equal(nak.packet.flags & FLAG_BROADCAST, FLAG_BROADCAST);
    s.t.deliver({ buf: request({ type: T.DISCOVER, giaddr: '172.16.0.1' }), address: '172.16.0.1', port: 67 });
    await tick();
    assert.equal(s.t.sent.length, 2);
    assert.match(s.events.at(-1)!.reason!, /no pool/);
  });

  it('relay: a unicast renewal (giaddr 0, ciaddr set) and an INFORM are served from the subnet of ciaddr', async () => {
    const s = setup();
    const mac = '52:54:00:00:0a:01';
    s.t.deliver({ buf: request({ type: T.DISCOVER, mac, giaddr: '10.41.0.1', flags: 0 }), address: '10.41.0.1', port: 67 });
    const [offer] = await s.t.waitSent(1);
    const ip = offer!.packet.yiaddr;
    assert.equal(ip, '10.41.0.10');
    s.t.deliver({ buf: request({ type: T.REQUEST, mac, giaddr: '10.41.0.1', requested: ip, serverId: SERVER, flags: 0 }), address: '10.41.0.1', port: 67 });
    assert.equal(getMessageType((await s.t.waitSent(2))[1]!.packet.options), T.ACK);
    const before = s.log.state.leases.get(ip)!.expires;
    await tick(5);
    // T1: the client unicasts straight to us, no relay involved.
    s.t.deliver({ buf: request({ type: T.REQUEST, mac, ciaddr: ip, flags: 0, xid: 2 }), address: ip, port: 68 });
    const renew = (await s.t.waitSent(3))[2]!;
    assert.equal(getMessageType(renew.packet.options), T.ACK);
    assert.equal(renew.packet.yiaddr, ip);
    assert.deepEqual([renew.address, renew.port], [ip, 68]);
    assert.deepEqual(getIps(renew.packet.options, 3), ['10.41.0.1']);
    assert.ok(s.log.state.leases.get(ip)!.expires > before, 'lease extended');

    // INFORM from a statically addressed host behind the relay: its own subnet's options.
    s.t.deliver({ buf: request({ type: T.INFORM, mac: '52:54:00:00:0a:02', ciaddr: '10.41.0.77', flags: 0, xid: 3 }), address: '10.41.0.77', port: 68 });
    const inf = (await s.t.waitSent(4))[3]!;
    assert.equal(getMessageType(inf.packet.options), T.ACK);
    assert.equal(getIp(inf.packet.options, 1), '255.255.255.0');
    assert.deepEqual(getIps(inf.packet.options, 3), ['10.41.0.1']);
    assert.equal(getIp(inf.packet.options, 28), '10.41.0.255');

    // ciaddr in none of our subnets: the local one, as before (here: NAK, not on this network).
    s.t.deliver({ buf: request({ type: T.REQUEST, mac: '52:54:00:00:0a:03', ciaddr: '192.168.7.7', flags: 0, xid: 4 }), address: '192.168.7.7', port: 68 });
    const nak = (await s.t.waitSent(5))[4]!;
    assert.equal(getMessageType(nak.packet.options), T.NAK);
    await tick();
    assert.match(s.events.at(-1)!.reason!, /not on 10\.40\.0\.0\/24/);
  });

  it('a client ACKed a new address gives up its old lease at once, durably', async () => {
    const s = setup({ end: '10.40.0.101' });
    const a = '52:54:00:00:0f:01';
    assert.equal(await dora(s, a), '10.40.0.100');
    assert.equal(await dora(s, '52:54:00:00:0f:02', 2), '10.40.0.101');
    // A is moved behind the relay: it gets an address of that subnet.
    s.t.deliver({ buf: request({ type: T.DISCOVER, mac: a, giaddr: '10.41.0.1', flags: 0, xid: 3 }), address: '10.41.0.1', port: 67 });
    const offer = (await s.t.waitSent(5))[4]!;
    assert.equal(offer.packet.yiaddr, '10.41.0.10');
    s.t.deliver({ buf: request({ type: T.REQUEST, mac: a, giaddr: '10.41.0.1', requested: '10.41.0.10', serverId: SERVER, flags: 0, xid: 3 }), address: '10.41.0.1', port: 67 });
    assert.equal(getMessageType((await s.t.waitSent(6))[5]!.packet.options), T.ACK);
    // Its old address is released in the log, not held until it expires.
    const mem = s.log as MemoryLeaseLog;
    assert.deepEqual(mem.records.at(-1), { op: 'free', ip: '10.40.0.100', key: `hw:1:${a}` });
    assert.ok(s.log.state.leases.get('10.40.0.100')!.expires <= Date.now());
    assert.deepEqual(s.pool.activeLeases(Date.now()).map((l) => l.ip).sort(), ['10.40.0.101', '10.41.0.10']);
    // So a new client on the full local pool gets it.
    assert.equal(await dora(s, '52:54:00:00:0f:03', 4), '10.40.0.100');
  });

  it('reservations: the client gets its address and hostname, nobody else ever gets it', async () => {
    const s = setup({ end: '10.40.0.101', reservations: [{ mac: '52-54-00-00-00-aa', ip: '10.40.0.100', hostname: 'pi4' }] });
    const other = await dora(s, '52:54:00:00:00:01');
    assert.equal(other, '10.40.0.101');
    s.t.deliver({ buf: request({ type: T.DISCOVER, mac: '52:54:00:00:00:02', xid: 4 }) });
    await tick();
    assert.equal(s.t.sent.length, 2, 'pool exhausted: the reserved address is not given away');
    assert.equal(s.events.at(-1)!.reason, 'address pool exhausted');
    const mine = await dora(s, '52:54:00:00:00:aa', 5);
    assert.equal(mine, '10.40.0.100');
    assert.equal(getString(s.t.sent.at(-1)!.packet.options, 12), 'pi4');
    // The reserved client asking for another address is told no.
    s.t.deliver({ buf: request({ type: T.REQUEST, mac: '52:54:00:00:00:aa', requested: '10.40.0.101', xid: 6 }) });
    assert.equal(getMessageType((await s.t.waitSent(s.t.sent.length + 1)).at(-1)!.packet.options), T.NAK);
  });

  it('a reservation made while another client leases the address does not take it from that client', async () => {
    const s = setup({ end: '10.40.0.101' });
    const a = await dora(s, '52:54:00:00:0c:01');
    assert.equal(a, '10.40.0.100');
    // At run time (DhcpService.addReservation) .100 is reserved for B while A's lease runs.
    s.pool.setReservations([{ mac: '52:54:00:00:0c:02', ip: '10.40.0.100' }]);
    const b = '52:54:00:00:0c:02';
    // Asking for it outright is refused.
    s.t.deliver({ buf: request({ type: T.REQUEST, mac: b, requested: '10.40.0.100', serverId: SERVER, xid: 20 }) });
    s.t.deliver({ buf: request({ type: T.REQUEST, mac: b, requested: '10.40.0.100', xid: 21 }) });
    const naks = (await s.t.waitSent(4)).slice(2);
    assert.deepEqual(naks.map((n) => getMessageType(n.packet.options)), [T.NAK, T.NAK]);
    // Meanwhile B is served from the pool, as dnsmasq does.
    assert.equal(await dora(s, b, 22), '10.40.0.101');
    const owners = new Map(s.pool.activeLeases(Date.now()).map((l) => [l.ip, l.mac]));
    assert.equal(owners.get('10.40.0.100'), '52:54:00:00:0c:01', "A's lease is untouched");
    assert.equal(owners.get('10.40.0.101'), b);

    // With no other free address B gets nothing rather than A's address.
    const t = setup({ end: '10.40.0.100' });
    await dora(t, '52:54:00:00:0c:01');
    t.pool.setReservations([{ mac: b, ip: '10.40.0.100' }]);
    t.t.deliver({ buf: request({ type: T.DISCOVER, mac: b, xid: 30 }) });
    await tick();
    assert.equal(t.t.sent.length, 2);
    assert.equal(t.events.at(-1)!.reason, 'address pool exhausted');
  });

  it('a declined reserved address is quarantined for its owner too (no DECLINE/ACK loop)', async () => {
    const b = '52:54:00:00:0d:02';
    const s = setup({ end: '10.40.0.101', reservations: [{ mac: b, ip: '10.40.0.100' }] });
    assert.equal(await dora(s, b), '10.40.0.100');
    // Another host answers on .100: B declines it.
    s.t.deliver({ buf: request({ type: T.DECLINE, mac: b, requested: '10.40.0.100', serverId: SERVER }) });
    await tick();
    assert.ok(s.log.state.declined.has('10.40.0.100'));
    // B is not handed .100 again while it is quarantined.
    const n = s.t.sent.length;
    s.t.deliver({ buf: request({ type: T.DISCOVER, mac: b, xid: 40 }) });
    const offer = (await s.t.waitSent(n + 1))[n]!;
    assert.notEqual(offer.packet.yiaddr, '10.40.0.100');
    s.t.deliver({ buf: request({ type: T.REQUEST, mac: b, requested: '10.40.0.100', xid: 41 }) });
    const nak = (await s.t.waitSent(n + 2))[n + 1]!;
    assert.equal(getMessageType(nak.packet.options), T.NAK);
    assert.ok(!s.log.state.leases.has('10.40.0.100'), 'no new lease on the quarantined address');
  });

  it('drops hostile packets without crashing and keeps serving', async () => {
    const s = setup();
    const malformed: Error[] = [];
    s.server.on('malformed', (e) => malformed.push(e));
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const base = request({ type: T.DISCOVER, vendorClass: 'PXEClient:Arch:00000', arch: 0 });
    for (let k = 0; k < 3000; k++) {
      const b = Buffer.from(base.subarray(0, 200 + rnd(base.length - 200)));
      for (let m = 0; m < 1 + rnd(6); m++) b[rnd(b.length)] = rnd(256);
      s.t.deliver({ buf: b });
    }
    await tick(200);
    assert.ok(s.server.stats.malformed > 0 && malformed.length === s.server.stats.malformed);
    const ip = await dora(s, '52:54:00:00:77:77', 0xabc);
    assert.ok(ip.startsWith('10.40.0.'));
  });
});
