/**
 * Where DHCP traffic may come from. The server host has two interfaces and no default route:
 * segment A (a bridge) is served, segment B is not. On segment A there is also a relay agent
 * (ISC dhcrelay, adding option 82) for a third segment R. Checks: the relayed client gets an
 * address from R's pool with R's router; a client on B gets nothing, in both isolation modes;
 * a bounded stream of hostile packets does not stop the server.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable, type Netns } from '../lab/netns';
import { scriptClient, ServerProc } from './dhcp-lab';
import type { DhcpServiceConfig } from '../../nodes/lib/dhcp/service';

const skip = labAvailable();

function macOf(ns: Netns, dev: string): string {
  const m = /link\/ether ([0-9a-f:]{17})/.exec(ns.ip('link', 'show', 'dev', dev));
  if (!m) throw new Error(`no MAC for ${dev}`);
  return m[1]!;
}

describe('DHCP relay, interface isolation, hostile packets', { skip: skip ?? false }, () => {
  let lab: Lab;
  let srv: Netns;
  let cliA: Netns;
  let cliB: Netns;
  let relay: Netns;
  let cliR: Netns;
  let brA: string;
  let ifCliA: string;
  let ifCliB: string;
  let ifCliR: string;
  let tmp: string;
  let script: string;
  let server: ServerProc | null = null;

  const config = (isolation: 'nftables' | 'filter'): DhcpServiceConfig => ({
    mode: 'full',
    iface: brA,
    isolation,
    probeMs: 0,
    pool: { start: '10.70.0.100', end: '10.70.0.150', router: ['10.70.0.1'] },
    relayPools: [{ network: '10.72.0.0/24', rangeStart: '10.72.0.100', rangeEnd: '10.72.0.150', router: ['10.72.0.1'] }],
    rules: [],
  });
  const udhcpc = (ns: Netns, dev: string, tries = 4) =>
    ns.run('/bin/busybox', ['udhcpc', '-i', dev, '-n', '-q', '-f', '-t', String(tries), '-T', '1', '-s', script], { timeoutMs: 30000 });

  before(() => {
    lab = Lab.create();
    srv = lab.netns('srv');
    cliA = lab.netns('clia');
    cliB = lab.netns('clib');
    relay = lab.netns('rly');
    cliR = lab.netns('clir');
    brA = lab.bridge(srv, '10.70.0.1/24');
    ifCliA = lab.attach(srv, brA, cliA, null);
    const relayUp = lab.attach(srv, brA, relay, '10.70.0.2/24');
    ({ b: ifCliB } = lab.veth(srv, '10.71.0.1/24', cliB, null));
    const r = lab.veth(relay, '10.72.0.1/24', cliR, null);
    ifCliR = r.b;
    srv.ip('route', 'add', '10.72.0.0/24', 'via', '10.70.0.2');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-dhcp-topo-'));
    script = path.join(tmp, 'u.sh');
    fs.writeFileSync(script, '#!/bin/sh\n[ "$1" = bound ] && echo "EV bound ip=$ip router=$router sid=$serverid"\nexit 0\n', { mode: 0o755 });
    relay.spawn('/usr/sbin/dhcrelay', ['-d', '-4', '-a', '--no-pid', '-id', r.a, '-iu', relayUp, '10.70.0.1']);
  });
  after(async () => {
    await server?.stop();
    await lab.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('a client behind a relay (dhcrelay, adding option 82) gets an address from the relay subnet pool', async () => {
    server = ServerProc.start(srv, config('nftables'));
    const ready = await server.ready();
    assert.equal(ready.isolation, 'nftables', JSON.stringify(ready));
    const r = await udhcpc(cliR, ifCliR, 6);
    assert.match(r.stdout, /EV bound ip=10\.72\.0\.1\d\d router=10\.72\.0\.1 sid=10\.70\.0\.1/, r.stdout + r.stderr);
    const ack = server.events('ack').at(-1)!;
    assert.equal(ack.relay, '10.72.0.1');
    const route = server.lines.filter((l) => l.event?.type === 'ack').at(-1)!.route;
    assert.deepEqual([route.address, route.port, route.reason], ['10.72.0.1', 67, 'relay']);
  });

  it('nftables isolation: a client on the other interface gets nothing and is not even seen', async () => {
    const macB = macOf(cliB, ifCliB);
    const r = await udhcpc(cliB, ifCliB, 3);
    assert.doesNotMatch(r.stdout, /EV bound/);
    assert.ok(!server!.events().some((e) => e.mac === macB), 'no event for the other interface');
    const ok = await udhcpc(cliA, ifCliA);
    assert.match(ok.stdout, /EV bound ip=10\.70\.0\.1\d\d router=10\.70\.0\.1/, ok.stdout + ok.stderr);
  });

  it('bounded hostile packet stream: no crash, malformed counted, still serving', async () => {
    cliA.ip('route', 'add', 'default', 'dev', ifCliA);
    const lines = await scriptClient(cliA, { mac: '02:00:00:00:0f:0f', to: '255.255.255.255', toPort: 67, fuzz: 3000 }, 60000);
    assert.ok(lines.some((l) => l.fuzzed === 3000), JSON.stringify(lines));
    const stats = await server!.command('stats', 'stats');
    assert.ok(stats.stats.malformed > 0, JSON.stringify(stats));
    assert.equal(server!.child.exitCode, null, 'server alive');
    const ok = await udhcpc(cliA, ifCliA);
    assert.match(ok.stdout, /EV bound ip=10\.70\.0\.1\d\d/, ok.stdout + ok.stderr);
    await server!.stop();
    server = null;
  });

  it('filter isolation (no nftables): the other interface still gets nothing', async () => {
    server = ServerProc.start(srv, config('filter'));
    const ready = await server.ready();
    assert.equal(ready.isolation, 'filter');
    const r = await udhcpc(cliB, ifCliB, 3);
    assert.doesNotMatch(r.stdout, /EV bound/, 'its replies leave through the chosen interface only');
    const ok = await udhcpc(cliA, ifCliA);
    assert.match(ok.stdout, /EV bound ip=10\.70\.0\.1\d\d/, ok.stdout + ok.stderr);
    // The documented limitation: address-less broadcasts from the other interface are seen.
    const macB = macOf(cliB, ifCliB);
    assert.ok(server.events('discover').some((e) => e.mac === macB));
    // A host of the other subnet unicasting to our served address is dropped by the source
    // filter (only relays and our own subnet's clients may).
    cliB.ip('addr', 'add', '10.71.0.50/24', 'dev', ifCliB);
    cliB.ip('route', 'add', '10.70.0.0/24', 'via', '10.71.0.1');
    const before = (await server.command('stats', 'stats')).filtered as number;
    const lines = await scriptClient(cliB, { type: 8, mac: '02:00:00:00:0b:0b', ciaddr: '10.71.0.50', to: '10.70.0.1', toPort: 67, bindAddress: '10.71.0.50', bindPort: 68, waitMs: 800 });
    assert.ok(lines.some((l) => l.sent) && !lines.some((l) => l.sendError || l.reply), JSON.stringify(lines));
    const after = (await server.command('stats', 'stats')).filtered as number;
    assert.equal(after, before + 1);
    assert.equal(server.events('inform').length, 0);
  });
});
