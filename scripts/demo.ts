/**
 * `npm run demo`: the whole product in one go, inside a throwaway network lab. Builds the fixture
 * ISO, starts Node-RED with the "Arch PXE" example flow on a bridge in a namespace, PXE-boots a
 * QEMU machine from it, picks an entry of the ISO's own PXE menu (which waits for a key) as a user
 * would — `--entry nbd|nfs|http`, default nfs —, prints each boot event as it arrives and the
 * machine's marker line, and cleans everything up. Needs root (network namespaces) and the packages .ci/install-deps.sh installs.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { archPxeFlow, readEvents } from '../test/e2e/arch-pxe-flow';
import { ensureFixtures, fixturePath, parseMarker, pxeEntryIndex } from '../test/fixtures/fixtures';
import { Lab } from '../test/lab/netns';
import { startNodeRed } from '../test/lab/node-red';
import { chooseMenuEntry, startVm, waitForSerial } from '../test/lab/qemu';

async function main(): Promise<number> {
  const i = process.argv.indexOf('--entry');
  const method = (i > 0 ? process.argv[i + 1] : 'nfs') as 'nbd' | 'nfs' | 'http';
  if (!['nbd', 'nfs', 'http'].includes(method)) throw new Error('--entry takes nbd, nfs or http');
  console.log('demo: building fixtures (cached after the first run)…');
  const manifest = ensureFixtures();
  const iso = manifest.isos.current;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-demo-'));
  const eventsFile = path.join(tmp, 'events.jsonl');
  const lab = Lab.create();
  let shown = 0;
  const poll = setInterval(() => {
    const events = readEvents(eventsFile);
    for (const e of events.slice(shown)) {
      const extra = e.percent !== undefined ? ` ${e.percent}%` : e.file ? ` ${e.file}` : '';
      console.log(`demo: boot/${e.stage} ${e.mac ?? '?'} ${e.ip ?? ''}${extra}`);
    }
    shown = events.length;
  }, 200);
  try {
    const srv = lab.netns('srv');
    const br = lab.bridge(srv, '10.124.0.1/24');
    const tap = lab.tap(srv, br);
    console.log(`demo: Node-RED with the Arch PXE example on ${br} 10.124.0.1/24 (namespace ${srv.name})`);
    const red = await startNodeRed(srv, archPxeFlow({ iso: fixturePath(iso.file), iface: br, mode: 'full', poolStart: '10.124.0.100', poolEnd: '10.124.0.150', eventsFile }));
    try {
      console.log('demo: booting a QEMU BIOS machine from the network (TCG, about 30-60 s)…');
      const vm = startVm(srv, { tap, mac: '52:54:00:de:00:01', firmware: 'bios', rom: 'ipxe' });
      try {
        const labels = iso.pxeEntries.map((e) => e.menuLabel);
        const entry = pxeEntryIndex(iso, method);
        const choice = await chooseMenuEntry(vm, entry, { labels, timeoutMs: 180_000 });
        console.log(`demo: the ISO's menu is up; chose "${labels[entry]}" with ${choice.keys.join(' ')}`);
        const line = await waitForSerial(vm, /PXE-TEST-(MARKER|FAIL)[^\r\n]*(?=[\r\n])/, 180_000);
        await new Promise((r) => setTimeout(r, 500));
        console.log(`demo: guest says: ${line[0]}`);
        const marker = parseMarker(line[0]);
        const ok = marker?.sha256 === manifest.marker.sha256;
        console.log(ok ? 'demo: the guest booted and read airootfs.sfs intact' : 'demo: FAILED');
        return ok ? 0 : 1;
      } finally {
        vm.cleanup();
      }
    } finally {
      await red.stop();
    }
  } finally {
    clearInterval(poll);
    await lab.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`demo: ${err.message}`);
    process.exit(1);
  },
);
