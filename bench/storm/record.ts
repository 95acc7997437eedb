/**
 * Records what one real BIOS PXE client does in a full boot, for `bench/storm.ts` to replay:
 * the shipped "Arch PXE" example in a real Node-RED in the lab (full DHCP, as the wiki's dnsmasq),
 * a QEMU BIOS machine with the iPXE NIC ROM, the ISO's own menu, its HTTP entry chosen with keys
 * (as test/e2e/pxe-boot.test.ts does). The DHCP, TFTP and HTTP nodes' outputs (every request with
 * the options the client asked for, not-found probes, aborted transfers) are written to a file and
 * reduced to bench/storm/recorded-boot.json.
 *
 *   flock /tmp/pxe-heavy.lock node --import tsx bench/storm/record.ts [--layout wiki|current|2021] [--dhcp full|proxy]
 *
 * The default, the wiki layout (archiso of the wiki's era: 210 /arch/, CONFIG menus), is what the
 * wiki's dnsmasq.conf is written for.
 *
 * --dhcp proxy records the same boot with the example in proxy mode beside a plain address-only
 * DHCP server (dnsmasq, no PXE, in a namespace of its own on the same bridge), as a home network
 * has: the client's DISCOVER and its REQUEST to the address server reach our node too (it answers
 * the first with a proxy offer and logs the second as ignored), and a port-4011 REQUEST to us if
 * the client sends one (QEMU's iPXE ROM does not: our proxy offer already names the boot file).
 * Written to recorded-boot-proxy.json and recorded-raw-proxy.jsonl.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startAddressServer } from './servers';
import { Lab, labAvailable } from '../../test/lab/netns';
import { startNodeRed, type RunningRed } from '../../test/lab/node-red';
import { chooseMenuEntry, startVm, waitForBootResult } from '../../test/lab/qemu';
import { ensureFixtures, fixturePath, pxeEntryIndex } from '../../test/fixtures/fixtures';
import { archPxeFlow } from '../../test/e2e/arch-pxe-flow';
import { recordingFile, type Recording, type Step } from './script';

const SERVER = '10.124.0.1';
const rawFileOf = (mode: 'full' | 'proxy'): string => path.join(__dirname, mode === 'full' ? 'recorded-raw.jsonl' : 'recorded-raw-proxy.jsonl');

interface Logged {
  topic: string;
  payload: Record<string, unknown>;
}

async function main(): Promise<void> {
  const why = labAvailable();
  if (why) throw new Error(`recording needs the network lab: ${why}`);
  const manifest = ensureFixtures();
  const layoutArg = process.argv.indexOf('--layout');
  const layout = (layoutArg >= 0 ? process.argv[layoutArg + 1] : 'wiki') as 'wiki' | 'current' | '2021';
  const iso = manifest.isos[layout];
  if (!iso) throw new Error(`no fixture ISO layout ${layout}`);
  const modeArg = process.argv.indexOf('--dhcp');
  const mode = (modeArg >= 0 ? process.argv[modeArg + 1] : 'full') as 'full' | 'proxy';
  if (mode !== 'full' && mode !== 'proxy') throw new Error('--dhcp takes full or proxy');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-storm-rec-'));
  const rawFile = path.join(tmp, 'servers.jsonl');
  const lab = Lab.create();
  let red: RunningRed | undefined;
  let vm: ReturnType<typeof startVm> | undefined;
  let addressServer: { stop(): Promise<void> } | undefined;
  try {
    const srv = lab.netns('srv');
    const br = lab.bridge(srv, `${SERVER}/24`);
    const tap = lab.tap(srv, br);
    if (mode === 'proxy') {
      const router = lab.netns('router');
      const dev = lab.attach(srv, br, router, '10.124.0.2/24');
      addressServer = await startAddressServer(router, { iface: dev, work: tmp, pool: { start: '10.124.0.160', end: '10.124.0.199', mask: '255.255.255.0' } });
    }
    const flow = archPxeFlow({ iso: fixturePath(iso.file), iface: br, mode, poolStart: mode === 'full' ? '10.124.0.100' : '', poolEnd: mode === 'full' ? '10.124.0.150' : '', eventsFile: path.join(tmp, 'events.jsonl') });
    // Every DHCP, TFTP and HTTP event as a JSON line (topic + payload).
    const tab = flow.find((n) => n.type === 'tab')!;
    flow.push({ id: 'rec0000000000001', type: 'file', z: tab.id, name: 'servers', filename: rawFile, filenameType: 'str', appendNewline: true, createDir: true, overwriteFile: 'false', encoding: 'none', wires: [[]] });
    flow.push({ id: 'rec0000000000002', type: 'function', z: tab.id, name: 'topic+payload', func: 'msg.payload = { topic: msg.topic, payload: msg.payload }; return msg;', outputs: 1, wires: [['rec0000000000001']] });
    for (const n of flow) if (['pxe-dhcp', 'pxe-tftp', 'pxe-http'].includes(n.type)) (n.wires as string[][])[0]!.push('rec0000000000002');
    red = await startNodeRed(srv, flow, { port: 1880 });
    vm = startVm(srv, { tap, mac: '52:54:00:12:35:01', firmware: 'bios', rom: 'ipxe' });
    const result = waitForBootResult(vm, 240_000);
    result.catch(() => undefined);
    await chooseMenuEntry(vm, pxeEntryIndex(iso, 'http'), { labels: iso.pxeEntries.map((e) => e.menuLabel), timeoutMs: 240_000 });
    const line = (await result).line;
    if (/PXE-TEST-FAIL/.test(line)) throw new Error(`guest failed: ${line}`);
    await new Promise((r) => setTimeout(r, 2000));
    const raw = fs.readFileSync(rawFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Logged);
    fs.copyFileSync(rawFile, rawFileOf(mode));
    fs.writeFileSync(recordingFile(mode), JSON.stringify(reduce(raw, iso.file, mode), null, 2) + '\n');
    console.log(`recorded ${raw.length} server events; wrote ${recordingFile(mode)}`);
  } finally {
    vm?.cleanup();
    await addressServer?.stop();
    await red?.stop();
    await lab.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * The client's steps, in order, from the servers' events (what the replay needs, nothing more).
 * Proxy mode: a REQUEST our node answered (no `reason`) can only be the port-4011 one — the
 * port-67 REQUEST belongs to the address server and is logged with the reason it was left alone.
 */
export function reduce(raw: Logged[], isoFile: string, mode: 'full' | 'proxy' = 'full'): Recording {
  const steps: Step[] = [];
  const classes = (p: Record<string, unknown>): { vendorClass: string; userClass: string[]; arch: number } => ({ vendorClass: String(p.vendorClass ?? ''), userClass: (p.userClass as string[] | undefined) ?? [], arch: Number(p.arch ?? 0) });
  let lastXid: unknown;
  for (const { topic, payload: p } of raw) {
    if (topic === 'dhcp/discover') {
      // A DISCOVER resent with the same xid is the same exchange (the client waited for offers).
      if (p.xid === lastXid && steps.at(-1)?.proto === 'dhcp') continue;
      lastXid = p.xid;
      steps.push({ proto: 'dhcp', ...classes(p), ...(mode === 'proxy' ? { proxy: true } : {}) });
    } else if (mode === 'proxy' && topic === 'dhcp/request' && !p.reason) {
      const last = steps.at(-1);
      if (last?.proto !== 'dhcp' || last.proxyRequest) throw new Error(`a port-4011 REQUEST without a DISCOVER before it: ${JSON.stringify(p)}`);
      last.proxyRequest = classes(p);
    } else if (topic === 'tftp/done' || topic === 'tftp/error' || topic === 'tftp/declined') {
      const options = Object.entries((p.requested as Record<string, string>) ?? {}).map(([name, value]) => ({ name, value }));
      const file = String(p.file);
      if (p.type === 'done') steps.push({ proto: 'tftp', file, options, outcome: 'done' });
      else if (p.type === 'declined') steps.push({ proto: 'tftp', file, options, outcome: 'declined' });
      else if (p.by === 'client') steps.push({ proto: 'tftp', file, options, outcome: 'aborted', abortAfterBytes: Number(p.bytesSent ?? 0) });
      else if (p.stage === 'request' && p.code === 1) steps.push({ proto: 'tftp', file, options, outcome: 'not-found' });
      else throw new Error(`a TFTP transfer failed during the recording: ${JSON.stringify(p)}`);
    } else if (topic === 'http/request') {
      const r = p.range as { start: number; end: number } | null;
      steps.push({ proto: 'http', path: String(p.path), status: Number(p.status), ...(r ? { range: `bytes=${r.start}-${r.end}` } : {}) });
    }
  }
  return {
    recordedWith: 'bench/storm/record.ts',
    how: `a QEMU BIOS machine (iPXE NIC ROM) booting ${isoFile} from the "Arch PXE" example in ${mode === 'full' ? 'full DHCP mode' : 'proxy DHCP mode beside dnsmasq as a plain address server'}, the ISO's HTTP menu entry chosen with keys; the DHCP, TFTP and HTTP nodes' events reduced to the client's requests`,
    iso: isoFile,
    date: new Date().toISOString(),
    steps,
  };
}

if (require.main === module) {
  main().catch((err: Error) => {
    console.error(err.stack ?? err.message);
    process.exit(1);
  });
}
