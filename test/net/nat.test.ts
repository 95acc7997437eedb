/**
 * pxe-nat in the lab, for each backend: client ns (192.168.7x.0/24) → server ns (our rules,
 * forwarding) → upstream ns with an HTTP server that answers with the source address it sees.
 * Every firewall command runs inside the lab's server namespace (command prefix or a child
 * process started there); the machine's own tables and sysctls are never touched.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable, type Netns } from '../lab/netns';
import { waitForLine } from '../lab/process';
import { NatController, type NatState } from '../../nodes/lib/nat/controller';
import { chooseBackend, createBackend, detectTools, forwardingFor, type Tools } from '../../nodes/lib/nat/detect';
import { NatError } from '../../nodes/lib/nat/errors';
import { createRunner, type Runner } from '../../nodes/lib/nat/exec';
import { makePlan, type BackendKind, type NatSettingsInput } from '../../nodes/lib/nat/plan';
import type { ForwardingControl } from '../../nodes/lib/nat/sysctl';

const skip = labAvailable();
const CURL = '/usr/bin/curl';
const NFT = '/usr/sbin/nft';
const SETPRIV = '/usr/bin/setpriv';

// Answers every request with the peer address it sees (and a label), on the given ports.
const ECHO_SERVER = `
const http = require('http');
const [label, ...ports] = process.argv.slice(1);
let n = 0;
for (const p of ports) http.createServer((q, s) => s.end(label + ' ' + q.socket.remoteAddress)).listen(Number(p), '0.0.0.0', () => { if (++n === ports.length) console.log('listening'); });
`;

const BACKENDS: { kind: BackendKind; octet: number; available: () => boolean }[] = [
  { kind: 'nftables', octet: 71, available: () => existsSync(NFT) },
  { kind: 'iptables-nft', octet: 72, available: () => existsSync('/usr/sbin/iptables-nft-restore') },
  { kind: 'iptables-legacy', octet: 73, available: () => existsSync('/usr/sbin/iptables-legacy-restore') },
];

// Read-only look at the machine's own namespace: the tests must leave it exactly as it was.
const rootState = (): string =>
  existsSync(NFT) ? execFileSync(NFT, ['list', 'ruleset'], { encoding: 'utf8' }) + readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8') : '';
let rootBefore = '';
before(() => {
  if (!skip) rootBefore = rootState();
});
after(() => {
  if (!skip) assert.equal(rootState(), rootBefore, 'the machine\'s own ruleset or ip_forward changed');
});

for (const { kind, octet, available } of BACKENDS) {
  describe(`pxe-nat with ${kind}`, { skip: skip ?? (available() ? false : `${kind} not installed`) }, () => {
    const lan = `192.168.${octet}`;
    const wan = `10.${octet}.0`;
    const subnet = `${lan}.0/24`;
    let lab: Lab;
    let cli: Netns;
    let srv: Netns;
    let up: Netns;
    let runner: Runner;
    let tools: Tools;
    let counter = 0;
    const owner = (): string => `c0ffee${octet}${(counter++).toString(16).padStart(8, '0')}`;

    const controllerFor = (id: string, forwarding?: ForwardingControl): NatController =>
      new NatController({
        owner: id,
        backend: async () => createBackend(chooseBackend(kind, tools), tools, runner),
        forwarding: forwarding ?? forwardingFor(runner),
        namespaceKey: `${srv.name}:${id}`,
      });
    const settings = (extra: NatSettingsInput = {}): NatSettingsInput => ({ subnet, outInterface: 'wan0', forward: true, ...extra });

    const sh = async (ns: Netns, cmd: string, args: string[]): Promise<string> => {
      const r = await ns.run(cmd, args, { timeoutMs: 10000 });
      assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const ipForward = async (): Promise<string> => (await sh(srv, '/bin/cat', ['/proc/sys/net/ipv4/ip_forward'])).trim();
    const setIpForward = (v: string): Promise<string> => sh(srv, '/usr/sbin/sysctl', ['-qw', `net.ipv4.ip_forward=${v}`]);

    /** Everything a backend could change: both iptables flavours' nat tables, the nft ruleset, ip_forward. */
    const snapshot = async (): Promise<string> => {
      // Dates and packet counters are not rules.
      const strip = (s: string): string =>
        s
          .split('\n')
          .filter((l) => !l.startsWith('#'))
          .map((l) => l.replace(/\[\d+:\d+\]$/, '[-]').replace(/counter packets \d+ bytes \d+/g, 'counter'))
          .join('\n');
      const parts = [`ip_forward=${await ipForward()}`, strip(await sh(srv, NFT, ['list', 'ruleset']))];
      for (const t of ['iptables-legacy-save', 'iptables-nft-save']) if (existsSync(`/usr/sbin/${t}`)) parts.push(strip(await sh(srv, `/usr/sbin/${t}`, ['-t', 'nat'])));
      return parts.join('\n----\n');
    };
    const curl = (url: string): Promise<{ code: number | null; body: string }> =>
      cli.run(CURL, ['-s', '--max-time', '3', url], { timeoutMs: 10000 }).then((r) => ({ code: r.code, body: r.stdout }));
    /** MASQUERADE rules as the backend's own tool lists them (iptables-nft rules also show in nft). */
    const masqueradeCount = async (): Promise<number> => {
      const out = kind === 'nftables' ? await sh(srv, NFT, ['list', 'ruleset']) : await sh(srv, `/usr/sbin/${kind}-save`, ['-t', 'nat']);
      return (out.match(/masquerade|MASQUERADE/g) ?? []).length;
    };
    let userMasquerades = 0;
    /** Lines carrying our comment: one masquerade rule (nft), or it and the jump to our chain (iptables). */
    const ourLines = async (): Promise<number> => {
      const out = kind === 'nftables' ? await sh(srv, NFT, ['list', 'ruleset']) : await sh(srv, `/usr/sbin/${kind}-save`, ['-t', 'nat']);
      return out.split('\n').filter((l) => l.includes('pxe-flow:nat:')).length;
    };
    const expectedOurLines = kind === 'nftables' ? 1 : 2;

    /** A rule of the user's in the very tables/hooks we use: it must survive everything. */
    const addUserRule = async (): Promise<string> => {
      if (kind === 'nftables') {
        await sh(srv, NFT, ['add table ip usernat']);
        await sh(srv, NFT, ['add chain ip usernat post { type nat hook postrouting priority 100; policy accept; }']);
        await sh(srv, NFT, ['add rule ip usernat post ip saddr 10.99.0.0/24 masquerade comment "user rule"']);
        return 'comment "user rule"';
      }
      const ipt = `/usr/sbin/${kind}`;
      await sh(srv, ipt, ['-t', 'nat', '-A', 'POSTROUTING', '-s', '10.99.0.0/24', '-m', 'comment', '--comment', 'user rule', '-j', 'MASQUERADE']);
      await sh(srv, ipt, ['-t', 'nat', '-A', 'PREROUTING', '-s', '10.99.0.0/24', '-j', 'ACCEPT']);
      return '--comment "user rule"';
    };

    let userMarker: string;
    let before_: string;

    before(async () => {
      lab = Lab.create();
      cli = lab.netns('cli');
      srv = lab.netns('srv');
      up = lab.netns('up');
      lab.veth(srv, `${lan}.1/24`, cli, `${lan}.2/24`, { aName: 'lan0', bName: 'eth0' });
      lab.veth(srv, `${wan}.1/24`, up, `${wan}.2/24`, { aName: 'wan0', bName: 'eth0' });
      cli.ip('route', 'add', 'default', 'via', `${lan}.1`);
      // The upstream can route back to the clients: without NAT it would see their own address.
      up.ip('route', 'add', `${lan}.0/24`, 'via', `${wan}.1`);
      const upHttp = up.spawn(process.execPath, ['-e', ECHO_SERVER, 'upstream', '8000', '80']);
      const localHttp = srv.spawn(process.execPath, ['-e', ECHO_SERVER, 'local-8080', '8080']);
      await Promise.all([waitForLine(upHttp, /listening/, 10000), waitForLine(localHttp, /listening/, 10000)]);
      runner = createRunner(['/usr/sbin/ip', 'netns', 'exec', srv.name]);
      tools = await detectTools(runner);
      await setIpForward('0');
      userMarker = await addUserRule();
      before_ = await snapshot();
      userMasquerades = await masqueradeCount();
      assert.match(before_, /user rule/);
    });
    after(async () => {
      await lab?.destroy();
    });

    it('masquerades the subnet: the upstream sees the server address; removal restores rules and ip_forward', async () => {
      const id = owner();
      const c = controllerFor(id);
      const st = await c.enable(makePlan(id, settings()));
      assert.equal(st.active, true);
      assert.equal(st.backend, kind);
      assert.equal(st.ipForward, '1');
      assert.equal(st.ipForwardBefore, '0');
      assert.ok(st.rules.some((r) => /masquerade/i.test(r)), st.rules.join('\n'));
      const during = await snapshot();
      assert.ok(during.includes(userMarker), 'the user rule is still there');
      const r = await curl(`http://${wan}.2:8000/`);
      assert.equal(r.body, `upstream ${wan}.1`);

      const off = await c.disable();
      assert.equal(off.active, false);
      assert.deepEqual(off.rules, []);
      assert.equal(await snapshot(), before_);
      // Forwarding is off again: the upstream is unreachable from the client.
      assert.notEqual((await curl(`http://${wan}.2:8000/`)).code, 0);
    });

    it('leaves forwarding on when it was on before; without the rule the upstream sees the client', async () => {
      await setIpForward('1');
      try {
        const id = owner();
        const c = controllerFor(id);
        const st = await c.enable(makePlan(id, settings()));
        assert.equal(st.ipForwardBefore, '1');
        assert.equal((await curl(`http://${wan}.2:8000/`)).body, `upstream ${wan}.1`);
        await c.disable();
        assert.equal(await ipForward(), '1');
        assert.equal((await curl(`http://${wan}.2:8000/`)).body, `upstream ${lan}.2`);
      } finally {
        await setIpForward('0');
      }
      assert.equal(await snapshot(), before_);
    });

    it('redeploying 20 times gives exactly one rule', async () => {
      const id = owner();
      let last: NatController | undefined;
      for (let i = 0; i < 20; i++) {
        // Every other time the previous instance is not closed, as after a crash.
        if (last && i % 2 === 0) await last.disable();
        last = controllerFor(id);
        await last.enable(makePlan(id, settings()));
      }
      assert.equal((await masqueradeCount()) - userMasquerades, 1, await snapshot());
      assert.equal(await ourLines(), expectedOurLines, await snapshot());
      assert.equal((await curl(`http://${wan}.2:8000/`)).body, `upstream ${wan}.1`);
      await last!.disable();
      assert.equal(await snapshot(), before_);
    });

    it('redirects port 80 on the server to the local HTTP port, not port 80 elsewhere', async () => {
      const id = owner();
      const c = controllerFor(id);
      await c.enable(makePlan(id, settings({ redirect: true, redirectFrom: 80, redirectTo: 8080 })));
      assert.equal((await curl(`http://${lan}.1/`)).body, `local-8080 ${lan}.2`);
      // A download from a port-80 server beyond the PXE server is not captured.
      assert.equal((await curl(`http://${wan}.2/`)).body, `upstream ${wan}.1`);
      // Changing the settings in place drops the redirect.
      const st = await c.enable(makePlan(id, settings()));
      assert.ok(!st.rules.some((r) => /redirect/i.test(r)), st.rules.join('\n'));
      assert.notEqual((await curl(`http://${lan}.1/`)).code, 0);
      await c.disable();
      assert.equal(await snapshot(), before_);
    });

    it('rolls the rules back when forwarding cannot be switched on', async () => {
      const real = forwardingFor(runner);
      const failing: ForwardingControl = {
        read: () => real.read(),
        write: async () => {
          throw new NatError('EPERM', 'simulated: cannot write ip_forward');
        },
      };
      const id = owner();
      const c = controllerFor(id, failing);
      await assert.rejects(c.enable(makePlan(id, settings())), /simulated/);
      assert.equal(await snapshot(), before_);
    });

    it('adopts its leftover after a SIGKILL instead of adding a second one, and restores ip_forward recorded before', async () => {
      const cfg = JSON.stringify({ owner: owner(), backend: kind, ...settings() });
      const first = srv.spawn(process.execPath, ['--import', 'tsx', 'test/net/nat-child.ts', cfg, srv.name]);
      const m1 = await waitForLine(first, /^\{"(state|error)"/, 30000);
      assert.match(m1.input!, /"state"/, m1.input);
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));
      assert.equal(await ipForward(), '1'); // the kill left everything in place

      const second = srv.spawn(process.execPath, ['--import', 'tsx', 'test/net/nat-child.ts', cfg, srv.name]);
      const m2 = await waitForLine(second, /^\{"(state|error)"/, 30000);
      const st = (JSON.parse(m2.input!) as { state: NatState }).state;
      assert.equal(st.ipForwardBefore, '0', 'the value from before the killed run, read from our rule');
      assert.equal((await masqueradeCount()) - userMasquerades, 1, await snapshot());
      assert.equal(await ourLines(), expectedOurLines, await snapshot());
      assert.equal((await curl(`http://${wan}.2:8000/`)).body, `upstream ${wan}.1`);

      const closed = waitForLine(second, /^\{"(closed|error)"/, 30000);
      second.kill('SIGTERM');
      assert.match((await closed).input!, /"closed"/);
      assert.equal(await snapshot(), before_);
    });

    it('without CAP_NET_ADMIN: a clear error and nothing applied', { skip: existsSync(SETPRIV) ? false : 'no setpriv' }, async () => {
      const cfg = JSON.stringify({ owner: owner(), backend: kind, ...settings() });
      const child = srv.spawn(SETPRIV, ['--bounding-set=-net_admin', '--inh-caps=-net_admin', '--', process.execPath, '--import', 'tsx', 'test/net/nat-child.ts', cfg, srv.name]);
      const m = await waitForLine(child, /^\{"(state|error)"/, 30000);
      const err = (JSON.parse(m.input!) as { error: { code: string; message: string } }).error;
      assert.ok(err, m.input);
      assert.equal(err.code, 'EPERM', err.message);
      assert.match(err.message, /CAP_NET_ADMIN/);
      assert.equal(await snapshot(), before_);
    });
  });
}
