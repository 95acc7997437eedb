/**
 * The boot-storm simulator (bench/storm/client.ts) replays the recorded boots faithfully: against
 * the seed's stack (dnsmasq DHCP + TFTP with the wiki's configuration, nginx), two simulated
 * clients complete with every file intact, and what the servers logged for each client — TFTP
 * files sent, not found and aborted (dnsmasq's log), HTTP requests with their Range and status
 * (nginx's access log) — is the recorded sequence, in the recorded order.
 *
 * The proxy-DHCP recording the same way against dnsmasq's proxy mode beside an address-only
 * dnsmasq (as `bench:storm --dhcp proxy` runs them), and its DHCP exchange too: each client's
 * messages are the recorded ones (DISCOVER and REQUEST broadcast to port 67), answered by the
 * right servers (an address offer and a proxy offer, the ACK from the address server, whose log
 * shows DISCOVER, OFFER, REQUEST, ACK for that MAC; one proxy reply in dnsmasq's log).
 *
 * The recorded BIOS client sends no port-4011 REQUEST (see DhcpStep.proxyRequest), so the
 * simulator's port-4011 exchange is checked on its own: the proxy recording with one added to its
 * DHCP step (the DISCOVER's classes), against the same servers — the REQUEST leaves from the
 * client's address to the proxy's port 4011, the ACK comes back from port 4011, and dnsmasq logs a
 * second proxy reply. That variant is for the simulator's test only; the bench replays recordings.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable } from '../lab/netns';
import { prepareFiles } from '../../bench/storm/files';
import { startAddressServer, startStack, type Running } from '../../bench/storm/servers';
import { normalisePath, recordingFile, type Recording } from '../../bench/storm/script';
import type { ClientConfig, ClientResult, DhcpLogEntry } from '../../bench/storm/client';

const root = path.resolve(__dirname, '..', '..');
const skip = labAvailable() ?? (['/usr/sbin/dnsmasq', '/usr/sbin/nginx', '/usr/bin/xorriso'].find((b) => !fs.existsSync(b)) ?? null);
const SERVER = '10.93.0.1';
const ROUTER = '10.93.0.2';

const read = (mode: 'full' | 'proxy'): Recording => JSON.parse(fs.readFileSync(recordingFile(mode), 'utf8')) as Recording;
const with4011 = (r: Recording): Recording => ({ ...r, steps: r.steps.map((s) => (s.proto === 'dhcp' ? { ...s, proxyRequest: { vendorClass: s.vendorClass, userClass: s.userClass, arch: s.arch } } : s)) });
const cases = [
  { name: 'full DHCP', mode: 'full' as const, recording: read('full') },
  { name: 'proxy DHCP', mode: 'proxy' as const, recording: read('proxy') },
  { name: 'proxy DHCP with a port-4011 REQUEST added', mode: 'proxy' as const, recording: with4011(read('proxy')) },
];

for (const { name, mode, recording } of cases) {
  describe(`boot-storm replay (${name}) against ${mode === 'full' ? 'dnsmasq' : "dnsmasq's proxy mode beside an address-only dnsmasq"} + nginx`, { skip: skip ?? false }, () => {
    let work: string;
    let lab: Lab;
    let stack: Running | undefined;
    let addressServer: { stop(): Promise<void>; logFile: string } | undefined;
    let results: ClientResult[] = [];
    let tree = '';

    before(async () => {
      work = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-storm-test-'));
      fs.chmodSync(work, 0o755);
      const files = prepareFiles(work, recording.iso, 1 / 256);
      tree = files.tree;
      lab = Lab.create();
      const srv = lab.netns('srv');
      const cli = lab.netns('cli');
      let a: string;
      let b: string;
      if (mode === 'full') ({ a, b } = lab.veth(srv, `${SERVER}/16`, cli, '10.93.255.254/16', { mtu: 1500 }));
      else {
        a = lab.bridge(srv, `${SERVER}/16`);
        b = lab.attach(srv, a, cli, '10.93.255.254/16', { mtu: 1500 });
        const router = lab.netns('router');
        const r = lab.attach(srv, a, router, `${ROUTER}/16`, { mtu: 1500 });
        addressServer = await startAddressServer(router, { iface: r, work, pool: { start: '10.93.1.1', end: '10.93.1.254', mask: '255.255.0.0' } });
      }
      cli.ip('route', 'add', 'default', 'dev', b);
      const l = files.layout;
      stack = await startStack(srv, { tree, work, iface: a, address: SERVER, dhcp: mode, pool: { start: '10.93.1.1', end: '10.93.1.254', mask: '255.255.0.0' }, bootFile: l.dhcp.bootFile, option209: l.dhcp.option209, option210: l.dhcp.option210, cpu: 0 });
      const firstTftp = recording.steps.find((s) => s.proto === 'tftp')!;
      const cfg: ClientConfig = { iface: b, server: SERVER, clients: 2, round: 1, spreadMs: 200, steps: recording.steps, expect: files.expect, bootFile: firstTftp.proto === 'tftp' ? firstTftp.file : '', clientTimeoutMs: 60_000 };
      const cfgFile = path.join(work, 'client.json');
      fs.writeFileSync(cfgFile, JSON.stringify(cfg));
      const r = await cli.run(process.execPath, ['--import', 'tsx', path.join(root, 'bench', 'storm', 'client.ts'), cfgFile], { cwd: root, timeoutMs: 120_000 });
      results = (JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { results?: ClientResult[] }).results ?? [];
      assert.ok(results.length, `simulator output: ${r.stdout} ${r.stderr}`);
      await stack.stop();
      stack = undefined;
      await addressServer?.stop();
    });
    after(async () => {
      await stack?.stop();
      await addressServer?.stop();
      await lab?.destroy();
      if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    it('every client completes with every file intact', (t) => {
      t.diagnostic(`per-client boot ${results.map((c) => `${(c.ms / 1000).toFixed(2)} s (DHCP ${(c.phases.dhcp / 1000).toFixed(2)}, TFTP ${(c.phases.tftp / 1000).toFixed(2)}, HTTP ${(c.phases.http / 1000).toFixed(2)})`).join(', ')}`);
      for (const c of results) assert.deepEqual(c.errors, [], `client ${c.i}`);
      assert.equal(results.filter((c) => c.ok && c.corrupt === 0).length, 2);
    });

    it("each client's DHCP messages are the recorded exchange, answered by the right server and port", () => {
      const dhcpSteps = recording.steps.filter((s) => s.proto === 'dhcp');
      // A message resent while the server is slow (dnsmasq pings an address for 3 s before it
      // offers it) is the same step: consecutive repeats count once.
      const sent = (e: DhcpLogEntry[]): string[] => e.filter((x) => x.dir === 'sent').map((x) => `${x.type} ${x.peer}`).filter((x, i, a) => x !== a[i - 1]);
      // Received: the two offers of a proxy DISCOVER come in either order.
      const received = (e: DhcpLogEntry[]): string[] => e.filter((x) => x.dir === 'received').map((x) => `${x.type} ${x.peer}`);
      const wantSent = dhcpSteps.flatMap((s) => ['DISCOVER 255.255.255.255:67', 'REQUEST 255.255.255.255:67', ...(s.proxyRequest ? [`REQUEST ${SERVER}:4011`] : [])]);
      const wantReceived = dhcpSteps.flatMap((s) => (s.proxy ? [`OFFER ${ROUTER}:67`, `OFFER ${SERVER}:67`, `ACK ${ROUTER}:67`, ...(s.proxyRequest ? [`ACK ${SERVER}:4011`] : [])] : [`OFFER ${SERVER}:67`, `ACK ${SERVER}:67`]));
      assert.ok(dhcpSteps.length && dhcpSteps.every((s) => !!s.proxy === (mode === 'proxy')), `the ${mode} recording's DHCP steps`);
      for (const c of results) {
        assert.deepEqual(sent(c.dhcpLog ?? []), wantSent, `client ${c.mac}: sent`);
        assert.deepEqual([...received(c.dhcpLog ?? [])].sort(), [...wantReceived].sort(), `client ${c.mac}: received`);
      }
      if (mode === 'proxy') {
        const addrLog = fs.readFileSync(addressServer!.logFile, 'utf8');
        const stackLog = fs.readFileSync(path.join(work, 'dnsmasq.log'), 'utf8');
        for (const c of results) {
          const types = addrLog.split('\n').flatMap((l) => (l.includes(` ${c.mac}`) ? [/(DHCP[A-Z]+)\(/.exec(l)?.[1] ?? '?'] : []));
          assert.deepEqual(types, ['DHCPDISCOVER', 'DHCPOFFER', 'DHCPREQUEST', 'DHCPACK'], `address server's log for ${c.mac}`);
          assert.match(addrLog, new RegExp(`DHCPACK\\(\\S+\\) ${c.ip!.replace(/\./g, '\\.')} ${c.mac}`), `address server acked ${c.ip} to ${c.mac}`);
          const proxied = stackLog.split('\n').filter((l) => new RegExp(`PXE\\(\\S+\\) ${c.mac} proxy$`).test(l));
          const want = dhcpSteps.reduce((n, s) => n + (s.proxyRequest ? 2 : 1), 0);
          assert.equal(proxied.length, want, `dnsmasq's proxy replies to ${c.mac} (the DISCOVER's offer, the port-4011 ACK if asked):\n${stackLog}`);
        }
      }
    });

    it("dnsmasq's TFTP log shows each client's recorded files and outcomes, in order (per outcome)", () => {
      const log = fs.readFileSync(path.join(work, 'dnsmasq.log'), 'utf8');
      // dnsmasq names the file of a transfer the client ended (tsize query, aborted ldlinux.c32) only
      // in "failed sending"; "error 0 … received from" carries no file name and is not compared.
      const want = recording.steps.flatMap((s) => (s.proto !== 'tftp' ? [] : [`${s.outcome === 'done' ? 'sent' : s.outcome === 'not-found' ? 'missing' : 'ended'} ${normalisePath(s.file)}`]));
      const rel = (f: string): string => normalisePath(path.relative(tree, f));
      for (const c of results) {
        const got: string[] = [];
        for (const line of log.split('\n')) {
          let m = /dnsmasq-tftp\[\d+\]: sent (\S+) to (\S+)$/.exec(line);
          if (m && m[2] === c.ip) got.push(`sent ${rel(m[1]!)}`);
          m = /dnsmasq-tftp\[\d+\]: file (\S+) not found for (\S+)$/.exec(line);
          if (m && m[2] === c.ip) got.push(`missing ${rel(m[1]!)}`);
          m = /dnsmasq-tftp\[\d+\]: failed sending (\S+) to (\S+)$/.exec(line);
          if (m && m[2] === c.ip) got.push(`ended ${rel(m[1]!)}`);
        }
        // dnsmasq logs "sent" when the last ACK arrives and "not found" when the request does, so a
        // client's next request can be logged before the end of the transfer it has just finished:
        // each kind is compared in order on its own.
        for (const kind of ['sent', 'missing', 'ended']) {
          const only = (l: string[]): string[] => l.filter((x) => x.startsWith(`${kind} `));
          assert.deepEqual(only(got), only(want), `client ${c.ip}: ${kind}`);
        }
      }
    });

    it("nginx's access log shows each client's recorded HTTP requests (path, Range, status), in order", () => {
      const log = fs.readFileSync(path.join(work, 'nginx-access.log'), 'utf8');
      const want = recording.steps.flatMap((s) => (s.proto === 'http' ? [`GET ${s.path} ${s.status} "${s.range ?? '-'}"`] : []));
      for (const c of results) {
        const got = log
          .split('\n')
          .filter((l) => l.startsWith(`${c.ip} `))
          .map((l) => l.slice(c.ip!.length + 1));
        assert.deepEqual(got, want, `client ${c.ip}`);
      }
    });
  });
}
