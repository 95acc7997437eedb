/**
 * UEFI HTTP Boot clients against the shipped "Arch PXE (UEFI via iPXE)" example's boot rules, in
 * proxy and full mode: which answer each kind of client gets.
 *
 * What the answers are checked against:
 *  - edk2 HttpBootDxe (HttpBootDhcp4.c, edk2-stable202211 as in Debian's ovmf): it sends option 60
 *    "HTTPClient:Arch:000NN:UNDI:…" and option 93 = 16 (x64); it takes an offer as an HTTP offer
 *    only when option 60 starts with "HTTPClient" and a boot file URI is in option 67 or the file
 *    field; an offer with yiaddr 0 is a proxy offer, used beside another server's address.
 *  - smee (tinkerbell, internal/dhcp/dhcp.go): the client type is HTTPClient when option 60
 *    starts with "HTTPClient", else PXEClient; the reply's option 60 names that type; an
 *    HTTPClient's boot file is an http:// URL of the iPXE binary for its arch (x64 for 16, ARM for
 *    19); a user-class "iPXE" client gets a different answer than the firmware.
 *  - dnsmasq(8): `dhcp-match=set:<tag>,option:client-arch,16` matches the arch in option 93;
 *    the HTTPClient answer is not automatic there (it needs `dhcp-option-force=60,HTTPClient`),
 *    and its proxy mode answers PXEClient vendor classes only. Ours answers HTTP Boot clients in
 *    proxy mode as well, since edk2 accepts proxy offers.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { BootRules, httpBootUrl } from '../../nodes/lib/dhcp/boot-rules';
import { describeClient } from '../../nodes/lib/dhcp/client';
import { decode, type DhcpPacket } from '../../nodes/lib/dhcp/codec';
import { FullResponder } from '../../nodes/lib/dhcp/full';
import { MemoryLeaseLog } from '../../nodes/lib/dhcp/lease-store';
import { toBootRules, type RuleDef } from '../../nodes/lib/dhcp/node-config';
import { getMessageType, getPxeVendorOptions, getString, MessageType as T } from '../../nodes/lib/dhcp/options';
import { AddressPool } from '../../nodes/lib/dhcp/address-pool';
import { ProxyResponder } from '../../nodes/lib/dhcp/proxy';
import { DhcpMessageLoop } from '../../nodes/lib/dhcp/message-loop';
import { firmwareOf, nextFirmware } from '../../nodes/lib/boot-events/firmware';
import { BootTracker } from '../../nodes/lib/boot-events/tracker';
import { FakeTransport, request, tick } from './dhcp-helpers';

const SERVER = '10.50.0.1';

function exampleRules(): RuleDef[] {
  const file = path.join(__dirname, '..', '..', 'examples', 'Arch PXE (UEFI via iPXE).json');
  const flow = JSON.parse(fs.readFileSync(file, 'utf8')) as { type: string; rules?: RuleDef[] }[];
  return flow.find((n) => n.type === 'pxe-dhcp')!.rules!;
}

interface Client {
  label: string;
  vendorClass?: string;
  arch?: number;
  userClass?: string;
}

const vc = (kind: 'PXEClient' | 'HTTPClient', arch: number): string => `${kind}:Arch:${String(arch).padStart(5, '0')}:UNDI:003001`;

/** What a client should be told: the boot file, option 60, whether option 66 and 43 appear. */
interface Expect {
  bootFile: string | null;
  vendorClass?: 'PXEClient' | 'HTTPClient';
  tftpServer?: boolean;
  pxeOption43?: boolean;
}

const BIOS_LOADER = '/arch/boot/syslinux/lpxelinux.0';
const SCRIPT = `http://${SERVER}/boot.ipxe`;
const SNP_URL = `http://${SERVER}/snponly.efi`;

/** The matrix: client → answer, with the example's rules. */
const MATRIX: [Client, Expect][] = [
  [{ label: 'PXE BIOS (arch 0)', vendorClass: vc('PXEClient', 0), arch: 0 }, { bootFile: BIOS_LOADER, vendorClass: 'PXEClient', tftpServer: true, pxeOption43: true }],
  [{ label: 'PXE x86 UEFI (arch 6)', vendorClass: vc('PXEClient', 6), arch: 6 }, { bootFile: null }],
  [{ label: 'PXE x64 UEFI (arch 7)', vendorClass: vc('PXEClient', 7), arch: 7 }, { bootFile: 'snponly.efi', vendorClass: 'PXEClient', tftpServer: true, pxeOption43: true }],
  [{ label: 'PXE x64 UEFI (arch 9)', vendorClass: vc('PXEClient', 9), arch: 9 }, { bootFile: 'snponly.efi', vendorClass: 'PXEClient', tftpServer: true, pxeOption43: true }],
  [{ label: 'PXE ARM32 UEFI (arch 10)', vendorClass: vc('PXEClient', 10), arch: 10 }, { bootFile: null }],
  [{ label: 'PXE ARM64 UEFI (arch 11)', vendorClass: vc('PXEClient', 11), arch: 11 }, { bootFile: null }],
  // The example loads the x64 snponly.efi: ARM64 HTTP Boot firmware gets no boot file from it.
  [{ label: 'HTTP Boot x64 (arch 16)', vendorClass: vc('HTTPClient', 16), arch: 16 }, { bootFile: SNP_URL, vendorClass: 'HTTPClient', tftpServer: false, pxeOption43: false }],
  [{ label: 'HTTP Boot ARM64 (arch 19)', vendorClass: vc('HTTPClient', 19), arch: 19 }, { bootFile: null }],
  // The arch from the vendor class alone, as with firmware that omits option 93.
  [{ label: 'HTTP Boot x64, no option 93', vendorClass: vc('HTTPClient', 16) }, { bootFile: SNP_URL, vendorClass: 'HTTPClient', tftpServer: false, pxeOption43: false }],
  [{ label: 'iPXE (user class) on x64 UEFI', vendorClass: vc('PXEClient', 7), arch: 7, userClass: 'iPXE' }, { bootFile: SCRIPT, vendorClass: 'PXEClient', tftpServer: true, pxeOption43: true }],
  [{ label: 'iPXE (user class) on BIOS', vendorClass: vc('PXEClient', 0), arch: 0, userClass: 'iPXE' }, { bootFile: SCRIPT, vendorClass: 'PXEClient', tftpServer: true, pxeOption43: true }],
  [{ label: 'plain DHCP client', arch: undefined }, { bootFile: null }],
];

function checkBoot(p: DhcpPacket, e: Expect, label: string): void {
  assert.equal(getString(p.options, 67), e.bootFile, `${label}: option 67`);
  if (e.bootFile === null) {
    // Full mode names PXE clients' replies PXEClient regardless; HTTPClient would promise a URL.
    assert.notEqual(getString(p.options, 60), 'HTTPClient', `${label}: no option 60 HTTPClient without a boot file`);
    return;
  }
  if (Buffer.byteLength(e.bootFile) < 128) assert.equal(p.file, e.bootFile, `${label}: file field`);
  assert.equal(p.siaddr, SERVER, `${label}: siaddr`);
  assert.equal(getString(p.options, 60), e.vendorClass, `${label}: option 60`);
  assert.equal(p.options.has(66), e.tftpServer, `${label}: option 66`);
  assert.equal(getPxeVendorOptions(p.options) !== null, e.pxeOption43, `${label}: option 43`);
}

function proxySetup() {
  const t = new FakeTransport();
  const server = new DhcpMessageLoop(t, new ProxyResponder({ serverIp: SERVER, rules: new BootRules(toBootRules(exampleRules())) }));
  return { t, server };
}

function fullSetup() {
  const log = new MemoryLeaseLog();
  const pool = new AddressPool([{ network: '10.50.0.0/24', rangeStart: '10.50.0.100', rangeEnd: '10.50.0.150' }], [], log.state, { serverIps: [SERVER] });
  const t = new FakeTransport();
  const responder = new FullResponder({ serverIp: SERVER, pool, log, rules: new BootRules(toBootRules(exampleRules())), leaseTime: 600, authoritative: true });
  const server = new DhcpMessageLoop(t, responder);
  server.on('error', (e) => assert.fail(e));
  return { t, server };
}

describe('UEFI HTTP Boot: the client matrix with the UEFI example rules', () => {
  it('recognises HTTPClient vendor classes, and takes the arch from them when option 93 is missing', () => {
    const c = describeClient(decode(request({ type: T.DISCOVER, vendorClass: vc('HTTPClient', 16) })));
    assert.equal(c.isHttpBoot, true);
    assert.equal(c.isPxe, false);
    assert.equal(c.arch, 16);
    const p = describeClient(decode(request({ type: T.DISCOVER, vendorClass: vc('PXEClient', 7), arch: 7 })));
    assert.deepEqual([p.isHttpBoot, p.isPxe], [false, true]);
    // A vendor class that only contains the word is not an HTTP Boot client (prefix, as smee).
    assert.equal(describeClient(decode(request({ type: T.DISCOVER, vendorClass: 'MSFT HTTPClient' }))).isHttpBoot, false);
  });

  it('proxy mode: each client kind gets the answer the matrix says (none where no rule matches)', async () => {
    const s = proxySetup();
    let xid = 1;
    for (const [c, e] of MATRIX) {
      const n = s.t.sent.length;
      s.t.deliver({ buf: request({ type: T.DISCOVER, xid: xid++, vendorClass: c.vendorClass, arch: c.arch, userClass: c.userClass }) });
      await tick(10);
      if (e.bootFile === null) {
        assert.equal(s.t.sent.length, n, `${c.label}: no proxy offer`);
        continue;
      }
      const [offer] = (await s.t.waitSent(n + 1)).slice(n);
      assert.equal(getMessageType(offer!.packet.options), T.OFFER, c.label);
      assert.equal(offer!.packet.yiaddr, '0.0.0.0', `${c.label}: a proxy offer carries no address`);
      checkBoot(offer!.packet, e, c.label);
    }
  });

  it('proxy mode: an HTTP Boot client\'s REQUEST to the address server gets no answer from us', async () => {
    const s = proxySetup();
    s.t.deliver({ buf: request({ type: T.REQUEST, vendorClass: vc('HTTPClient', 16), arch: 16, requested: '10.50.0.170', serverId: '10.50.0.2' }) });
    await tick(30);
    assert.equal(s.t.sent.length, 0);
  });

  it('full mode: every client gets an address; OFFER and ACK carry the matrix\'s boot answer', async () => {
    const s = fullSetup();
    let i = 0;
    for (const [c, e] of MATRIX) {
      const mac = `52:54:00:50:00:${(16 + i).toString(16)}`;
      const xid = 100 + i++;
      const base = { mac, xid, vendorClass: c.vendorClass, arch: c.arch, userClass: c.userClass };
      const n = s.t.sent.length;
      s.t.deliver({ buf: request({ type: T.DISCOVER, ...base }) });
      const offer = (await s.t.waitSent(n + 1))[n]!.packet;
      assert.equal(getMessageType(offer.options), T.OFFER, c.label);
      assert.notEqual(offer.yiaddr, '0.0.0.0', `${c.label}: an address`);
      checkBoot(offer, e, `${c.label} (offer)`);
      s.t.deliver({ buf: request({ type: T.REQUEST, ...base, requested: offer.yiaddr, serverId: SERVER }) });
      const ack = (await s.t.waitSent(n + 2))[n + 1]!.packet;
      assert.equal(getMessageType(ack.options), T.ACK, c.label);
      assert.equal(ack.yiaddr, offer.yiaddr);
      checkBoot(ack, e, `${c.label} (ack)`);
    }
  });
});

describe('UEFI HTTP Boot rules', () => {
  it('a relative boot file becomes a URL on the next-server; URLs stay as given', () => {
    assert.equal(httpBootUrl('snponly.efi', '10.0.0.1'), 'http://10.0.0.1/snponly.efi');
    assert.equal(httpBootUrl('/efi\\boot\\bootx64.efi', '10.0.0.1'), 'http://10.0.0.1/efi/boot/bootx64.efi');
    assert.equal(httpBootUrl('http://10.0.0.9:8080/x.efi', '10.0.0.1'), 'http://10.0.0.9:8080/x.efi');
    const rules = new BootRules(toBootRules([{ name: 'http', match: 'httpboot', value: '', ipxe: 'no', bootFile: 'ipxe.efi', nextServer: '10.0.0.7' }]));
    const s = new FakeTransport();
    const server = new DhcpMessageLoop(s, new ProxyResponder({ serverIp: SERVER, rules }));
    s.deliver({ buf: request({ type: T.DISCOVER, vendorClass: vc('HTTPClient', 19), arch: 19 }) });
    return s.waitSent(1).then(([o]) => {
      assert.equal(getString(o!.packet.options, 67), 'http://10.0.0.7/ipxe.efi');
      assert.equal(o!.packet.siaddr, '10.0.0.7');
      void server;
    });
  });

  it('the editor\'s "UEFI HTTP Boot" match: HTTP Boot clients only, narrowed by optional arch numbers', () => {
    assert.deepEqual(toBootRules([{ match: 'httpboot', value: '16' }])[0]!.match, { httpBoot: true, arch: [16] });
    assert.deepEqual(toBootRules([{ match: 'httpboot', value: '' }])[0]!.match, { httpBoot: true });
    assert.throws(() => toBootRules([{ name: 'x', match: 'httpboot', value: 'x64' }]), /boot rule "x": architecture "x64" is not a number/);
    // A PXE rule on the same arch number does not catch HTTP Boot clients, nor the reverse.
    const rules = new BootRules(toBootRules([{ name: 'http', match: 'httpboot' }, { name: 'pxe', match: 'vendor', value: 'PXEClient' }]));
    const pick = (v: string, arch: number): string | undefined => rules.select(describeClient(decode(request({ type: T.DISCOVER, vendorClass: v, arch }))))?.source;
    assert.equal(pick(vc('HTTPClient', 16), 16), 'http');
    assert.equal(pick(vc('PXEClient', 16), 16), 'pxe');
  });
});

describe('boot events: firmware kind "UEFI HTTP"', () => {
  it('is told by the HTTPClient vendor class or an HTTP arch number', () => {
    assert.equal(firmwareOf({ vendorClass: vc('HTTPClient', 16) }), 'uefi-http');
    assert.equal(firmwareOf({ arch: 'x64 UEFI HTTP' }), 'uefi-http');
    assert.equal(firmwareOf({ arch: 'arch 19' }), 'uefi-http');
    assert.equal(firmwareOf({ vendorClass: vc('PXEClient', 7) }), 'uefi-x64');
  });

  it('stays when the iPXE it loaded asks DHCP again as a PXE client', () => {
    assert.equal(nextFirmware('uefi-http', 'uefi-x64'), 'uefi-http');
    assert.equal(nextFirmware(undefined, 'uefi-http'), 'uefi-http');
    assert.equal(nextFirmware('uefi-x64', 'bios'), 'bios');
    assert.equal(nextFirmware('bios', undefined), 'bios');
  });

  it('a UEFI HTTP Boot timeline: boot/loader for the HTTP fetch of snponly.efi, firmware uefi-http throughout', () => {
    const t = new BootTracker({ stallAfterMs: 60000, rootfsStep: 50 });
    const mac = '52:54:00:50:00:99';
    const ip = '10.50.0.120';
    const http = (file: string, at: number) => ({ source: 'http' as const, kind: 'done' as const, ip, file, bytes: 100, size: 100, at });
    const events = [
      { source: 'dhcp' as const, kind: 'ack' as const, mac, ip, arch: 'x64 UEFI HTTP', vendorClass: vc('HTTPClient', 16), bootFile: SNP_URL, at: 1 },
      http('snponly.efi', 2),
      // iPXE asks again, as a PXE client with arch 7 and user class iPXE.
      { source: 'dhcp' as const, kind: 'ack' as const, mac, ip, arch: 'x64 UEFI', vendorClass: vc('PXEClient', 7), userClass: ['iPXE'], bootFile: SCRIPT, at: 3 },
      http('boot.ipxe', 4),
      http('arch/boot/x86_64/vmlinuz-linux', 5),
    ].flatMap((sig) => t.handle(sig));
    assert.deepEqual(events.map((e) => e.stage), ['dhcp', 'loader', 'kernel']);
    const loader = events.find((e) => e.stage === 'loader')!;
    assert.equal(loader.file, 'snponly.efi');
    assert.equal(loader.client.firmware, 'uefi-http');
    assert.equal(events.at(-1)!.client.firmware, 'uefi-http');
  });
});
