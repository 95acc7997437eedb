// The hostile NBD client of test/net/hostile-nbd.test.ts and bench/hostile/nbd.ts: it opens many
// connections (spread over the given local addresses), attaches each to the export, sends large
// reads and never reads a byte of the replies. It runs inside a lab namespace until killed.
// Usage: nbd-hostile-client.ts HOST PORT EXPORT CONNECTIONS LOCAL_ADDRS(comma) READS LENGTH
// Prints {"ready":{"attached":n,"refused":m}} once every connection is attached or refused.
import * as P from '../../nodes/lib/nbd/protocol';
import { WireClient } from '../unit/nbd-wire';

async function main(): Promise<void> {
  const [host, port, name, conns, addrs, reads, length] = process.argv.slice(2);
  if (!length) throw new Error('usage: nbd-hostile-client.ts HOST PORT EXPORT CONNECTIONS LOCAL_ADDRS READS LENGTH');
  const locals = addrs!.split(',');
  const n = Number(conns);
  const attach = async (i: number): Promise<boolean> => {
    let c: WireClient;
    try {
      c = await WireClient.connect(Number(port), host, locals[i % locals.length]);
      await c.handshake();
      const r = await c.go(name!);
      if (r.final.type !== P.NBD_REP_ACK) throw new Error('GO refused');
    } catch {
      return false;
    }
    // Never read again: the replies pile up wherever the server lets them.
    c.socket.pause();
    for (let k = 0; k < Number(reads); k++) c.request(P.NBD_CMD_READ, 0, Number(length));
    return true;
  };
  // A few at a time: a burst of SYNs is not what is being tested.
  const results: boolean[] = [];
  for (let i = 0; i < n; i += 8) results.push(...(await Promise.all(Array.from({ length: Math.min(8, n - i) }, (_, k) => attach(i + k)))));
  const attached = results.filter(Boolean).length;
  process.stdout.write(JSON.stringify({ ready: { attached, refused: n - attached } }) + '\n');
  // Stay until killed.
  setInterval(() => undefined, 60_000);
}

main().catch((err: Error) => {
  process.stderr.write(`nbd-hostile-client: ${err.message}\n`);
  process.exit(1);
});
