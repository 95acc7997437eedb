/**
 * Full mode in the lab with busybox udhcpc dressed as UEFI HTTP Boot firmware (option 60
 * "HTTPClient:Arch:00016:UNDI:003001", option 93 = 16, as edk2 HttpBootDxe sends them), and as PXE
 * firmware: the HTTP Boot client gets its lease, option 60 "HTTPClient" and the loader's URL, and
 * no TFTP server option; the PXE client on the same rules gets the TFTP path.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable, type Netns } from '../lab/netns';
import { ServerProc } from './dhcp-lab';

const skip = labAvailable();

describe('DHCP full mode: a UEFI HTTP Boot client (busybox udhcpc)', { skip: skip ?? false }, () => {
  let lab: Lab;
  let srv: Netns;
  let cli: Netns;
  let srvIf: string;
  let cliIf: string;
  let tmp: string;
  let server: ServerProc;

  before(async () => {
    lab = Lab.create();
    srv = lab.netns('srv');
    cli = lab.netns('cli');
    ({ a: srvIf, b: cliIf } = lab.veth(srv, '10.63.0.1/24', cli, null));
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-dhcp-httpboot-'));
    server = ServerProc.start(srv, {
      mode: 'full',
      iface: srvIf,
      pool: { start: '10.63.0.100', end: '10.63.0.199' },
      leaseTime: 120,
      leaseFile: path.join(tmp, 'leases.jsonl'),
      probeMs: 300,
      rules: [
        { name: 'http', match: { httpBoot: true, arch: [16], ipxe: false }, bootFile: 'http://{next-server}/snponly.efi' },
        { name: 'pxe', match: { arch: [7, 9] }, bootFile: 'snponly.efi' },
      ],
    });
    const r = await server.ready();
    assert.ok(r.listening, JSON.stringify(r));
  });
  after(async () => {
    await server?.stop();
    await lab.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** One udhcpc run with vendor class `vc` and arch `arch`; what its script saw when bound. */
  async function lease(vc: string, arch: number, mac: string): Promise<Record<string, string>> {
    const s = path.join(tmp, 'udhcpc.sh');
    // udhcpc exports option 60 of the reply as $vendor.
    fs.writeFileSync(s, '#!/bin/sh\necho "EV $1 ip=$ip boot=$boot_file bootfile=$bootfile siaddr=$siaddr tftp=$tftp vendor=$vendor"\nexit 0\n', { mode: 0o755 });
    cli.ip('link', 'set', cliIf, 'address', mac);
    const archHex = arch.toString(16).padStart(4, '0');
    const r = await cli.run('/bin/busybox', ['udhcpc', '-i', cliIf, '-n', '-q', '-f', '-t', '4', '-T', '1', '-V', vc, '-x', `0x5d:${archHex}`, '-O', '60', '-O', '66', '-O', '67', '-s', s], { timeoutMs: 20000 });
    const m = /EV bound (.*)/.exec(r.stdout);
    assert.ok(m, r.stdout + r.stderr);
    return Object.fromEntries(m[1]!.split(' ').map((x) => x.split('=') as [string, string]));
  }

  it('HTTPClient, arch 16: a lease, option 60 HTTPClient, the loader URL in file and option 67, no option 66', async () => {
    const kv = await lease('HTTPClient:Arch:00016:UNDI:003001', 16, '52:54:00:63:00:16');
    assert.match(kv.ip!, /^10\.63\.0\.1\d\d$/);
    assert.equal(kv.boot, 'http://10.63.0.1/snponly.efi');
    assert.equal(kv.bootfile, 'http://10.63.0.1/snponly.efi');
    assert.equal(kv.vendor, 'HTTPClient');
    assert.equal(kv.siaddr, '10.63.0.1');
    assert.equal(kv.tftp, '');
    const offer = server.events().find((e) => e.type === 'offer' && e.mac === '52:54:00:63:00:16');
    assert.equal(offer?.bootRule, 'http');
    assert.equal(offer?.archName, 'x64 UEFI HTTP');
  });

  it('PXEClient, arch 7, same rules: the TFTP path, option 60 PXEClient, option 66', async () => {
    const kv = await lease('PXEClient:Arch:00007:UNDI:003001', 7, '52:54:00:63:00:07');
    assert.equal(kv.boot, 'snponly.efi');
    assert.equal(kv.vendor, 'PXEClient');
    assert.equal(kv.tftp, '10.63.0.1');
  });
});
