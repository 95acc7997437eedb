/**
 * pxe-dhcp in a Node-RED runtime, for what needs no DHCP traffic: configuration errors become a
 * red status and a clear error, input messages are refused while not serving, close completes.
 * (Serving is tested inside the lab: test/net/dhcp-node.test.ts.)
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import dhcpNode from '../../nodes/pxe-dhcp';
import storeNode from '../../nodes/pxe-iso-store';
import { ensureFixtures, fixturePath } from '../fixtures/fixtures';
import type { NodeMessage, NodeStatus, RedNode } from '../../nodes/lib/red';
import { withLocale } from './node-helpers';

helper.init(require.resolve('node-red'));

type TestNode = RedNode & { receive(msg: NodeMessage): void };

function statusMatching(node: RedNode, pred: (s: NodeStatus) => boolean, timeoutMs = 5000): Promise<NodeStatus> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('status not reached')), timeoutMs);
    const on = (call: { args: [NodeStatus] }): void => {
      if (pred(call.args[0])) {
        clearTimeout(t);
        resolve(call.args[0]);
      }
    };
    node.on('call:status', on as never);
  });
}

function errorMatching(node: RedNode, re: RegExp, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no error matching ${re}`)), timeoutMs);
    node.on('call:error', ((call: { args: [unknown] }) => {
      const text = String(call.args[0]);
      if (re.test(text)) {
        clearTimeout(t);
        resolve(text);
      }
    }) as never);
  });
}

describe('pxe-dhcp node in a Node-RED runtime', () => {
  before(() => helper.startServer());
  afterEach(() => helper.unload());
  after(() => helper.stopServer());

  it('waits for a missing interface with a yellow status and a clear warning, refuses input, and closes promptly', async () => {
    const flow = [{ id: 'n1', type: 'pxe-dhcp', name: '', mode: 'proxy', iface: 'pxelab-none0', rules: [] }];
    await helper.load([withLocale, dhcpNode], flow);
    const n1 = helper.getNode('n1') as TestNode;
    const status = statusMatching(n1, (s) => s.fill === 'yellow' && /waiting for/.test(s.text ?? ''));
    const warned = new Promise<string>((resolve) =>
      n1.on('call:warn', ((call: { args: [unknown] }) => resolve(String(call.args[0]))) as never),
    );
    assert.match(await warned, /network interface "pxelab-none0" does not exist; waiting/);
    assert.equal((await status).shape, 'ring');
    const inputErr = errorMatching(n1, /not.running/);
    n1.receive({ topic: 'leases' });
    await inputErr;
    const t0 = Date.now();
    await helper.unload();
    assert.ok(Date.now() - t0 < 3000, 'close does not wait for the interface');
  });

  it('refuses a bad boot rule and a half-given pool at deploy time', async () => {
    const flow = [
      { id: 'n1', type: 'pxe-dhcp', mode: 'proxy', iface: 'lo', rules: [{ match: 'mac', value: 'zz:zz', ipxe: 'any' }] },
      { id: 'n2', type: 'pxe-dhcp', mode: 'full', iface: 'lo', poolStart: '10.0.0.5', poolEnd: '', rules: [] },
      { id: 'n3', type: 'pxe-dhcp', mode: 'full', iface: 'lo', rules: [{ match: 'any', options: '211 nonsense 4' }] },
    ];
    await helper.load([withLocale, dhcpNode], flow);
    const e1 = errorMatching(helper.getNode('n1'), /MAC/);
    const e2 = errorMatching(helper.getNode('n2'), /both the first and the last/);
    // Worded from the locale (pxe-dhcp.config.*), naming the rule, with a red "bad setting" dot.
    const e3 = errorMatching(helper.getNode('n3'), /^boot rule 1: extra option line 1 "211 nonsense 4": expected "code kind value"/);
    const s3 = statusMatching(helper.getNode('n3'), (s) => s.fill === 'red' && s.text === 'bad setting');
    await Promise.all([e1, e2, e3, s3]);
  });

  it('unattended rules: refuses a menu choice without an entry at deploy, and offers the store\'s entries to the editor', async () => {
    const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-dhcp-menus-'));
    helper.settings({ userDir });
    try {
      const iso = fixturePath(ensureFixtures().isos.current!.file);
      const flow = [
        { id: 's1', type: 'pxe-iso-store', path: iso },
        { id: 'n1', type: 'pxe-dhcp', mode: 'proxy', iface: 'pxelab-none2', store: 's1', rules: [{ name: 'lab', match: 'arch', value: '0', ipxe: 'any', menu: 'now', entry: '' }] },
        { id: 'n2', type: 'pxe-dhcp', mode: 'proxy', iface: 'pxelab-none3', store: 's1', rules: [{ name: 'uefi', match: 'arch', value: '7,9', ipxe: 'any', menu: 'now', entry: 'arch_http' }] },
      ];
      await helper.load([withLocale, storeNode, dhcpNode], flow);
      // A menu on a UEFI rule would hand UEFI clients a BIOS loader: ignored, with a warning.
      const ignored = new Promise<string>((resolve) =>
        helper.getNode('n2').on('call:warn', ((call: { args: [unknown] }) => {
          if (/unattended-boot menu/.test(String(call.args[0]))) resolve(String(call.args[0]));
        }) as never),
      );
      await errorMatching(helper.getNode('n1'), /boot rule "lab": choose the menu entry/);
      assert.equal(await ignored, 'boot rule "uefi": the unattended-boot menu is for BIOS (pxelinux) clients; this rule\'s clients keep their boot file');
      const res = await helper.request().get('/pxe-iso-store/menu-entries').query({ store: 's1' }).expect(200);
      assert.deepEqual(
        (res.body.entries as { label: string }[]).map((e) => e.label),
        ['arch_nbd', 'arch_nfs', 'arch_http', 'memtest'],
      );
      // What fills a BIOS rule's empty fields, for the editor's "advanced" line.
      const dhcp = ensureFixtures().isos.current!.dhcp;
      assert.deepEqual(res.body.bios, { bootFile: dhcp.bootFile, configFile: dhcp.option209, pathPrefix: dhcp.option210, from: 'iso', layout: 'boot-syslinux' });
      const none = await helper.request().get('/pxe-iso-store/menu-entries').query({ store: 'nope' }).expect(200);
      assert.deepEqual(none.body, { ok: false, entries: [], bios: null });
      const noStore = await helper.request().get('/pxe-iso-store/menu-entries').expect(200);
      assert.deepEqual(noStore.body.bios, { bootFile: '/arch/boot/syslinux/lpxelinux.0', configFile: 'boot/syslinux/archiso.cfg', pathPrefix: '/arch/', from: 'wiki' });
    } finally {
      await helper.unload();
      helper.settings({});
      fs.rmSync(userDir, { recursive: true, force: true });
    }
  });
});
