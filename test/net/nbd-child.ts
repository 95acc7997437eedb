// Runs our NBD server inside a lab namespace (or anywhere) for the network tests and the bench.
// Usage: nbd-child.ts FILE [EXPORT=archiso] [HOST=0.0.0.0] [PORT=0] [progressIntervalMs]
// Prints JSON lines: {"listening":{...}}, then {"event":name,...} for every server event, and
// {"stats":{...}} (connections, reply bytes held, process memory) for each "stats" line on stdin;
// a "gc" line (with node --expose-gc) first collects the garbage, to tell what the server still
// holds from what V8 has not collected yet.
import { FileExport } from '../../nodes/lib/nbd/export';
import { NbdServer } from '../../nodes/lib/nbd/server';

async function main(): Promise<void> {
  const [file, name = 'archiso', host = '0.0.0.0', port = '0', interval = '1000'] = process.argv.slice(2);
  if (!file) throw new Error('usage: nbd-child.ts FILE [EXPORT] [HOST] [PORT] [INTERVAL_MS]');
  const exp = await FileExport.open(name, file);
  const server = new NbdServer({ exports: [exp], progressIntervalMs: Number(interval) });
  const out = (o: object): void => void process.stdout.write(JSON.stringify(o) + '\n');
  for (const ev of ['connect', 'progress', 'disconnect', 'clientError', 'refused', 'evicted'] as const) {
    server.on(ev, (info: object) => out({ event: ev, ...info }));
  }
  let input = '';
  process.stdin.setEncoding('utf8').on('data', (d: string) => {
    input += d;
    for (let i = input.indexOf('\n'); i >= 0; i = input.indexOf('\n')) {
      const line = input.slice(0, i).trim();
      input = input.slice(i + 1);
      if (line !== 'stats' && line !== 'gc') continue;
      const gc = (globalThis as { gc?: () => void }).gc;
      if (line === 'gc' && gc) for (let k = 0; k < 3; k++) gc();
      const m = process.memoryUsage();
      out({ stats: { connections: server.connectionCount, clients: server.clientCount, replyBytes: server.replyBytes, rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers } });
    }
  });
  const addr = await server.listen(Number(port), host);
  out({ listening: { address: addr.address, port: addr.port, size: exp.size } });
  const stop = (): void => {
    server
      .close()
      .then(() => exp.close())
      .then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: Error) => {
  process.stderr.write(`nbd-child: ${err.message}\n`);
  process.exit(1);
});
