/**
 * Hostile HTTP clients for the hostile tests and bench, run inside a lab namespace: opens
 * `--count` connections (spread over the local addresses of `--from`), each sending one range
 * request for `--path` and reading nothing past the response headers. Prints one JSON line once
 * every connection has its headers (or after `--wait` ms): {"stalled":{"opened","answered",
 * "statuses":{...},"closed"}}; on stdin "close" (or its end) it closes them all, prints
 * {"closed":true} and exits.
 * Usage: hostile-http-clients.ts --host IP --port N --path P --count N --from IP[,IP…]
 *        [--wait MS] [--range bytes=A-B]
 */
import * as net from 'node:net';
import * as readline from 'node:readline';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

const host = arg('host');
const port = Number(arg('port'));
const target = arg('path');
const count = Number(arg('count'));
const from = arg('from').split(',');
const waitMs = Number(arg('wait', '10000'));
const range = arg('range', '');
const print = (o: unknown): void => {
  process.stdout.write(JSON.stringify(o) + '\n');
};

const sockets: net.Socket[] = [];
const statuses: Record<string, number> = {};
let answered = 0;
let closedEarly = 0;
let reported = false;

function report(): void {
  if (reported) return;
  reported = true;
  print({ stalled: { opened: sockets.length, answered, statuses, closed: closedEarly } });
}

for (let i = 0; i < count; i++) {
  const s = net.connect({ host, port, localAddress: from[i % from.length] });
  sockets.push(s);
  let head = '';
  let done = false;
  s.on('error', () => undefined);
  s.on('close', () => {
    if (!done) {
      done = true;
      closedEarly++;
      if (answered + closedEarly === count) report();
    }
  });
  s.on('connect', () => {
    const r = range ? `Range: ${range}\r\n` : '';
    s.write(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${r}\r\n`);
  });
  s.on('data', (d: Buffer) => {
    if (done) return;
    head += d.toString('latin1', 0, Math.min(d.length, 4096));
    const end = head.indexOf('\r\n\r\n');
    if (end < 0 && head.length < 16384) return;
    // Headers seen: from now on this client reads nothing.
    done = true;
    s.pause();
    const status = /^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 'bad';
    statuses[status] = (statuses[status] ?? 0) + 1;
    answered++;
    if (answered + closedEarly === count) report();
  });
}
setTimeout(report, waitMs).unref();

function closeAll(): void {
  for (const s of sockets) s.destroy();
  print({ closed: true });
  process.exit(0);
}
readline
  .createInterface({ input: process.stdin })
  .on('line', (l) => {
    if (l.trim() === 'close') closeAll();
  })
  .on('close', closeAll);
