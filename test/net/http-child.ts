/**
 * Runs our HTTP file server inside a lab namespace for the network tests and the bench:
 * `node --import tsx test/net/http-child.ts <folder> <address> <port> [--listing] [--quiet]
 * [--step N] [--interval MS]`. Prints JSON lines: {"listening":{...}}, then one line per event
 * ({"request"|"progress"|"done"|"fail":{...}}); answers "stats" on stdin with {"stats":{...}}.
 */
import * as readline from 'node:readline';
import { BufferPool } from '../../nodes/lib/http/buffer-pool';
import { HttpFileService } from '../../nodes/lib/http/serve-file';
import { HttpListener } from '../../nodes/lib/http/server';
import { FolderStore } from '../../nodes/lib/store/folder-store';

const [root, address, port, ...flags] = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = flags.indexOf(name);
  return i >= 0 ? flags[i + 1] : undefined;
};
const quiet = flags.includes('--quiet');
const out = (obj: unknown): void => {
  process.stdout.write(JSON.stringify(obj) + '\n');
};

async function main(): Promise<void> {
  const store = await new FolderStore(root!).init();
  const emit = <T>(kind: string) => (e: T): void => {
    if (!quiet) out({ [kind]: e });
  };
  const service = new HttpFileService({
    store,
    listing: flags.includes('--listing'),
    progressStep: flag('--step') === undefined ? undefined : Number(flag('--step')),
    progressIntervalMs: flag('--interval') === undefined ? undefined : Number(flag('--interval')),
    pool: flag('--chunk') === undefined ? undefined : new BufferPool(Number(flag('--chunk')), Math.ceil((32 << 20) / Number(flag('--chunk')))),
    hooks: {
      onRequest: emit('request'),
      onProgress: emit('progress'),
      onDone: emit('done'),
      onFail: emit('fail'),
    },
  });
  const listener = new HttpListener(service.handle);
  try {
    out({ listening: await listener.listen({ address, port: Number(port) }) });
  } catch (err) {
    out({ listenError: { code: (err as NodeJS.ErrnoException).code, message: (err as Error).message } });
    process.exit(2);
  }
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() === 'stats') {
      const m = process.memoryUsage();
      const cpu = process.cpuUsage();
      out({ stats: { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, active: service.activeDownloads, user: cpu.user / 1e6, system: cpu.system / 1e6 } });
    }
  });
  const stop = async (): Promise<void> => {
    await service.close();
    await listener.close();
    await store.close();
    out({ closed: true });
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.stdin.once('end', () => void stop());
}

main().catch((err: Error) => {
  out({ fatal: err.message });
  process.exit(1);
});
