/**
 * The README's picture, docs/arch-pxe-flow.png: the "Arch PXE" example running. As root:
 *
 *     node scripts/build.mjs && node --import tsx test/browser/readme-picture.ts
 *
 * The example is deployed as a user would deploy it (tab enabled, the fixture ISO in its store,
 * DHCP on an interface) in a lab namespace of its own: a bridge, Node-RED serving on it, and
 * chromium in the same namespace (nothing binds or broadcasts on this host's interfaces). One
 * client boots as pxelinux would, with real packets from a second namespace: busybox udhcpc asks
 * for a lease as a BIOS PXE ROM (option 60 PXEClient, option 93 = 0), then curl fetches the boot
 * file, the menu, the kernel and the initramfs over TFTP and the root image over HTTP. The picture
 * is taken once every serving node's status dot is lit and the PXE sidebar shows that client
 * booted; it fails (and writes nothing to docs/) otherwise.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureFixtures, fixturePath, repoRoot } from '../fixtures/fixtures';
import { Lab, labAvailable } from '../lab/netns';
import { startBootRed, type BootRed } from './boot-red';
import { CHROMIUM, openEditor, type Opened } from './editor-page';

type FlowNode = Record<string, unknown> & { id: string; type: string };

const MAC = '52:54:00:a7:c1:01';
const SERVER = '10.124.0.1';
const out = path.join(repoRoot, 'docs', 'arch-pxe-flow.png');

// What page-side callbacks see.
declare const document: { querySelector(s: string): unknown };
declare const RED: { workspaces: { show(id: string): void }; sidebar: { show(id: string): void }; actions: { invoke(name: string): void } };

/** The shipped example as a user deploys it: ISO set, interface picked, tab enabled. */
function deployedExample(iso: string): FlowNode[] {
  const example = JSON.parse(fs.readFileSync(path.join(repoRoot, 'examples', 'Arch PXE.json'), 'utf8')) as FlowNode[];
  return example.map((n): FlowNode => {
    switch (n.type) {
      case 'tab':
        return { ...n, disabled: false };
      case 'pxe-iso-store':
        return { ...n, path: iso };
      case 'pxe-dhcp':
        // A segment of its own: the full server hands out the address too (no router here).
        return { ...n, iface: 'br0', mode: 'full', poolStart: '10.124.0.100', poolEnd: '10.124.0.150' };
      default:
        return n;
    }
  });
}

async function main(): Promise<void> {
  const why = labAvailable() ?? (fs.existsSync(CHROMIUM) ? null : `${CHROMIUM} missing`);
  if (why) throw new Error(`cannot take the picture: ${why}`);
  if (!fs.existsSync(path.join(repoRoot, 'dist', 'nodes'))) throw new Error('build first: node scripts/build.mjs');
  const iso = ensureFixtures().isos.current;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-readme-picture-'));
  const lab = Lab.create();
  let red: BootRed | undefined;
  let ed: Opened | undefined;
  try {
    const srv = lab.netns('srv');
    const br = lab.bridge(srv, `${SERVER}/24`, 'br0');
    const cli = lab.netns('cli');
    const cliIf = lab.attach(srv, br, cli, null);
    cli.ip('link', 'set', cliIf, 'address', MAC);
    const flow = deployedExample(fixturePath(iso.file));
    const tab = flow.find((n) => n.type === 'tab')!.id;
    red = await startBootRed({ ns: srv, flow, door: false, port: 1880 });
    const wrapper = path.join(tmp, 'chromium-in-lab');
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec /usr/sbin/ip netns exec ${srv.name} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
    ed = await openEditor(red.base, { executablePath: wrapper, viewport: { width: 1400, height: 860 } });
    const page = ed.page;
    await page.evaluate((z) => RED.workspaces.show(z), tab);

    // Every serving node of the example says it serves (a green dot); NAT stays off, as shipped.
    const serving = flow.filter((n) => /^pxe-(dhcp|tftp|http|nbd|nfs)$/.test(n.type)).map((n) => n.id);
    await page.waitForFunction(
      (ids) => ids.every((id) => document.querySelector(`g.red-ui-flow-node-group[id="${id}"] .red-ui-flow-node-status-dot-green`)),
      serving,
      { timeout: 60000 },
    );

    // The client: a lease as a BIOS PXE ROM asks for it, then the files pxelinux fetches.
    const dhcpScript = path.join(tmp, 'udhcpc.sh');
    fs.writeFileSync(dhcpScript, '#!/bin/sh\n[ "$1" = bound ] && ip addr add "$ip/$mask" dev "$interface" && echo "BOUND $ip $siaddr $boot_file $pxepathprefix $pxeconffile"\nexit 0\n', { mode: 0o755 });
    const lease = await cli.run('/bin/busybox', ['udhcpc', '-i', cliIf, '-n', '-q', '-f', '-t', '4', '-T', '2', '-V', 'PXEClient:Arch:00000:UNDI:002001', '-x', '0x5d:0000', '-O', '209', '-O', '210', '-s', dhcpScript], { timeoutMs: 30000 });
    const bound = /BOUND (\S+) (\S+) (\S+) (\S+) (\S+)/.exec(lease.stdout);
    if (!bound) throw new Error(`no lease: ${lease.stdout}${lease.stderr}`);
    const [, , next, bootFile, prefix, cfg] = bound;
    const files = [`tftp://${next}${bootFile}`, `tftp://${next}${prefix}${cfg}`, `tftp://${next}${iso.kernel}`, ...iso.initrd.map((f) => `tftp://${next}${f}`), `http://${next}${iso.httpPath}`];
    for (const url of files) {
      const r = await cli.run('curl', ['-sS', '-f', '-o', '/dev/null', '--max-time', '60', url], { timeoutMs: 90000 });
      if (r.code !== 0) throw new Error(`${url}: ${r.stderr}`);
    }

    // The PXE sidebar with that client's boot, its timeline open.
    await page.evaluate(() => RED.sidebar.show('pxe-boot'));
    const row = page.locator('.pxe-boot-row', { hasText: MAC });
    await row.locator('.pxe-boot-badge[data-state="complete"]').waitFor({ timeout: 60000 });
    await row.locator('.pxe-boot-head').click();
    await row.locator('.pxe-boot-detail table').first().waitFor();
    // The whole example in view, down to the notification node's status line.
    await page.evaluate(() => {
      RED.actions.invoke('core:zoom-out');
      RED.actions.invoke('core:zoom-out');
    });
    await page.mouse.move(700, 845); // no tooltip in the picture
    await page.waitForTimeout(500);
    if (ed.problems.length) throw new Error(`editor errors:\n${ed.problems.join('\n')}`);
    const png = await page.screenshot({ type: 'png' });
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, png);
    console.log(`wrote ${path.relative(repoRoot, out)} (${png.length} bytes)`);
  } finally {
    await ed?.browser.close();
    await red?.stop(true);
    await lab.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  process.exitCode = 1;
});
