/**
 * A small TFTP client for the hostile tests and bench, run inside a lab namespace. Prints one
 * JSON line.
 *   hostile-tftp-client.ts SERVER flood NAME N CONCURRENCY
 *     N read requests for NAME, CONCURRENCY at a time, each from its own port, each sent again
 *     after 1 s as clients do and given up after 3 s (a transfer that starts is aborted with an
 *     ERROR); none is started after 10 s (those count as silent):
 *     {"flood":{"answered":{"<error code>"|"data":count},"silent":count,"ms":total}}
 *   hostile-tftp-client.ts SERVER get NAME
 *     reads NAME (blksize 1468), resending the request for up to 5 s:
 *     {"get":{"ms":from the request to the last block (-1: none),"bytes":received}}
 */
import * as dgram from 'node:dgram';

const [server, cmd, name, ...rest] = process.argv.slice(2);
const print = (o: unknown): void => {
  process.stdout.write(JSON.stringify(o) + '\n');
};

function rrq(file: string, options: Record<string, string> = {}): Buffer {
  const parts = [file, 'octet', ...Object.entries(options).flat()];
  return Buffer.concat([Buffer.from([0, 1]), ...parts.map((p) => Buffer.from(`${p}\0`, 'latin1'))]);
}

const ack = (block: number): Buffer => Buffer.from([0, 4, block >> 8, block & 0xff]);
const abort = Buffer.from([0, 5, 0, 0, 0]);

/** One request; resolves with the first answer's kind ('data', 'oack' or the error code) or null. */
function probe(file: string): Promise<string | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const done = (v: string | null): void => {
      clearTimeout(t);
      clearTimeout(again);
      s.close();
      resolve(v);
    };
    const t = setTimeout(() => done(null), 3000);
    // Sent again once, as a client does when the answer is late (a loaded server, a lost packet).
    const again = setTimeout(() => s.send(rrq(file), 69, server), 1000);
    s.on('message', (m, rinfo) => {
      const op = m.readUInt16BE(0);
      if (op === 5) return done(String(m.readUInt16BE(2)));
      // A transfer started after all: end it at once.
      s.send(abort, rinfo.port, rinfo.address);
      done(op === 3 ? 'data' : 'oack');
    });
    s.send(rrq(file), 69, server);
  });
}

async function flood(file: string, n: number, concurrency: number): Promise<void> {
  const started = Date.now();
  const answered: Record<string, number> = {};
  let silent = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        if (Date.now() - started > 10_000) {
          silent++;
          continue;
        }
        const r = await probe(file);
        if (r === null) silent++;
        else answered[r] = (answered[r] ?? 0) + 1;
      }
    }),
  );
  print({ flood: { answered, silent, ms: Date.now() - started } });
}

function get(file: string): Promise<void> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const started = Date.now();
    let bytes = 0;
    let expect = 1;
    let tid: { port: number; address: string } | undefined;
    const blksize = 1468;
    const finish = (ms: number): void => {
      clearInterval(resend);
      clearTimeout(giveUp);
      s.close();
      print({ get: { ms, bytes } });
      resolve();
    };
    const request = rrq(file, { blksize: String(blksize) });
    // The request again while nothing came back (a server that dropped it over a limit).
    const resend = setInterval(() => {
      if (!tid) s.send(request, 69, server);
    }, 1000);
    const giveUp = setTimeout(() => finish(-1), 5000);
    s.on('message', (m, rinfo) => {
      tid ??= { port: rinfo.port, address: rinfo.address };
      if (rinfo.port !== tid.port) return;
      const op = m.readUInt16BE(0);
      if (op === 6) {
        s.send(ack(0), tid.port, tid.address);
      } else if (op === 3) {
        const block = m.readUInt16BE(2);
        if (block === (expect & 0xffff)) {
          bytes += m.length - 4;
          expect++;
        }
        s.send(ack(block), tid.port, tid.address);
        if (m.length - 4 < blksize && block === ((expect - 1) & 0xffff)) finish(Date.now() - started);
      } else if (op === 5) {
        finish(-1);
      }
    });
    s.send(request, 69, server);
  });
}

async function main(): Promise<void> {
  if (!server || !name) throw new Error('usage: hostile-tftp-client.ts SERVER flood|get NAME …');
  if (cmd === 'flood') await flood(name, Number(rest[0] ?? 100), Number(rest[1] ?? 8));
  else if (cmd === 'get') await get(name);
  else throw new Error(`unknown command ${cmd}`);
}

main().catch((err: Error) => {
  print({ fatal: err.message });
  process.exit(1);
});
