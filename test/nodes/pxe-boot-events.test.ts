import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
// eslint-disable-next-line @typescript-eslint/no-require-imports -- Node-RED's own dependency (ws 7), no types here
const WebSocket = require('ws') as new (url: string) => { on(ev: string, fn: (...a: unknown[]) => void): void; send(s: string): void; close(): void };
import bootEventsNode from '../../nodes/pxe-boot-events';
import { bootBus, type BootSignal } from '../../nodes/lib/boot-events/bus';
import { bootMonitor, DEFAULT_STALL_MS, type BootList } from '../../nodes/lib/boot-events/live';
import type { NodeMessage } from '../../nodes/lib/red';
import { startBootRed, type BootRed } from '../browser/boot-red';

helper.init(require.resolve('node-red'));

const settle = async (got: unknown[], n: number): Promise<void> => {
  // Node-RED delivers messages asynchronously.
  for (let i = 0; i < 200 && got.length < n; i++) await new Promise((r) => setTimeout(r, 10));
};

describe('pxe-boot-events node in a Node-RED runtime', () => {
  before(() => helper.startServer());
  afterEach(async () => {
    await helper.unload();
    bootMonitor.reset();
  });
  after(() => helper.stopServer());

  it('turns signals from the serving nodes into one message per stage, with the timeline', async () => {
    await helper.load(bootEventsNode, [
      { id: 'b', type: 'pxe-boot-events', stallSeconds: 60, rootfsStep: 50, wires: [['h']] },
      { id: 'h', type: 'helper' },
    ]);
    const got: NodeMessage[] = [];
    helper.getNode('h').on('input', (m: NodeMessage) => got.push(m));
    const ip = '10.1.2.3';
    bootBus.publish({ source: 'dhcp', kind: 'ack', mac: 'AA:BB:CC:00:11:22', ip, arch: 'x64 UEFI', bootFile: 'snponly.efi', at: Date.now() });
    bootBus.publish({ source: 'tftp', kind: 'done', ip, file: 'snponly.efi', bytes: 1, size: 1, at: Date.now() });
    bootBus.publish({ source: 'http', kind: 'done', ip, file: 'arch/boot/x86_64/vmlinuz-linux', bytes: 1, size: 1, at: Date.now() });
    bootBus.publish({ source: 'http', kind: 'done', ip, file: 'arch/boot/x86_64/initramfs-linux.img', bytes: 1, size: 1, at: Date.now() });
    bootBus.publish({ source: 'http', kind: 'done', ip, file: 'arch/x86_64/airootfs.sfs', bytes: 10, size: 10, at: Date.now() });
    await settle(got, 6);
    assert.deepEqual(got.map((m) => m.topic), ['boot/dhcp', 'boot/loader', 'boot/kernel', 'boot/initrd', 'boot/rootfs', 'boot/complete']);
    const last = got.at(-1)!.payload as { mac: string; arch: string; kernel: string; timeline: unknown[]; time: string; bootId: string };
    assert.equal(last.mac, 'aa:bb:cc:00:11:22');
    assert.equal(last.arch, 'x64 UEFI');
    assert.equal(last.kernel, 'arch/boot/x86_64/vmlinuz-linux');
    assert.equal(last.timeline.length, 6);
    assert.ok(!Number.isNaN(Date.parse(last.time)));
    assert.ok(got.every((m) => (m.payload as { bootId: string }).bootId === last.bootId));
  });

  it('two nodes share the one tracker, each with its own rootfs step; the shortest stall time applies', async () => {
    await helper.load(bootEventsNode, [
      { id: 'a', type: 'pxe-boot-events', stallSeconds: 90, rootfsStep: 25, wires: [['ha']] },
      { id: 'b', type: 'pxe-boot-events', stallSeconds: 30, rootfsStep: 50, wires: [['hb']] },
      { id: 'ha', type: 'helper' },
      { id: 'hb', type: 'helper' },
    ]);
    assert.equal(bootMonitor.tracker.stallAfterMs, 30000);
    assert.equal(bootMonitor.subscriberCount, 2);
    const a: NodeMessage[] = [];
    const b: NodeMessage[] = [];
    helper.getNode('ha').on('input', (m: NodeMessage) => a.push(m));
    helper.getNode('hb').on('input', (m: NodeMessage) => b.push(m));
    const ip = '10.1.2.4';
    bootBus.publish({ source: 'dhcp', kind: 'ack', mac: '52:54:00:00:00:04', ip, at: Date.now() });
    for (let p = 0; p <= 100; p += 5) {
      bootBus.publish({ source: 'nfs', kind: p === 100 ? 'done' : 'progress', ip, file: 'arch/x86_64/airootfs.sfs', bytes: p, size: 100, at: Date.now() });
    }
    await settle(a, 7);
    await settle(b, 5);
    const percents = (ms: NodeMessage[]): unknown[] => ms.filter((m) => m.topic === 'boot/rootfs').map((m) => (m.payload as { percent: number }).percent);
    assert.deepEqual(percents(a), [0, 25, 50, 75, 100]);
    assert.deepEqual(percents(b), [0, 50, 100]);
    assert.equal(a.at(-1)!.topic, 'boot/complete');
    assert.equal(b.at(-1)!.topic, 'boot/complete');
  });

  it('reports a boot whose kernel is missing as stalled, with the stage and the TFTP error', async () => {
    await helper.load(bootEventsNode, [
      { id: 'b', type: 'pxe-boot-events', stallSeconds: 1, rootfsStep: 10, wires: [['h']] },
      { id: 'h', type: 'helper' },
    ]);
    const got: NodeMessage[] = [];
    helper.getNode('h').on('input', (m: NodeMessage) => got.push(m));
    const ip = '10.1.2.5';
    const at = Date.now();
    bootBus.publish({ source: 'dhcp', kind: 'ack', mac: '52:54:00:00:00:05', ip, bootFile: 'boot/syslinux/lpxelinux.0', at });
    bootBus.publish({ source: 'tftp', kind: 'done', ip, file: 'boot/syslinux/lpxelinux.0', bytes: 1, size: 1, at });
    bootBus.publish({ source: 'tftp', kind: 'error', ip, file: 'arch/boot/x86_64/vmlinuz-linux', bytes: 0, size: 0, at, error: 'File not found', notFound: true });
    for (let i = 0; i < 40 && !got.some((m) => m.topic === 'boot/stalled'); i++) await new Promise((r) => setTimeout(r, 100));
    const stalled = got.find((m) => m.topic === 'boot/stalled')!.payload as { stalledStage: string; error: { via: string; file: string; notFound: boolean } };
    assert.equal(stalled.stalledStage, 'kernel');
    assert.deepEqual([stalled.error.via, stalled.error.file, stalled.error.notFound], ['tftp', 'arch/boot/x86_64/vmlinuz-linux', true]);
  });

  it('stops listening when closed, and gives back its stall time', async () => {
    await helper.load(bootEventsNode, [{ id: 'b', type: 'pxe-boot-events', stallSeconds: 5, wires: [] }]);
    assert.equal(bootMonitor.subscriberCount, 1);
    assert.equal(bootMonitor.tracker.stallAfterMs, 5000);
    await helper.unload();
    assert.equal(bootMonitor.subscriberCount, 0);
    assert.equal(bootMonitor.tracker.stallAfterMs, DEFAULT_STALL_MS);
  });

  it('serves the sidebar: the list, one boot in detail, names, clear; boots outlive a redeploy', async () => {
    const flow = [{ id: 'b', type: 'pxe-boot-events', wires: [] }];
    await helper.load(bootEventsNode, flow);
    const ip = '10.1.2.6';
    bootBus.publish({ source: 'dhcp', kind: 'ack', mac: '52:54:00:00:00:06', ip, arch: 'x86 BIOS', at: Date.now() });
    bootBus.publish({ source: 'http', kind: 'done', ip, file: 'arch/x86_64/airootfs.sfs', bytes: 3, size: 3, at: Date.now() });
    let list = (await helper.request().get('/pxe/boots').expect(200)).body as BootList;
    assert.equal(list.boots.length, 1);
    assert.equal(list.boots[0]!.state, 'complete');
    assert.equal(list.boots[0]!.firmware, 'bios');
    // A redeploy: the nodes go, the runtime's tracker stays.
    await helper.unload();
    await helper.load(bootEventsNode, flow);
    list = (await helper.request().get('/pxe/boots').expect(200)).body as BootList;
    assert.equal(list.boots.length, 1, 'kept across the redeploy');
    const id = list.boots[0]!.id;
    const detail = (await helper.request().get(`/pxe/boots/${id}`).expect(200)).body as { timeline: unknown[]; files: unknown[] };
    assert.equal(detail.timeline.length, 3);
    await helper.request().get('/pxe/boots/nope').expect(404);
    await helper.request().post('/pxe/names').send({ mac: '52-54-00-00-00-06', name: 'bench 6' }).expect(200);
    await helper.request().post('/pxe/names').send({ mac: 'x', name: 'y' }).expect(400);
    const delta = (await helper.request().get('/pxe/boots').query({ since: list.v, epoch: list.epoch }).expect(200)).body as BootList;
    assert.equal(delta.full, false);
    assert.equal(delta.boots[0]!.name, 'bench 6');
    assert.deepEqual((await helper.request().post('/pxe/boots/clear').expect(200)).body, { cleared: 1 });
    assert.equal(((await helper.request().get('/pxe/boots').expect(200)).body as BootList).boots.length, 0);
  });
});

/**
 * The same view in a real Node-RED with adminAuth: the endpoints check pxe.read and pxe.write,
 * the comms notice carries nothing a user without pxe.read may not see, and the kept boots
 * survive a full redeploy and a restart of Node-RED.
 */
describe('the boot view in a real Node-RED (adminAuth, redeploy, restart)', { timeout: 180000 }, () => {
  const users = [
    { username: 'admin', password: 'admin-pw', permissions: '*' },
    { username: 'viewer', password: 'viewer-pw', permissions: 'read' },
    { username: 'stranger', password: 'stranger-pw', permissions: ['flows.read', 'status.read'] },
  ];
  let red: BootRed | undefined;
  const tokens: Record<string, string> = {};
  const MAC = '52:54:00:aa:bb:01';
  const IP = '10.77.0.5';

  async function api(user: string | null, method: string, p: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (user) headers.authorization = `Bearer ${tokens[user]}`;
    return fetch(`${red!.base}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  }
  async function login(): Promise<void> {
    for (const u of users) tokens[u.username] = await red!.token(u.username, u.password);
  }

  before(async () => {
    red = await startBootRed({ users, flow: [{ id: 'boot-events', type: 'pxe-boot-events', z: 'boot-test-tab', stallSeconds: 120, rootfsStep: 10, x: 120, y: 140, wires: [[]] }] });
    await login();
  });
  after(async () => {
    await red?.stop(true);
  });

  const signals = (at: number): BootSignal[] => [
    { source: 'dhcp', kind: 'ack', mac: MAC, ip: IP, arch: 'x86 BIOS', bootFile: 'boot/syslinux/lpxelinux.0', at },
    { source: 'tftp', kind: 'done', ip: IP, file: 'boot/syslinux/lpxelinux.0', bytes: 40000, size: 40000, at: at + 1 },
    { source: 'tftp', kind: 'start', ip: IP, file: 'arch/boot/x86_64/vmlinuz-linux', bytes: 0, size: 8000000, at: at + 2 },
  ];

  it('needs pxe.read to look and pxe.write to clear or name; a user without pxe.read gets nothing', async () => {
    await red!.inject(signals(Date.now()));
    // Node-RED answers a missing permission with 401, like a missing login.
    assert.equal((await api(null, 'GET', 'pxe/boots')).status, 401);
    assert.equal((await api('stranger', 'GET', 'pxe/boots')).status, 401);
    const r = await api('viewer', 'GET', 'pxe/boots');
    assert.equal(r.status, 200);
    const list = (await r.json()) as BootList;
    assert.equal(list.boots.length, 1);
    assert.equal(list.boots[0]!.mac, MAC);
    assert.equal(list.boots[0]!.transfer?.file, 'arch/boot/x86_64/vmlinuz-linux');
    assert.equal((await api('stranger', 'GET', `pxe/boots/${list.boots[0]!.id}`)).status, 401);
    assert.equal((await api('viewer', 'GET', `pxe/boots/${list.boots[0]!.id}`)).status, 200);
    assert.equal((await api('viewer', 'POST', 'pxe/boots/clear')).status, 401);
    assert.equal((await api('viewer', 'POST', 'pxe/names', { mac: MAC, name: 'nope' })).status, 401);
    assert.equal((await api('admin', 'POST', 'pxe/names', { mac: MAC, name: 'desk 1' })).status, 200);
  });

  it('the comms topic carries only a version: no MAC, no address, nothing but "changed"', async () => {
    const ws = new WebSocket(`${red!.base.replace(/^http/, 'ws')}comms`);
    const seen: { topic: string; data: unknown }[] = [];
    const raw: string[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.on('error', (e) => reject(e as Error));
      ws.on('open', () => ws.send(JSON.stringify({ auth: tokens.stranger })));
      ws.on('message', (d) => {
        const text = String(d);
        raw.push(text);
        const m = JSON.parse(text) as { auth?: string } | { topic: string; data: unknown }[];
        if (!Array.isArray(m) && m.auth === 'ok') {
          ws.send(JSON.stringify({ subscribe: 'pxe/#' }));
          resolve();
        }
        if (Array.isArray(m)) seen.push(...m);
      });
    });
    // Many changes in a burst: a handful of notices, each only {epoch, v}.
    const t0 = Date.now();
    for (let i = 0; i < 20; i++) {
      await red!.inject([{ source: 'tftp', kind: 'done', ip: IP, file: 'arch/boot/x86_64/vmlinuz-linux', bytes: 8000000, size: 8000000, at: Date.now() }]);
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 700));
    const elapsed = Date.now() - t0;
    ws.close();
    const ours = seen.filter((m) => m.topic === 'pxe/boots');
    assert.ok(ours.length >= 1, `notices: ${raw.join('\n')}`);
    assert.ok(ours.length <= Math.ceil(elapsed / 500) + 1, `at most 2 a second: ${ours.length} in ${elapsed} ms`);
    for (const m of ours) assert.deepEqual(Object.keys(m.data as object).sort(), ['epoch', 'v']);
    const all = raw.join('\n');
    assert.ok(!all.includes(MAC) && !all.includes(IP) && !all.includes('vmlinuz'), 'no boot data on the socket');
  });

  it('keeps the boots across a full redeploy and a restart of Node-RED (user dir)', async () => {
    const before = (await (await api('viewer', 'GET', 'pxe/boots')).json()) as BootList;
    const flows = (await (await api('admin', 'GET', 'flows')).json()) as unknown[];
    const dep = await fetch(`${red!.base}flows`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.admin}`, 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify(flows),
    });
    assert.equal(dep.status, 204, await dep.text());
    const afterDeploy = (await (await api('viewer', 'GET', 'pxe/boots')).json()) as BootList;
    assert.equal(afterDeploy.epoch, before.epoch, 'same runtime');
    assert.deepEqual(
      afterDeploy.boots.map((b) => [b.id, b.name]),
      [[before.boots[0]!.id, 'desk 1']],
    );

    const userDir = red!.userDir;
    await red!.stop();
    assert.ok(fs.existsSync(path.join(userDir, 'pxe-boot-events', 'boots.json')), 'written at exit');
    assert.ok(fs.existsSync(path.join(userDir, 'pxe-boot-events', 'names.json')));
    red = await startBootRed({ userDir, users });
    await login();
    const restarted = (await (await api('viewer', 'GET', 'pxe/boots')).json()) as BootList;
    assert.notEqual(restarted.epoch, before.epoch);
    assert.equal(restarted.boots.length, 1);
    const b = restarted.boots[0]!;
    assert.deepEqual([b.id, b.mac, b.name, b.firmware, b.stage], [before.boots[0]!.id, MAC, 'desk 1', 'bios', 'kernel']);
    // It was still booting when Node-RED stopped.
    assert.equal(b.state, 'stalled');
    assert.equal(b.interrupted, true);

    // Clear is kept too.
    assert.deepEqual(await (await api('admin', 'POST', 'pxe/boots/clear')).json(), { cleared: 1 });
    await red!.stop();
    red = await startBootRed({ userDir, users });
    await login();
    assert.equal(((await (await api('viewer', 'GET', 'pxe/boots')).json()) as BootList).boots.length, 0);
    assert.doesNotMatch(red!.log(), /\[error\]/);
  });
});
