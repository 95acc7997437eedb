/**
 * pxe-nat in a Node-RED runtime. Every firewall command goes into a lab namespace through the
 * `pxeNat.commandPrefix` runtime setting (`ip netns exec <ns>`); the machine's own ruleset and
 * ip_forward are checked, read-only, to be unchanged at the end.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
import natNode from '../../nodes/pxe-nat';
import type { NatState } from '../../nodes/lib/nat/controller';
import type { NodeMessage, NodeStatus, RedNode } from '../../nodes/lib/red';
import { Lab, labAvailable, type Netns } from '../lab/netns';
import { waitForLine } from '../lab/process';

helper.init(require.resolve('node-red'));

const NFT = '/usr/sbin/nft';
const skip = labAvailable() ?? (existsSync(NFT) ? false : 'nft not installed');

function nextMessage(node: RedNode, timeoutMs = 20000): Promise<NodeMessage> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no output message')), timeoutMs);
    node.once('input', (msg: NodeMessage) => {
      clearTimeout(t);
      resolve(msg);
    });
  });
}

/** Resolves with the first status that matches. */
function statusMatching(node: RedNode, pred: (s: NodeStatus) => boolean, timeoutMs = 20000): Promise<NodeStatus> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('status not reached')), timeoutMs);
    const on = (call: { args: [NodeStatus] }): void => {
      if (pred(call.args[0])) {
        clearTimeout(t);
        node.off('call:status', on as never);
        resolve(call.args[0]);
      }
    };
    node.on('call:status', on as never);
  });
}

type TestNode = RedNode & { receive(msg: NodeMessage): void };

const rootState = (): string => execFileSync(NFT, ['list', 'ruleset'], { encoding: 'utf8' }) + readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');

describe('pxe-nat node in a Node-RED runtime', { skip }, () => {
  let lab: Lab;
  let srv: Netns;
  let rootBefore: string;
  let nsBefore: string;

  const nsState = async (): Promise<string> => {
    const r = await srv.run(NFT, ['list', 'ruleset'], { timeoutMs: 10000 });
    const f = await srv.run('/bin/cat', ['/proc/sys/net/ipv4/ip_forward'], { timeoutMs: 10000 });
    return r.stdout + 'ip_forward=' + f.stdout;
  };
  const flow = (extra: Record<string, unknown> = {}) => [
    { id: 'n1', type: 'pxe-nat', subnet: '192.168.81.0/24', outInterface: 'wan0', redirect: true, redirectFrom: 80, redirectTo: 8080, forward: true, backend: 'auto', wires: [['h1']], ...extra },
    { id: 'h1', type: 'helper' },
  ];

  before(async () => {
    rootBefore = rootState();
    lab = Lab.create();
    srv = lab.netns('srv');
    const up = lab.netns('up');
    lab.veth(srv, '10.81.0.1/24', up, '10.81.0.2/24', { aName: 'wan0' });
    // The user's own rule in the same namespace: it must be left alone.
    await srv.run(NFT, ['add table ip usernat'], { timeoutMs: 10000 });
    await srv.run(NFT, ['add chain ip usernat post { type nat hook postrouting priority 100; policy accept; }'], { timeoutMs: 10000 });
    await srv.run(NFT, ['add rule ip usernat post ip saddr 10.99.0.0/24 masquerade comment "user rule"'], { timeoutMs: 10000 });
    nsBefore = await nsState();
    assert.match(nsBefore, /ip_forward=0/);
    const s = helper.settings({ pxeNat: { commandPrefix: ['/usr/sbin/ip', 'netns', 'exec', srv.name] } });
    assert.deepEqual(s.pxeNat.commandPrefix.slice(-1), [srv.name]);
    await helper.startServer();
  });
  afterEach(() => helper.unload());
  after(async () => {
    await helper.stopServer();
    await lab?.destroy();
    assert.equal(rootState(), rootBefore, "the machine's own ruleset or ip_forward changed");
  });

  it('applies on deploy, toggles with msg.payload, reports every change, removes everything on close', async () => {
    await helper.load(natNode, flow());
    const n1 = helper.getNode('n1') as TestNode;
    const h1 = helper.getNode('h1') as RedNode;
    const first = (await nextMessage(h1)).payload as NatState;
    assert.equal(first.active, true);
    assert.equal(first.backend, 'nftables');
    assert.equal(first.ipForward, '1');
    assert.equal(first.rules.length, 2, first.rules.join('\n'));
    assert.ok(first.rules.some((r) => /masquerade/.test(r)) && first.rules.some((r) => /redirect to :8080/.test(r)));
    let st = await nsState();
    assert.match(st, /table ip pxe_flow_nat_/);
    assert.match(st, /user rule/);

    let out = nextMessage(h1);
    n1.receive({ payload: false });
    const off = (await out).payload as NatState;
    assert.equal(off.active, false);
    assert.deepEqual(off.rules, []);
    assert.equal(await nsState(), nsBefore);

    out = nextMessage(h1);
    n1.receive({ payload: true });
    assert.equal(((await out).payload as NatState).active, true);
    out = nextMessage(h1);
    n1.receive({ payload: true });
    await out;
    st = await nsState();
    assert.equal(st.match(/masquerade comment "pxe-flow/g)?.length, 1, st);

    await helper.unload();
    assert.equal(await nsState(), nsBefore);
  });

  it('redeploying gives one table, and nothing after the last close', async () => {
    for (let i = 0; i < 3; i++) {
      await helper.load(natNode, flow());
      await nextMessage(helper.getNode('h1') as RedNode);
      const st = await nsState();
      assert.equal(st.match(/table ip pxe_flow_nat_/g)?.length, 1, st);
      await helper.unload();
    }
    assert.equal(await nsState(), nsBefore);
  });

  it('on deploy, removes the rules a killed Node-RED left under another node id, with a warning', async () => {
    // A runtime of its own applies rules in the namespace and is killed with -9.
    const cfg = JSON.stringify({ owner: 'killed0123456789', backend: 'nftables', subnet: '192.168.81.0/24', redirect: true, redirectTo: 8080, forward: true });
    const child = srv.spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'net', 'nat-child.ts'), cfg, srv.name]);
    await waitForLine(child, /^\{"state"/, 60000);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.match(await nsState(), /pxe-flow:nat:killed0123456789:/);

    await helper.load(natNode, flow());
    const n1 = helper.getNode('n1') as RedNode;
    const first = (await nextMessage(helper.getNode('h1') as RedNode)).payload as NatState;
    assert.equal(first.ipForwardBefore, '0', 'the value from before the killed runtime');
    const warns = (n1.warn as unknown as { args: unknown[][] }).args.map((a) => a[0]);
    assert.deepEqual(warns, ['pxe-nat.log.leftoverForward']);
    const st = await nsState();
    assert.doesNotMatch(st, /killed0123456789/);
    assert.equal(st.match(/table ip pxe_flow_nat_/g)?.length, 1, st);
    await helper.unload();
    assert.equal(await nsState(), nsBefore);
  });

  it('takes msg.subnet and keeps the rules in force when it is not a subnet', async () => {
    await helper.load(natNode, flow({ redirect: false }));
    const n1 = helper.getNode('n1') as TestNode;
    const h1 = helper.getNode('h1') as RedNode;
    await nextMessage(h1);
    const out = nextMessage(h1);
    n1.receive({ subnet: '10.82.0.0/16' });
    const st = (await out).payload as NatState;
    assert.ok(st.rules.some((r) => r.includes('10.82.0.0/16')), st.rules.join('\n'));

    const err = new Promise<string>((resolve) => n1.once('call:error' as never, ((call: { args: unknown[] }) => resolve(String(call.args[0]))) as never));
    n1.receive({ subnet: '10.82.0.1/16' });
    assert.match(await err, /host bits set/);
    assert.match(await nsState(), /10\.82\.0\.0\/16/);
  });

  it('a subnet that is not a subnet: red status, a clear error, nothing applied', async () => {
    await helper.load(natNode, flow({ subnet: '192.168.81.7/24' }));
    const n1 = helper.getNode('n1') as TestNode;
    const status = await statusMatching(n1, (s) => s.fill === 'red');
    assert.equal(status.shape, 'ring');
    assert.equal(await nsState(), nsBefore);
  });

  it('lists the backends for the editor', async () => {
    await helper.load(natNode, flow({ subnet: '192.168.81.7/24' }));
    const res = await helper.request().get('/pxe-nat/backends').expect(200);
    assert.equal(res.body.ok, true);
    assert.equal(res.body.auto, 'nftables');
    assert.ok(res.body.available.includes('nftables'));
    const ifs = await helper.request().get('/pxe/interfaces').expect(200);
    assert.ok(Array.isArray(ifs.body));
  });
});
