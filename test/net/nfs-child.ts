/**
 * Runs our NFS server (nodes/lib/nfs/server.ts) in its own process — inside a lab namespace — for
 * the network tests and the bench. The store is an ISO image or a folder (openStore decides).
 *
 *   nfs-child.ts SOURCE [--address IP] [--nfs-port N] [--mount-port N] [--portmap-port N]
 *                [--portmap auto|own|rpcbind|off] [--exports /a,/b] [--max-connections N]
 *                [--progress-ms N] [--no-events]
 *
 * Prints JSON lines on stdout: {"listening":{...what listen() resolved with, fds}} (or
 * {"listenError":code,"message":...} and exit 2), {"event":name,...} per server event (unless
 * --no-events), and answers stdin commands:
 *   stats    → {"stats":{rss,peakRss,fds,heapUsed,external,arrayBuffers,server}} (peakRss: the kernel's
 *              VmHWM since start or `reset`; server = NfsServer.stats)
 *   reset    → resets VmHWM to the current RSS → {"reset":true}
 *   close    → closes the server → {"closed":{fds}}
 *   listen   → a new server listens with the same options → {"listening":...}
 *   cycle N  → N times: close, then a new server listens again → {"cycled":{n,fds:[after each close]}}
 *   quit     → closes the server and the store, exits 0 (SIGTERM/SIGINT do the same).
 */
import type { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { NfsServer, type NfsListenOptions } from '../../nodes/lib/nfs/server';
import { openStore } from '../../nodes/lib/store/open-store';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
function num(name: string): number | undefined {
  const v = arg(name);
  return v === undefined ? undefined : Number(v);
}
const print = (o: unknown): void => void process.stdout.write(JSON.stringify(o) + '\n');
const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;
/** The kernel's peak RSS (VmHWM): no sampling timer in the server's process. */
const peakRss = (): number => Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;
/** Resets VmHWM to the current RSS (Linux ≥ 4.0). */
const resetPeakRss = (): void => fs.writeFileSync('/proc/self/clear_refs', '5');
const EVENTS = ['mount', 'umount', 'read', 'clientError', 'refused'] as const;

async function main(): Promise<void> {
  const source = process.argv[2];
  if (!source || source.startsWith('--')) throw new Error('usage: nfs-child.ts SOURCE [options]');
  const store = await openStore(source);
  const exportsArg = arg('exports');
  const serverOpts = {
    store,
    exportPaths: exportsArg ? exportsArg.split(',') : undefined,
    maxConnections: num('max-connections'),
    progressIntervalMs: num('progress-ms'),
  };
  const listenOpts: NfsListenOptions = {
    address: arg('address'),
    nfsPort: num('nfs-port'),
    mountPort: num('mount-port'),
    portmapPort: num('portmap-port'),
    portmap: arg('portmap') as NfsListenOptions['portmap'],
  };
  const events = !process.argv.includes('--no-events');

  let server: NfsServer | null = null;
  const current = (): NfsServer | null => server;
  const start = async (): Promise<boolean> => {
    const s = new NfsServer(serverOpts);
    if (events) for (const ev of EVENTS) (s as EventEmitter).on(ev, (info: object) => print({ event: ev, ...info }));
    try {
      const addr = await s.listen(listenOpts);
      server = s;
      print({ listening: { ...addr, fds: fdCount() } });
      return true;
    } catch (err) {
      print({ listenError: (err as NodeJS.ErrnoException).code ?? null, message: (err as Error).message });
      return false;
    }
  };
  const stop = async (): Promise<void> => {
    const s = server;
    server = null;
    if (s) await s.close();
  };
  if (!(await start())) process.exit(2);


  let quitting = false;
  const quit = async (): Promise<void> => {
    if (quitting) return;
    quitting = true;
    await stop();
    await store.close();
    print({ quit: true });
    process.exit(0);
  };
  process.on('SIGTERM', () => void quit());
  process.on('SIGINT', () => void quit());

  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const [cmd, n] = line.trim().split(/\s+/);
    if (cmd === 'stats') {
      const m = process.memoryUsage();
      print({ stats: { rss: m.rss, peakRss: Math.max(m.rss, peakRss()), fds: fdCount(), heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, server: current()?.stats ?? null } });
    } else if (cmd === 'reset') {
      resetPeakRss();
      print({ reset: true });
    } else if (cmd === 'close') {
      await stop();
      print({ closed: { fds: fdCount() } });
    } else if (cmd === 'listen') {
      await start();
    } else if (cmd === 'cycle') {
      const fds: number[] = [];
      let ok = true;
      for (let i = 0; i < Number(n ?? 1) && ok; i++) {
        await stop();
        fds.push(fdCount());
        ok = await start();
      }
      print({ cycled: { n: fds.length, ok, fds } });
    } else if (cmd === 'quit') {
      await quit();
    }
  }
  // stdin closed: the parent is gone.
  await quit();
}

main().catch((err: Error) => {
  process.stderr.write(`nfs-child: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
