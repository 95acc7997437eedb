/**
 * NAT leftovers after a crash (issue 15, item 3), in the lab, for each backend: a Node-RED is
 * killed with -9 while its NAT rules (masquerade + port redirect) and ip_forward=1 are in force,
 * and a NAT node with another id starts. It must remove the killed one's table/chains and give
 * ip_forward its original value back, and leave alone the rules of a Node-RED that still runs and
 * of another NAT node of its own runtime. Every firewall command runs inside the lab's namespace
 * (nat-child.ts started there, or a command prefix); the machine's own tables are only read.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable, type Netns } from '../lab/netns';
import { waitForLine } from '../lab/process';
import { NatController, type NatState } from '../../nodes/lib/nat/controller';
import { chooseBackend, createBackend, detectTools, forwardingFor, type Tools } from '../../nodes/lib/nat/detect';
import { createRunner, type Runner } from '../../nodes/lib/nat/exec';
import { makePlan, type BackendKind } from '../../nodes/lib/nat/plan';

const skip = labAvailable();
const NFT = '/usr/sbin/nft';
const CHILD = path.join(__dirname, 'nat-child.ts');

const BACKENDS: { kind: BackendKind; octet: number; available: () => boolean }[] = [
  { kind: 'nftables', octet: 61, available: () => existsSync(NFT) },
  { kind: 'iptables-nft', octet: 62, available: () => existsSync('/usr/sbin/iptables-nft-restore') },
  { kind: 'iptables-legacy', octet: 63, available: () => existsSync('/usr/sbin/iptables-legacy-restore') },
];

// Read-only look at the machine's own namespace: the tests must leave it exactly as it was.
const rootState = (): string =>
  existsSync(NFT) ? execFileSync(NFT, ['list', 'ruleset'], { encoding: 'utf8' }) + readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8') : '';
let rootBefore = '';
before(() => {
  if (!skip) rootBefore = rootState();
});
after(() => {
  if (!skip) assert.equal(rootState(), rootBefore, "the machine's own ruleset or ip_forward changed");
});

for (const { kind, octet, available } of BACKENDS) {
  describe(`NAT leftovers after kill -9 with ${kind} (lab)`, { skip: skip ?? (available() ? false : `${kind} not installed`) }, () => {
    const subnet = `192.168.${octet}.0/24`;
    let lab: Lab;
    let srv: Netns;
    let runner: Runner;
    let tools: Tools;
    let counter = 0;
    const id = (): string => `dead${octet}${(counter++).toString(16).padStart(8, '0')}`;
    const settings = { subnet, outInterface: 'wan0', forward: true, redirect: true, redirectFrom: 80, redirectTo: 8080 };

    /** A controller in this process, as a pxe-nat node of this runtime would have. */
    const controller = (owner: string): NatController =>
      new NatController({ owner, backend: async () => createBackend(chooseBackend(kind, tools), tools, runner), forwarding: forwardingFor(runner), namespaceKey: srv.name });

    const sh = async (cmd: string, args: string[]): Promise<string> => {
      const r = await srv.run(cmd, args, { timeoutMs: 10000 });
      assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const ipForward = async (): Promise<string> => (await sh('/bin/cat', ['/proc/sys/net/ipv4/ip_forward'])).trim();
    /** The firewall as the backend's own tool shows it. */
    const listing = (): Promise<string> => (kind === 'nftables' ? sh(NFT, ['list', 'ruleset']) : sh(`/usr/sbin/${kind}-save`, ['-t', 'nat']));
    /** Our tables (nft) or chains (iptables), whoever owns them. */
    const ours = async (): Promise<string[]> => {
      const text = await listing();
      return kind === 'nftables' ? [...text.matchAll(/table ip (pxe_flow_nat_\w+)/g)].map((m) => m[1]!) : [...text.matchAll(/^:(PXEFLOW-\S+)/gm)].map((m) => m[1]!);
    };
    /** Lines of ours that carry `owner`'s comment. */
    const linesOf = async (owner: string): Promise<number> => (await listing()).split('\n').filter((l) => l.includes(`pxe-flow:nat:${owner}:`)).length;
    /** Everything a backend could change, without counters and dates. */
    const snapshot = async (): Promise<string> => {
      const strip = (s: string): string =>
        s
          .split('\n')
          .filter((l) => !l.startsWith('#'))
          .map((l) => l.replace(/\[\d+:\d+\]$/, '[-]').replace(/counter packets \d+ bytes \d+/g, 'counter'))
          .join('\n');
      const parts = [`ip_forward=${await ipForward()}`, strip(await sh(NFT, ['list', 'ruleset']))];
      for (const t of ['iptables-legacy-save', 'iptables-nft-save']) if (existsSync(`/usr/sbin/${t}`)) parts.push(strip(await sh(`/usr/sbin/${t}`, ['-t', 'nat'])));
      return parts.join('\n----\n');
    };

    /** A Node-RED of its own (nat-child.ts in the namespace) with one NAT node, rules applied. */
    const otherRuntime = async (owner: string): Promise<ChildProcess> => {
      const child = srv.spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify({ owner, backend: kind, ...settings }), srv.name]);
      const m = await waitForLine(child, /^\{"(state|error)"/, 60000);
      assert.match(m.input!, /"state"/, m.input);
      return child;
    };
    const kill9 = async (child: ChildProcess): Promise<void> => {
      child.kill('SIGKILL');
      if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
    };

    let clean: string;
    before(async () => {
      lab = Lab.create();
      srv = lab.netns('srv');
      const up = lab.netns('up');
      lab.veth(srv, `10.${octet}.0.1/24`, up, `10.${octet}.0.2/24`, { aName: 'wan0' });
      runner = createRunner(['/usr/sbin/ip', 'netns', 'exec', srv.name]);
      tools = await detectTools(runner);
      await sh('/usr/sbin/sysctl', ['-qw', 'net.ipv4.ip_forward=0']);
      // A rule of the user's in the tables/hooks we use: no cleanup may touch it.
      if (kind === 'nftables') {
        await sh(NFT, ['add table ip usernat']);
        await sh(NFT, ['add chain ip usernat post { type nat hook postrouting priority 100; policy accept; }']);
        await sh(NFT, ['add rule ip usernat post ip saddr 10.99.0.0/24 masquerade comment "user rule"']);
      } else {
        await sh(`/usr/sbin/${kind}`, ['-t', 'nat', '-A', 'POSTROUTING', '-s', '10.99.0.0/24', '-m', 'comment', '--comment', 'user rule', '-j', 'MASQUERADE']);
        // Also makes iptables-nft create its PREROUTING chain, which it keeps once made.
        await sh(`/usr/sbin/${kind}`, ['-t', 'nat', '-A', 'PREROUTING', '-s', '10.99.0.0/24', '-j', 'ACCEPT']);
      }
      clean = await snapshot();
      assert.match(clean, /user rule/);
    });
    after(async () => {
      await lab?.destroy();
    });

    it('a new NAT node (new id) removes the killed runtime\'s masquerade and redirect and restores ip_forward', { timeout: 180_000 }, async () => {
      const killedId = id();
      await kill9(await otherRuntime(killedId));
      assert.equal(await ipForward(), '1', 'the kill left forwarding on');
      assert.ok((await linesOf(killedId)) > 0, 'the kill left its rules');

      const newId = id();
      const c = controller(newId);
      const st: NatState = await c.enable(makePlan(newId, settings));
      assert.equal(await linesOf(killedId), 0, `the killed runtime's rules are still there:\n${await listing()}`);
      assert.equal((await ours()).length, kind === 'nftables' ? 1 : 2, (await ours()).join(' '));
      assert.equal(st.ipForwardBefore, '0', 'the value from before the killed runtime, not the 1 it left');
      assert.equal(await ipForward(), '1');

      await c.close();
      assert.deepEqual(await ours(), []);
      assert.equal(await ipForward(), '0');
      assert.equal(await snapshot(), clean);
    });

    it('leaves alone the rules of a running Node-RED and of another node of its own runtime', { timeout: 180_000 }, async () => {
      const liveId = id();
      const live = await otherRuntime(liveId);
      const killedId = id();
      const killed = await otherRuntime(killedId);
      const siblingId = id();
      const sibling = controller(siblingId);
      await sibling.enable(makePlan(siblingId, settings));
      await kill9(killed);
      assert.ok((await linesOf(killedId)) > 0);

      const newId = id();
      const c = controller(newId);
      await c.enable(makePlan(newId, settings));
      assert.equal(await linesOf(killedId), 0, 'the killed runtime\'s rules are removed');
      for (const owner of [liveId, siblingId, newId]) assert.ok((await linesOf(owner)) > 0, `rules of ${owner} are there`);

      await c.close();
      await sibling.close();
      assert.ok((await linesOf(liveId)) > 0, 'the running Node-RED keeps its rules');
      assert.equal(await ipForward(), '1', 'and the forwarding it needs');

      const closed = waitForLine(live, /^\{"(closed|error)"/, 60000);
      live.kill('SIGTERM');
      assert.match((await closed).input!, /"closed"/);
      assert.equal(await snapshot(), clean, 'the last one restored the original ip_forward');
    });
  });
}
