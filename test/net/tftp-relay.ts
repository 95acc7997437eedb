/**
 * A lossy, reordering TFTP relay for the network tests, run in the client namespace. The lab's
 * kernel has no netem qdisc, so this stands in for `tc qdisc add … netem loss 2% reorder 25%
 * delay 1ms`: every datagram in either direction is dropped with probability --loss, and held
 * back --delay-ms (so later ones overtake it) with probability --reorder.
 *
 * TFTP-aware: a client's request to the relay's port goes to the server's port from a fresh
 * upstream socket; the server's transfer port (TID) is learned from its first reply, and the
 * client sees a relay socket of its own as the server's TID.
 *   tftp-relay.ts --listen IP:PORT --server IP:PORT [--loss 0.02] [--reorder 0.25] [--delay-ms 1]
 * Prints {"relaying":…} when ready and {"stats":{forwarded,dropped,delayed}} on SIGTERM.
 */
import * as dgram from 'node:dgram';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}
const hostPort = (s: string): [string, number] => {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i), Number(s.slice(i + 1))];
};

const [listenIp, listenPort] = hostPort(arg('listen'));
const [serverIp, serverPort] = hostPort(arg('server'));
const loss = Number(arg('loss', '0.02'));
const reorder = Number(arg('reorder', '0.25'));
const delayMs = Number(arg('delay-ms', '1'));
const stats = { forwarded: 0, dropped: 0, delayed: 0 };

/** Sends through the impaired "link". */
function impaired(socket: dgram.Socket, msg: Buffer, port: number, ip: string): void {
  if (Math.random() < loss) {
    stats.dropped++;
    return;
  }
  stats.forwarded++;
  if (Math.random() < reorder) {
    stats.delayed++;
    setTimeout(() => socket.send(msg, port, ip, () => undefined), delayMs);
  } else {
    socket.send(msg, port, ip, () => undefined);
  }
}

interface Session {
  up: dgram.Socket;
  down: dgram.Socket;
  serverTid: number;
}
const sessions = new Map<string, Session>();
const bound = (s: dgram.Socket, port: number, ip: string): Promise<void> => new Promise((r) => s.bind(port, ip, () => r()));

const main = dgram.createSocket('udp4');
main.on('message', (msg, rinfo) => {
  const key = `${rinfo.address}:${rinfo.port}`;
  let session = sessions.get(key);
  if (!session) {
    const s: Session = { up: dgram.createSocket('udp4'), down: dgram.createSocket('udp4'), serverTid: 0 };
    session = s;
    sessions.set(key, s);
    s.up.on('message', (m, from) => {
      if (from.port !== serverPort) s.serverTid = from.port;
      impaired(s.down, m, rinfo.port, rinfo.address);
    });
    s.down.on('message', (m) => {
      if (s.serverTid) impaired(s.up, m, s.serverTid, serverIp);
    });
    void Promise.all([bound(s.up, 0, '0.0.0.0'), bound(s.down, 0, listenIp)]).then(() => impaired(s.up, msg, serverPort, serverIp));
    return;
  }
  // A repeated request before the server answered.
  impaired(session.up, msg, serverPort, serverIp);
});
main.bind(listenPort, listenIp, () => {
  process.stdout.write(JSON.stringify({ relaying: { listen: `${listenIp}:${listenPort}`, server: `${serverIp}:${serverPort}`, loss, reorder, delayMs } }) + '\n');
});
process.on('SIGTERM', () => {
  process.stdout.write(JSON.stringify({ stats }) + '\n');
  process.exit(0);
});
