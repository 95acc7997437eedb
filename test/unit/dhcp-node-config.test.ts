import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DHCP_CONFIG_ERROR_KEYS, DhcpConfigError, kernelHttpOf, menuApplies, menuChoiceOf, parseExtraOptions, toBootRules, toServiceConfig } from '../../nodes/lib/dhcp/node-config';
import { defaultRange } from '../../nodes/lib/dhcp/service';

describe('pxe-dhcp settings', () => {
  it('defaults to a BIOS rule with the Arch wiki settings when no rules are given', () => {
    assert.deepEqual(toBootRules([]), [
      {
        name: 'BIOS',
        match: { arch: [0] },
        bootFile: '/arch/boot/syslinux/lpxelinux.0',
        configFile: 'boot/syslinux/archiso.cfg',
        pathPrefix: '/arch/',
      },
    ]);
  });

  it('fills only the empty fields of a BIOS rule, from detected files when given', () => {
    const [r] = toBootRules([{ match: 'arch', value: '0', bootFile: 'my/lpxelinux.0', ipxe: 'no' }], {
      bootFile: 'x',
      configFile: 'detected.cfg',
      pathPrefix: '/iso/',
    });
    assert.deepEqual(r, { match: { arch: [0], ipxe: false }, bootFile: 'my/lpxelinux.0', configFile: 'detected.cfg', pathPrefix: '/iso/' });
    const [uefi] = toBootRules([{ match: 'arch', value: '7, 9' }]);
    assert.deepEqual(uefi, { match: { arch: [7, 9] } }, 'non-BIOS rules get no defaults');
  });

  it('converts every match kind and the extra options', () => {
    const rules = toBootRules([
      { match: 'ipxe', bootFile: 'http://x/boot.ipxe' },
      { match: 'mac', value: 'b8:27:eb, dc-a6-32' },
      { match: 'vendor', value: 'PXEClient:Arch:00011' },
      { match: 'userclass', value: 'foo' },
      { match: 'raspberrypi' },
      { match: 'any', options: '# comment\n211 u32 30\n3 ips 10.0.0.1 10.0.0.2' },
    ]);
    assert.deepEqual(
      rules.map((r) => r.match),
      [{ ipxe: true }, { mac: ['b8:27:eb', 'dc-a6-32'] }, { vendorClass: ['PXEClient:Arch:00011'] }, { userClass: ['foo'] }, { raspberryPi: true }, {}],
    );
    assert.equal(rules[4]!.raspberryPi, true);
    assert.deepEqual(rules[5]!.options, [
      { code: 211, kind: 'u32', value: '30' },
      { code: 3, kind: 'ips', value: '10.0.0.1 10.0.0.2' },
    ]);
    assert.throws(() => parseExtraOptions('abc'), /code kind value/);
    assert.throws(() => toBootRules([{ match: 'arch', value: 'x86' }]), /not a number/);
  });

  it('builds the service config and checks it', () => {
    const cfg = toServiceConfig(
      { mode: 'full', iface: 'eth1', poolStart: '192.168.0.50', poolEnd: '192.168.0.150', router: '192.168.0.1', dns: '1.1.1.1, 9.9.9.9', leaseTime: '7200', reservations: [{ mac: 'b8:27:eb:00:00:01', ip: '192.168.0.10', hostname: 'pi' }] },
      { leaseFile: '/tmp/x.jsonl' },
    );
    assert.equal(cfg.mode, 'full');
    assert.deepEqual(cfg.pool, { start: '192.168.0.50', end: '192.168.0.150', router: ['192.168.0.1'], dns: ['1.1.1.1', '9.9.9.9'], domain: undefined });
    assert.equal(cfg.leaseTime, 7200);
    assert.equal(cfg.leaseFile, '/tmp/x.jsonl');
    assert.equal(cfg.authoritative, true);
    assert.equal(toServiceConfig({ iface: 'eth0' }).mode, 'proxy');
    assert.throws(() => toServiceConfig({ iface: '' }), /interface/);
    assert.throws(() => toServiceConfig({ iface: 'eth0', leaseTime: 5 }), /lease time/);
    assert.deepEqual(defaultRange('192.168.0.1', 24), { start: '192.168.0.64', end: '192.168.0.192' });
  });

  it("reads a rule's unattended-boot choice, and refuses one it cannot honour", () => {
    assert.equal(menuChoiceOf({}, 'r'), null);
    assert.equal(menuChoiceOf({ menu: 'iso', entry: 'arch_nfs' }, 'r'), null);
    assert.deepEqual(menuChoiceOf({ menu: 'now', entry: ' arch_nfs ', kernelArgs: ' copytoram ' }, 'r'), { choice: { mode: 'now', entry: 'arch_nfs' }, extraArgs: 'copytoram' });
    assert.deepEqual(menuChoiceOf({ menu: 'timeout', entry: 'arch_http', menuSeconds: '3' }, 'r'), { choice: { mode: 'timeout', entry: 'arch_http', seconds: 3 } });
    assert.throws(() => menuChoiceOf({ menu: 'now' }, 'rule "x"'), /rule "x": choose the menu entry/);
    assert.throws(() => menuChoiceOf({ menu: 'timeout', entry: 'a', menuSeconds: 0 }, 'r'), /1 to 3600 seconds/);
    assert.throws(() => menuChoiceOf({ menu: 'later', entry: 'a' }, 'r'), /unknown menu choice/);
  });

  it('offers the unattended-boot menu to rules whose clients may run pxelinux only', () => {
    const applies = toBootRules([
      { match: 'arch', value: '0' },
      { match: 'any' },
      { match: 'mac', value: '52:54:00' },
      { match: 'arch', value: '0, 7' },
      { match: 'arch', value: '7,9' },
      { match: 'arch', value: '11' },
      { match: 'httpboot' },
      { match: 'ipxe' },
      { match: 'raspberrypi' },
      { match: 'arch', value: '0', ipxe: 'yes' },
    ]).map(menuApplies);
    assert.deepEqual(applies, [true, true, true, true, false, false, false, false, false, false]);
  });

  it('names every bad setting by a locale key whose English text is the error message', () => {
    const en = (JSON.parse(fs.readFileSync(path.join(__dirname, '../../nodes/locales/en-US/pxe-dhcp.json'), 'utf8')) as { 'pxe-dhcp': { config: Record<string, string> } })['pxe-dhcp'].config;
    const caught = (f: () => unknown): DhcpConfigError => {
      try {
        f();
      } catch (e) {
        assert.ok(e instanceof DhcpConfigError, String(e));
        return e;
      }
      assert.fail('no error');
    };
    const errors = [
      caught(() => toBootRules([{ name: 'lab', options: '66 string x\nbad line' }])),
      caught(() => parseExtraOptions('1 nope 2', 'boot/override for aa:bb')),
      caught(() => toBootRules([{ match: 'arch', value: 'x86' }])),
      caught(() => toBootRules([{ match: 'nope' as never }])),
      caught(() => menuChoiceOf({ menu: 'now' }, 'r')),
      caught(() => menuChoiceOf({ menu: 'timeout', entry: 'a', menuSeconds: 0 }, 'r')),
      caught(() => menuChoiceOf({ menu: 'later', entry: 'a' }, 'r')),
      caught(() => kernelHttpOf({ kernelHttp: 'https://x/' }, 'r')),
      caught(() => toServiceConfig({ iface: '' })),
      caught(() => toServiceConfig({ iface: 'eth0', leaseTime: 5 })),
      caught(() => toServiceConfig({ iface: 'eth0', mode: 'full', poolStart: '10.0.0.2' })),
    ];
    assert.deepEqual([...new Set(errors.map((e) => e.key))].sort(), [...DHCP_CONFIG_ERROR_KEYS].sort(), 'every key is exercised');
    for (const e of errors) {
      const text = en[e.key];
      assert.ok(text, `pxe-dhcp.config.${e.key} has a text`);
      assert.equal(text.replace(/__(\w+)__/g, (_, k: string) => String(e.subs[k])), e.message);
    }
    assert.equal(errors[0]!.message, 'boot rule "lab": extra option line 2 "bad line": expected "code kind value", kind one of ' + errors[0]!.subs.kinds);
  });
});
