/**
 * The boot-storm client simulator: N BIOS PXE clients in one process, started within `spreadMs`,
 * each replaying the recorded steps (bench/storm/script.ts) against one server address:
 *   DHCP DISCOVER → OFFER → REQUEST → ACK (broadcast flag set, as PXE ROMs do), the leased
 *   address added to the interface (a real client configures it too); in proxy mode the DISCOVER
 *   waits for both the address server's offer and the proxy's (yiaddr 0, option 60 PXEClient),
 *   the REQUEST goes to the address server and the boot file is the proxy offer's; when the
 *   recording has a port-4011 request, the client then sends the proxy a DHCPREQUEST from
 *   <address>:68 to <proxy>:4011 (ciaddr set, server identifier the proxy's, as iPXE's ProxyDHCP
 *   state does) and takes the boot file from its ACK (PXE 2.1 §2.2.3); then every TFTP request
 *   in order from that address (lock-step ACKs, windowsize 1, resent on pxelinux's timeout table), then
 *   the HTTP requests (one connection each, as archiso's curl does).
 * Every file read whole is checked against its SHA-256. Runs inside the clients' namespace:
 *
 *   node --import tsx bench/storm/client.ts <config.json>
 *
 * Prints one JSON line: per-client results and the storm's timings.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { createPacket, decode as decodeDhcp, encode as encodeDhcp, FLAG_BROADCAST } from '../../nodes/lib/dhcp/codec';
import { ipToBuf, maskToPrefix, ipToInt } from '../../nodes/lib/dhcp/ip';
import { getIp, getMessageType, getString, MessageType, Opt } from '../../nodes/lib/dhcp/options';
import { decode as decodeTftp, encodeAck, encodeError, encodeRequest, Opcode } from '../../nodes/lib/tftp/codec';
import { normalisePath, type HttpStep, type Step, type TftpStep } from './script';

export interface ClientConfig {
  iface: string;
  server: string;
  clients: number;
  /** Distinguishes rounds: part of every MAC and xid so each round's clients are new machines. */
  round: number;
  spreadMs: number;
  steps: Step[];
  /** Normalised path → SHA-256 of every file read whole. */
  expect: Record<string, string>;
  /** What the DHCP ACK must say (the first TFTP file, and pxelinux's 209/210 when given). */
  bootFile: string;
  /** Give up on a client after this long. */
  clientTimeoutMs: number;
}

/** One DHCP message of a client's exchange, as seen by the client (sent → or received ←). */
export interface DhcpLogEntry {
  dir: 'sent' | 'received';
  type: string;
  /** Sent: destination address:port; received: the server identifier (option 54) and the port it came from. */
  peer: string;
}

export interface ClientResult {
  i: number;
  mac: string;
  ip: string | null;
  ok: boolean;
  /** ms from this client's DISCOVER to its last byte. */
  ms: number;
  errors: string[];
  tftpRetries: number;
  /** DHCP NAKs answered by starting over. */
  dhcpNaks: number;
  corrupt: number;
  bytes: number;
  /** ms spent in each protocol's steps. */
  phases: { dhcp: number; tftp: number; http: number };
  /** Every DHCP message sent and every reply taken, in order (the replay test compares it with the recording). */
  dhcpLog?: DhcpLogEntry[];
}

const TRIES = 6;
/**
 * pxelinux's TFTP timeouts (TimeoutTable in syslinux's core/fs/pxe, BIOS ticks of 1/18.2 s): a
 * request or ACK is resent after each in turn, 110 ms first, about 90 s in all, then the file fails.
 */
const TFTP_TIMEOUTS_MS = [2, 2, 3, 3, 4, 5, 6, 7, 9, 10, 12, 14, 17, 20, 24, 29, 35, 42, 50, 60, 72, 86, 103, 123, 148, 177, 213, 255].map((t) => Math.round((t * 1000) / 18.2));
const IP = '/usr/sbin/ip';

const cfg = JSON.parse(fs.readFileSync(process.argv[2]!, 'utf8')) as ClientConfig;

function macOf(i: number): Buffer {
  return Buffer.from([0x02, 0x5a, cfg.round & 255, (i >> 8) & 255, i & 255, 0x01]);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------- DHCP (one socket on port 68)
type DhcpReply = ReturnType<typeof decodeDhcp>;
/** Per xid: what to do with a reply (from the shared port-68 socket or a client's own). */
const waiting = new Map<number, (p: DhcpReply, fromPort: number) => void>();
const dhcpSock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
const PXE_PORT = 4011;
const TYPE_NAMES: Record<number, string> = { 1: 'DISCOVER', 2: 'OFFER', 3: 'REQUEST', 5: 'ACK', 6: 'NAK' };
const typeName = (p: DhcpReply): string => TYPE_NAMES[getMessageType(p.options) ?? 0] ?? String(getMessageType(p.options));

interface DhcpFields {
  vendorClass: string;
  userClass: string[];
  arch: number;
}

function dhcpPacket(type: number, xid: number, mac: Buffer, step: DhcpFields, secs: number, o: { requested?: string; server?: string; ciaddr?: string } = {}): Buffer {
  const p = createPacket({ op: 1, xid, secs, flags: FLAG_BROADCAST, chaddr: Buffer.concat([mac, Buffer.alloc(10)]), ciaddr: o.ciaddr ?? '0.0.0.0' });
  p.options.set(Opt.MESSAGE_TYPE, Buffer.from([type]));
  p.options.set(Opt.MAX_MESSAGE_SIZE, Buffer.from([0x05, 0xc0]));
  p.options.set(Opt.PARAMETER_REQUEST_LIST, Buffer.from([1, 3, 6, 7, 12, 13, 15, 17, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135, 175, 203, 209, 210]));
  p.options.set(Opt.CLIENT_ARCH, Buffer.from([(step.arch >> 8) & 255, step.arch & 255]));
  p.options.set(Opt.CLIENT_NDI, Buffer.from([1, 2, 1]));
  p.options.set(Opt.CLIENT_UUID, Buffer.concat([Buffer.from([0]), createHash('md5').update(mac).digest()]));
  p.options.set(Opt.VENDOR_CLASS, Buffer.from(step.vendorClass));
  if (step.userClass.length) p.options.set(Opt.USER_CLASS, Buffer.concat(step.userClass.map((u) => Buffer.concat([Buffer.from([u.length]), Buffer.from(u)]))));
  if (o.requested) p.options.set(Opt.REQUESTED_IP, ipToBuf(o.requested));
  if (o.server) p.options.set(Opt.SERVER_ID, ipToBuf(o.server));
  return encodeDhcp(p);
}

/**
 * Sends (via `send`) and waits until `take` returns a result for the replies to `xid` so far,
 * resending as iPXE does (after 1, 2, 4, 8, 10, 10 s). A NAK ends the wait with an error.
 */
async function dhcpAsk<T>(send: () => void, xid: number, take: (p: DhcpReply, fromPort: number) => T | undefined, what: string): Promise<T> {
  for (let t = 0; t < TRIES; t++) {
    const reply = new Promise<T | Error | null>((resolve) => {
      const timer = setTimeout(() => {
        waiting.delete(xid);
        resolve(null);
      }, Math.min(10, 2 ** t) * 1000);
      waiting.set(xid, (p, fromPort) => {
        const type = getMessageType(p.options);
        let got: T | undefined;
        if (type === MessageType.NAK) got = undefined;
        else if ((got = take(p, fromPort)) === undefined) return;
        clearTimeout(timer);
        waiting.delete(xid);
        resolve(type === MessageType.NAK ? new Error('DHCP NAK') : got!);
      });
    });
    send();
    const p = await reply;
    if (p instanceof Error) throw p;
    if (p !== null) return p;
  }
  throw new Error(`no DHCP ${what} after ${TRIES} tries`);
}

const broadcast = (pkt: Buffer): void => dhcpSock.send(pkt, 67, '255.255.255.255');

/** A proxy DHCP offer: no address, option 60 PXEClient (PXE 2.1 §2.2.3). */
const isProxyOffer = (p: DhcpReply): boolean => p.yiaddr === '0.0.0.0' && (getString(p.options, Opt.VENDOR_CLASS) ?? '').startsWith('PXEClient');

// ---------------------------------------------------------------- TFTP (a socket per transfer)
interface TftpOutcome {
  retries: number;
  bytes: number;
  sha?: string;
}

function tftp(local: string, step: TftpStep): Promise<TftpOutcome> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const hash = step.outcome === 'done' ? createHash('sha256') : null;
    const blksize = Number(step.options.find((o) => o.name.toLowerCase() === 'blksize')?.value ?? 512);
    let last: Buffer = encodeRequest(Opcode.RRQ, step.file, 'octet', step.options);
    let peer: { port: number } | null = null;
    let expectBlock = 1;
    let bytes = 0;
    let retries = 0;
    let tries = 0;
    let timer: NodeJS.Timeout | undefined;
    let finished = false;
    const finish = (err: Error | null, out?: TftpOutcome): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(out!);
    };
    const send = (buf: Buffer): void => {
      last = buf;
      tries = 0;
      sock.send(buf, peer?.port ?? 69, cfg.server);
      arm();
    };
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (++tries >= TFTP_TIMEOUTS_MS.length) return finish(new Error(`TFTP ${step.file}: timed out after ${bytes} bytes`));
        retries++;
        sock.send(last, peer?.port ?? 69, cfg.server);
        arm();
      }, TFTP_TIMEOUTS_MS[tries]);
    };
    const abort = (): void => {
      sock.send(encodeError(0, ''), peer!.port, cfg.server, () => finish(null, { retries, bytes }));
      clearTimeout(timer);
    };
    sock.on('message', (buf, rinfo) => {
      if (finished || rinfo.address !== cfg.server) return;
      if (peer && rinfo.port !== peer.port) return; // another TID: not ours (RFC 1350 would send an ERROR)
      let p;
      try {
        p = decodeTftp(buf);
      } catch (err) {
        return finish(new Error(`TFTP ${step.file}: undecodable packet: ${(err as Error).message}`));
      }
      peer ??= { port: rinfo.port };
      if (p.op === Opcode.ERROR) {
        if (step.outcome === 'not-found' && bytes === 0) return finish(null, { retries, bytes });
        return finish(new Error(`TFTP ${step.file}: ERROR ${p.code} ${p.message}`));
      }
      if (step.outcome === 'not-found') return finish(new Error(`TFTP ${step.file}: expected not-found, got a reply`));
      if (p.op === Opcode.OACK) {
        if (step.outcome === 'declined' || (step.outcome === 'aborted' && (step.abortAfterBytes ?? 0) === 0)) return abort();
        if (expectBlock !== 1) return; // a duplicate OACK
        return send(encodeAck(0));
      }
      if (p.op !== Opcode.DATA) return finish(new Error(`TFTP ${step.file}: unexpected opcode ${p.op}`));
      if (p.block !== (expectBlock & 0xffff)) {
        // A duplicate of the previous block (our ACK was late): ACK it again.
        if (p.block === ((expectBlock - 1) & 0xffff)) sock.send(encodeAck(p.block), peer.port, cfg.server);
        return;
      }
      expectBlock++;
      bytes += p.data.length;
      hash?.update(p.data);
      if (step.outcome === 'aborted' && bytes >= (step.abortAfterBytes ?? 0)) return abort();
      if (p.data.length < blksize) {
        sock.send(encodeAck(p.block), peer.port, cfg.server, () => finish(null, { retries, bytes, sha: hash?.digest('hex') }));
        clearTimeout(timer);
        return;
      }
      send(encodeAck(p.block));
    });
    sock.on('error', (err) => finish(err));
    sock.bind({ address: local, port: 0 }, () => send(last));
  });
}

// ---------------------------------------------------------------- HTTP
function httpGet(local: string, step: HttpStep): Promise<{ status: number; bytes: number; sha: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'User-Agent': 'curl/8.11.1', Accept: '*/*' };
    if (step.range) headers.Range = step.range;
    const req = http.get({ host: cfg.server, port: 80, path: step.path, localAddress: local, agent: false, headers }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        hash.update(d);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, sha: hash.digest('hex') }));
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`HTTP ${step.path}: no data for 30 s`)));
    req.on('error', reject);
  });
}

function addAddress(ipAddr: string, prefix: number): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(IP, ['addr', 'add', `${ipAddr}/${prefix}`, 'dev', cfg.iface], (err) => (err && !/File exists/.test(String(err)) ? reject(err) : resolve())),
  );
}

/**
 * A client's own port-68 socket on its leased address, for the port-4011 exchange: the request
 * leaves from that address (not the namespace's first one) and the proxy's unicast ACK comes back
 * to it. One per client at a time, closed after the exchange.
 */
function bindOwn(address: string): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    s.on('message', (buf, rinfo) => {
      try {
        const p = decodeDhcp(buf);
        waiting.get(p.xid)?.(p, rinfo.port);
      } catch {
        // not a DHCP reply we can read: ignore, as a client would
      }
    });
    s.once('error', reject);
    s.bind({ address, port: 68 }, () => resolve(s));
  });
}

// ---------------------------------------------------------------- one client
async function runClient(i: number): Promise<ClientResult> {
  const mac = macOf(i);
  const r: ClientResult = { i, mac: [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':'), ip: null, ok: false, ms: 0, errors: [], tftpRetries: 0, dhcpNaks: 0, corrupt: 0, bytes: 0, phases: { dhcp: 0, tftp: 0, http: 0 } };
  const start = performance.now();
  const verify = (file: string, sha: string | undefined): void => {
    const want = cfg.expect[normalisePath(file)];
    if (want && sha !== want) {
      r.corrupt++;
      r.errors.push(`${file}: sha256 mismatch`);
    }
  };
  let n = 0;
  try {
    for (const step of cfg.steps) {
      const t = performance.now();
      await runStep(step);
      r.phases[step.proto] += performance.now() - t;
    }
    r.ok = r.errors.length === 0;
  } catch (err) {
    r.errors.push((err as Error).message);
  }
  r.ms = performance.now() - start;
  return r;

  async function runStep(step: Step): Promise<void> {
    if (step.proto === 'dhcp') {
      const secs = (): number => Math.floor((performance.now() - start) / 1000);
      const log = (r.dhcpLog ??= []);
      const sent = (type: string, peer: string, pkt: Buffer): Buffer => (log.push({ dir: 'sent', type, peer }), pkt);
      const took = (p: DhcpReply, fromPort: number): void => void log.push({ dir: 'received', type: typeName(p), peer: `${getIp(p.options, Opt.SERVER_ID) ?? '?'}:${fromPort}` });
      let ack: DhcpReply | undefined;
      let proxyOffer: DhcpReply | undefined;
      // A NAK sends the client back to DISCOVER (RFC 2131 4.4.1), as iPXE does; three rounds at most.
      for (let attempt = 0; !ack; attempt++) {
        const xid = (((cfg.round & 0xff) << 24) | (i << 8) | n++) >>> 0;
        let offer: DhcpReply | undefined;
        proxyOffer = undefined;
        // Full: the first offer. Proxy: an address offer and the proxy's, both (iPXE waits for a
        // ProxyDHCP offer before it requests); each is logged once.
        await dhcpAsk(
          () => broadcast(sent('DISCOVER', '255.255.255.255:67', dhcpPacket(MessageType.DISCOVER, xid, mac, step, secs()))),
          xid,
          (p, fromPort) => {
            if (getMessageType(p.options) !== MessageType.OFFER) return undefined;
            if (step.proxy && isProxyOffer(p)) {
              if (!proxyOffer) took(p, fromPort);
              proxyOffer ??= p;
            } else if (p.yiaddr !== '0.0.0.0') {
              if (!offer) took(p, fromPort);
              offer ??= p;
            }
            return offer && (proxyOffer || !step.proxy) ? true : undefined;
          },
          step.proxy ? 'OFFER from both the address server and the proxy' : 'OFFER',
        );
        const server = getIp(offer!.options, Opt.SERVER_ID) ?? cfg.server;
        try {
          ack = await dhcpAsk(
            () => broadcast(sent('REQUEST', '255.255.255.255:67', dhcpPacket(MessageType.REQUEST, xid, mac, step, secs(), { requested: offer!.yiaddr, server }))),
            xid,
            (p, fromPort) => (getMessageType(p.options) === MessageType.ACK ? (took(p, fromPort), p) : undefined),
            'ACK',
          );
        } catch (err) {
          if (!/NAK/.test((err as Error).message) || attempt >= 2) throw err;
          r.dhcpNaks++;
        }
      }
      if (r.ip === null) {
        r.ip = ack.yiaddr;
        const mask = getIp(ack.options, Opt.SUBNET_MASK) ?? '255.255.255.0';
        await addAddress(r.ip, maskToPrefix(ipToInt(mask) >>> 0));
      }
      // Proxy: the boot file is the proxy's (the address server names none), from its port-4011
      // ACK when the recording has that exchange, else from its offer (as iPXE takes it).
      let bootFrom = step.proxy ? proxyOffer! : ack;
      if (step.proxyRequest && proxyOffer) {
        // ProxyDHCP REQUEST (iPXE's dhcp_proxy_tx): from the leased address, port 68, to the
        // proxy's server identifier on port 4011, ciaddr set, no requested address; the same xid.
        const proxy = getIp(proxyOffer.options, Opt.SERVER_ID) ?? proxyOffer.siaddr;
        const xid = (((cfg.round & 0xff) << 24) | (i << 8) | (n - 1)) >>> 0;
        const own = await bindOwn(r.ip);
        try {
          const pkt = dhcpPacket(MessageType.REQUEST, xid, mac, step.proxyRequest, secs(), { ciaddr: r.ip, server: proxy });
          bootFrom = await dhcpAsk(
            () => own.send(sent('REQUEST', `${proxy}:${PXE_PORT}`, pkt), PXE_PORT, proxy),
            xid,
            (p, fromPort) => (getMessageType(p.options) === MessageType.ACK ? (took(p, fromPort), p) : undefined),
            'ACK from the proxy on port 4011',
          );
        } finally {
          own.close();
        }
      }
      const boot = getString(bootFrom.options, Opt.BOOTFILE_NAME) ?? bootFrom.file;
      if (normalisePath(boot) !== normalisePath(cfg.bootFile)) r.errors.push(`DHCP boot file ${JSON.stringify(boot)}, expected ${cfg.bootFile}`);
    } else if (step.proto === 'tftp') {
      const out = await tftp(r.ip!, step);
      r.tftpRetries += out.retries;
      r.bytes += out.bytes;
      if (step.outcome === 'done') verify(step.file, out.sha);
    } else {
      const out = await httpGet(r.ip!, step);
      r.bytes += out.bytes;
      if (step.range) {
        if (out.status !== 206 || out.bytes !== 1) r.errors.push(`HTTP ${step.path} ${step.range}: status ${out.status}, ${out.bytes} bytes`);
      } else if (out.status !== step.status) {
        r.errors.push(`HTTP ${step.path}: status ${out.status}, recorded ${step.status}`);
      } else if (out.status === 200) {
        verify(step.path, out.sha);
      }
    }
  }
}

async function main(): Promise<void> {
  dhcpSock.on('message', (buf, rinfo) => {
    try {
      const p = decodeDhcp(buf);
      waiting.get(p.xid)?.(p, rinfo.port);
    } catch {
      // not a DHCP reply we can read: ignore, as a client would
    }
  });
  await new Promise<void>((resolve) => dhcpSock.bind({ address: '0.0.0.0', port: 68 }, resolve));
  dhcpSock.setBroadcast(true);
  const t0 = performance.now();
  const deadline = sleep(cfg.clientTimeoutMs + cfg.spreadMs).then(() => 'timeout' as const);
  const runs = Array.from({ length: cfg.clients }, (_, i) =>
    sleep((i * cfg.spreadMs) / cfg.clients).then(() =>
      Promise.race([
        runClient(i),
        deadline.then((): ClientResult => ({ i, mac: '', ip: null, ok: false, ms: cfg.clientTimeoutMs, errors: ['client timed out'], tftpRetries: 0, dhcpNaks: 0, corrupt: 0, bytes: 0, phases: { dhcp: 0, tftp: 0, http: 0 } })),
      ]),
    ),
  );
  const results = await Promise.all(runs);
  const allMs = performance.now() - t0;
  process.stdout.write(JSON.stringify({ allMs, results }) + '\n');
  dhcpSock.close();
  process.exit(0);
}

main().catch((err: Error) => {
  process.stdout.write(JSON.stringify({ fatal: err.stack ?? err.message }) + '\n');
  process.exit(1);
});
