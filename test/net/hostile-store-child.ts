/**
 * Our HTTP file service over any store (an ISO image or a folder, as openStore opens it) in a lab
 * namespace, for the hostile store tests: `hostile-store-child.ts <store> <address> <port>`.
 * Prints {"listening":{...}}; answers "stats" on stdin with {"stats":{rss,heapUsed,heapTotal,external,active}}
 * ("gc": the same after a full garbage collection, as {"gc":{…}}, when run with --expose-gc) and,
 * once the response is over, one {"fail":{status,path,error}} line per refused request.
 */
import * as readline from 'node:readline';
import { HttpFileService } from '../../nodes/lib/http/serve-file';
import { HttpListener } from '../../nodes/lib/http/server';
import { openStore } from '../../nodes/lib/store/open-store';

const [source, address, port] = process.argv.slice(2);
const out = (o: unknown): void => {
  process.stdout.write(JSON.stringify(o) + '\n');
};

async function main(): Promise<void> {
  const store = await openStore(source!);
  const service = new HttpFileService({ store, listing: true, hooks: { onFail: (e) => out({ fail: { status: e.status, path: e.path, error: e.error } }) } });
  const listener = new HttpListener(service.handle);
  out({ listening: await listener.listen({ address, port: Number(port) }) });
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    const cmd = line.trim();
    // "gc": what is retained, garbage collected first (the child runs with --expose-gc).
    if (cmd === 'gc') (globalThis as { gc?: () => void }).gc?.();
    if (cmd !== 'stats' && cmd !== 'gc') return;
    const m = process.memoryUsage();
    out({ [cmd]: { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, active: service.activeDownloads } });
  });
  const stop = async (): Promise<void> => {
    await service.close();
    await listener.close();
    await store.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.stdin.once('end', () => void stop());
}

main().catch((err: Error) => {
  out({ fatal: err.message });
  process.exit(1);
});
