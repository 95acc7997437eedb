/**
 * Runs our TFTP server in its own process (inside a lab namespace) for the network tests and the
 * bench. Prints JSON lines on stdout: {"listening":{address,port}}, {"event":…} per transfer
 * event (unless --no-events), and answers stdin commands:
 *   stats    → {"stats":{rss,peakRss,fds,active}}  (peakRss sampled from `reset` to this `stats`)
 *   reset    → {"reset":true}: starts sampling RSS every 20 ms (only then: reading /proc that
 *              often was 5 % of the server's CPU in the bench's CPU-per-GiB runs)
 *   redeploy N → closes the server and listens again on the same port, N times →
 *               {"redeployed":N,"fds":[fd count after each cycle]}
 *   quit     → closes the server (waiting for every socket) and exits 0.
 * Usage: tftp-child.ts --root DIR [--address IP] [--port N] [--max-blksize N]
 *        [--max-windowsize N] [--max-transfers N] [--max-per-client N] [--max-waiting N]
 *        [--max-wait-ms N] [--busy-poll-ms X]
 *        [--workers N]
 *        [--no-events]
 */
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { FolderStore } from '../../nodes/lib/store/folder-store';
import { TftpServer, type TftpServerOptions } from '../../nodes/lib/tftp/server';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
function num(name: string): number | undefined {
  const v = arg(name);
  return v === undefined ? undefined : Number(v);
}
const print = (o: unknown): void => {
  process.stdout.write(JSON.stringify(o) + '\n');
};
const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;

async function main(): Promise<void> {
  const root = arg('root');
  if (!root) throw new Error('--root is required');
  const store = await new FolderStore(root).init();
  const opts: TftpServerOptions = {
    store,
    address: arg('address') ?? '0.0.0.0',
    port: num('port') ?? 69,
    maxBlksize: num('max-blksize'),
    maxWindowsize: num('max-windowsize'),
    maxTransfers: num('max-transfers'),
    maxPerClient: num('max-per-client'),
    maxWaiting: num('max-waiting'),
    maxWaitMs: num('max-wait-ms'),
    busyPollMs: num('busy-poll-ms'),
    workers: num('workers'),
    localTransfers: num('local-transfers'),
    readAheadBytes: num('read-ahead'),
    workerStore: { source: root },
  };
  const events = !process.argv.includes('--no-events');
  let server = new TftpServer(opts);
  const attach = (s: TftpServer): void => {
    if (events) s.on('transfer', (event) => print({ event }));
    s.on('warning', (err) => print({ warning: err.message }));
  };
  attach(server);
  try {
    const addr = await server.listen();
    opts.port = addr.port;
    print({ listening: addr });
  } catch (err) {
    print({ listenError: (err as NodeJS.ErrnoException).code, message: (err as Error).message });
    process.exit(2);
  }

  let peakRss = process.memoryUsage.rss();
  let sampler: NodeJS.Timeout | undefined;

  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const [cmd, n] = line.trim().split(/\s+/);
    if (cmd === 'stats') {
      clearInterval(sampler);
      sampler = undefined;
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      // Descriptors are counted once finished transfers have closed their sockets (in a worker
      // that may lag the outcome by a moment); bounded wait.
      for (let i = 0; i < 100 && server.openTransfers > server.activeTransfers; i++) await new Promise((r) => setTimeout(r, 10));
      print({ stats: { rss: process.memoryUsage.rss(), peakRss, fds: fdCount(), active: server.activeTransfers, pollTurns: server.poller.turns, pollPauses: server.poller.pauses } });
    } else if (cmd === 'reset') {
      peakRss = process.memoryUsage.rss();
      clearInterval(sampler);
      sampler = setInterval(() => {
        peakRss = Math.max(peakRss, process.memoryUsage.rss());
      }, 20);
      print({ reset: true });
    } else if (cmd === 'redeploy') {
      const fds: number[] = [];
      for (let i = 0; i < Number(n ?? 1); i++) {
        await server.close();
        server = new TftpServer(opts);
        attach(server);
        await server.listen();
        fds.push(fdCount());
      }
      print({ redeployed: fds.length, fds });
    } else if (cmd === 'quit') {
      break;
    }
  }
  clearInterval(sampler);
  await server.close();
  print({ closed: true, fds: fdCount() });
  process.exit(0);
}

main().catch((err: Error) => {
  print({ fatal: err.message });
  process.exit(1);
});
