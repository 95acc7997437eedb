/**
 * DHCP sockets bound to ONE interface, without a native addon.
 *
 * Serving only on the interface the user picked
 * ---------------------------------------------
 * Node's `dgram` has no SO_BINDTODEVICE and no IP_PKTINFO: a socket on 0.0.0.0:67 receives the
 * DHCP broadcasts of every interface and cannot tell which one a packet came in on. Setting the
 * option needs native code (an N-API addon, i.e. a compiler or prebuilt binaries for every Pi),
 * which we do not want to require. So:
 *
 *  - Sending: a socket bound to the interface's own address, port 67 (SO_REUSEADDR). Linux sends
 *    its broadcasts (255.255.255.255) out of the interface that owns the source address, even
 *    when there is no default route; a socket on 0.0.0.0 would fail with ENETUNREACH there.
 *    Unicast replies (relay, renewing client) are routed normally. The same socket receives
 *    unicast sent to our address (renewals, relay agents); since that can come in through any
 *    interface, it is source-filtered like the fallback below.
 *
 *  - Receiving, preferred ("nftables" isolation): a stateless nftables rule in a table of our own
 *    rewrites the destination port of DHCP packets delivered to this host through the chosen
 *    interface (`iifname "<if>" udp dport 67 udp dport set <P>` in an input-hook chain), and we
 *    listen on 0.0.0.0:<P>. Exactly the chosen interface's traffic reaches us; nothing from other
 *    interfaces does. The input hook, not prerouting: with br_netfilter loaded (Docker does it)
 *    frames bridged through a chosen bridge pass prerouting too, and rewriting them there would
 *    break the other DHCP server a proxyDHCP sits beside. Priority 10 runs after the usual filter
 *    chains, so a firewall that accepts port 67 still sees port 67. Needs CAP_NET_ADMIN (root, or `AmbientCapabilities=
 *    CAP_NET_BIND_SERVICE CAP_NET_ADMIN` in the nodered.service drop-in) and the `nft` binary.
 *    The table (`pxeflow_dhcp_<if>`) is removed on close and when a later step of opening fails
 *    (e.g. port 4011 in use), and replaced on the next start if a crash left it behind. It also
 *    diverts port-67 traffic on that interface away from any other DHCP server on the same
 *    machine — which is the point of picking an interface.
 *
 *  - Receiving, fallback ("filter" isolation, used when nftables is not available): a socket on
 *    0.0.0.0:67 (SO_REUSEADDR), and packets are filtered by source: relayed (giaddr set) →
 *    accepted; from an address in the interface's subnet → accepted; from another address →
 *    dropped. LIMITATION: a client that has no address yet sends from 0.0.0.0, so a DISCOVER or
 *    REQUEST broadcast on ANOTHER interface is processed too. The reply still leaves only through
 *    the chosen interface, so that client never sees it and gets nothing — but the node reports
 *    the event, and in full mode holds an offered address for it for a minute.
 *
 * Port 4011 (proxy mode's PXE boot-server port) is bound on the interface address only: PXE
 * clients unicast to it once they have an address.
 *
 * Ports below 1024 need CAP_NET_BIND_SERVICE (or root).
 */
import * as dgram from 'node:dgram';
import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { intToIp, ipToInt, prefixToMask, sameSubnet } from './ip';
import { PXE_PORT, SERVER_PORT } from './reply-route';
import type { DhcpTransport, IncomingMessage } from './message-loop';

export type Isolation = 'auto' | 'nftables' | 'filter';

export interface InterfaceAddress {
  iface: string;
  address: string;
  prefix: number;
  mac: string;
}

/** The interface's first IPv4 address; throws a readable error if there is none. */
export function interfaceAddress(iface: string): InterfaceAddress {
  const addrs = os.networkInterfaces()[iface];
  if (!addrs) throw new Error(`network interface "${iface}" does not exist`);
  const v4 = addrs.find((a) => a.family === 'IPv4');
  if (!v4) throw new Error(`network interface "${iface}" has no IPv4 address; give it one (e.g. 192.168.0.1/24) first`);
  const prefix = v4.cidr ? Number(v4.cidr.split('/')[1]) : 24;
  return { iface, address: v4.address, prefix, mac: v4.mac };
}

export interface SocketOptions {
  iface: string;
  /** Also listen on port 4011 for PXE boot-server requests (proxy mode). */
  pxePort: boolean;
  isolation: Isolation;
  /** Overrides for tests; normally read from the interface. */
  address?: InterfaceAddress;
}

/** A friendly error for the two bind failures users meet. */
export function bindErrorMessage(err: NodeJS.ErrnoException, what: string): string {
  if (err.code === 'EACCES' || err.code === 'EPERM') {
    return `cannot bind ${what}: ports below 1024 need privilege. Run \`sudo setcap cap_net_bind_service=+ep $(which node)\` or add AmbientCapabilities=CAP_NET_BIND_SERVICE to the Node-RED service`;
  }
  if (err.code === 'EADDRINUSE') {
    return `cannot bind ${what}: the port is in use by another program (another DHCP server such as dnsmasq?) that did not set SO_REUSEADDR; stop it or pick another interface`;
  }
  if (err.code === 'EADDRNOTAVAIL') return `cannot bind ${what}: the address is not on this machine (interface down or readdressed?)`;
  return `cannot bind ${what}: ${err.message}`;
}

function bindUdp(address: string, port: number, reuse: boolean): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: reuse });
    const onError = (err: NodeJS.ErrnoException): void => {
      s.close();
      reject(new Error(bindErrorMessage(err, `${address}:${port}`)));
    };
    s.once('error', onError);
    s.bind({ address, port, exclusive: true }, () => {
      s.off('error', onError);
      resolve(s);
    });
  });
}

function closeUdp(s: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      s.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}

const NFT_CANDIDATES = ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'];

function nftBinary(): string | null {
  return NFT_CANDIDATES.find((p) => fs.existsSync(p)) ?? null;
}

function runNft(nft: string, script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(nft, ['-f', '-'], { timeout: 5000 }, (err, _out, stderr) => {
      if (err) reject(new Error(`nft: ${(stderr || err.message).trim()}`));
      else resolve();
    });
    child.stdin?.end(script);
  });
}

/** Our table's name for an interface: nft identifiers allow letters, digits and underscores. */
export function nftTableName(iface: string): string {
  return `pxeflow_dhcp_${iface.replace(/[^A-Za-z0-9_]/g, (c) => `_${c.charCodeAt(0).toString(16)}`)}`;
}

/** Removes our table again. */
export function nftDeleteScript(iface: string): string {
  return `delete table ip ${nftTableName(iface)}\n`;
}

/** The ruleset diverting the interface's DHCP traffic to `port` (replacing a stale copy). */
export function nftRuleset(iface: string, port: number): string {
  const t = nftTableName(iface);
  return [
    `table ip ${t} {}`,
    `delete table ip ${t}`,
    `table ip ${t} {`,
    `  chain input {`,
    `    type filter hook input priority 10; policy accept;`,
    `    iifname ${JSON.stringify(iface)} udp dport ${SERVER_PORT} udp dport set ${port}`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}

/** What opening the sockets needs from the system; unit tests pass fakes (no privileges, no nft). */
export interface SocketSystem {
  bind(address: string, port: number, reuse: boolean): Promise<dgram.Socket>;
  /** Path of the nft binary, or null when it is not installed. */
  nftBinary(): string | null;
  runNft(nft: string, script: string): Promise<void>;
}

const SYSTEM: SocketSystem = { bind: bindUdp, nftBinary, runNft };

export class DhcpSockets extends EventEmitter implements DhcpTransport {
  /** Packets dropped by the fallback's source filter. */
  filtered = 0;
  private closing: Promise<void> | null = null;

  private constructor(
    readonly addr: InterfaceAddress,
    readonly isolation: 'nftables' | 'filter',
    /** Why nftables was not used, when it was not. */
    readonly isolationNote: string | null,
    private readonly tx: dgram.Socket,
    private readonly rx: dgram.Socket,
    private readonly pxe: dgram.Socket | null,
    private readonly nft: string | null,
    private readonly sys: SocketSystem,
  ) {
    super();
    const mask = prefixToMask(addr.prefix);
    const local = ipToInt(addr.address);
    const wire = (s: dgram.Socket, localPort: number, filter: boolean): void => {
      s.on('message', (buf, rinfo) => {
        if (filter && !this.acceptFallback(buf, rinfo.address, local, mask)) {
          this.filtered++;
          return;
        }
        const m: IncomingMessage = { buf, address: rinfo.address, port: rinfo.port, localPort };
        this.emit('message', m);
      });
      s.on('error', (err) => this.emit('error', err));
    };
    // Unicast to our address can arrive from any interface: only relays (giaddr) and clients of
    // our own subnet (renewing) have business there, in both isolation modes.
    wire(tx, SERVER_PORT, true);
    wire(rx, SERVER_PORT, isolation === 'filter');
    if (pxe) wire(pxe, PXE_PORT, false);
  }

  /** Fallback source filter: relayed, unaddressed, or from our subnet (see the top comment). */
  private acceptFallback(buf: Buffer, src: string, local: number, mask: number): boolean {
    if (buf.length >= 28 && buf.readUInt32BE(24) !== 0) return true; // giaddr: a relay agent
    if (src === '0.0.0.0') return true;
    return sameSubnet(ipToInt(src), local, mask);
  }

  static async open(opts: SocketOptions, sys: SocketSystem = SYSTEM): Promise<DhcpSockets> {
    const addr = opts.address ?? interfaceAddress(opts.iface);
    const opened: dgram.Socket[] = [];
    let isolation: 'nftables' | 'filter' = 'filter';
    let nft: string | null = null;
    try {
      const tx = await sys.bind(addr.address, SERVER_PORT, true);
      opened.push(tx);
      tx.setBroadcast(true);
      let note: string | null = null;
      let rx: dgram.Socket | null = null;
      if (opts.isolation !== 'filter') {
        nft = sys.nftBinary();
        if (!nft) note = 'nft is not installed';
        else {
          rx = await sys.bind('0.0.0.0', 0, false);
          opened.push(rx);
          try {
            await sys.runNft(nft, nftRuleset(opts.iface, rx.address().port));
            isolation = 'nftables';
          } catch (e) {
            note = (e as Error).message;
            opened.pop();
            await closeUdp(rx);
            rx = null;
            nft = null;
          }
        }
        if (opts.isolation === 'nftables' && isolation !== 'nftables') throw new Error(`nftables isolation unavailable: ${note}`);
      }
      if (!rx) {
        rx = await sys.bind('0.0.0.0', SERVER_PORT, true);
        opened.push(rx);
      }
      let pxe: dgram.Socket | null = null;
      if (opts.pxePort) {
        pxe = await sys.bind(addr.address, PXE_PORT, true);
        opened.push(pxe);
      }
      return new DhcpSockets(addr, isolation, note, tx, rx, pxe, isolation === 'nftables' ? nft : null, sys);
    } catch (e) {
      await Promise.all(opened.map(closeUdp));
      // The table would keep diverting the interface's DHCP traffic to a port nobody listens on.
      // Best effort: the error that stopped us is the one to report.
      if (isolation === 'nftables' && nft) await sys.runNft(nft, nftDeleteScript(opts.iface)).catch(() => {});
      throw e;
    }
  }

  send(buf: Buffer, address: string, port: number, fromLocalPort: number): Promise<void> {
    const s = fromLocalPort === PXE_PORT && this.pxe ? this.pxe : this.tx;
    return new Promise((resolve, reject) => s.send(buf, port, address, (err) => (err ? reject(err) : resolve())));
  }

  /** Closes the sockets and removes the nftables table; safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all([this.tx, this.rx, this.pxe].filter((s): s is dgram.Socket => !!s).map(closeUdp));
      if (this.nft) {
        await this.sys.runNft(this.nft, nftDeleteScript(this.addr.iface)).catch((e: Error) => this.emit('error', e));
      }
    })();
    return this.closing;
  }

  get description(): string {
    return `${this.addr.iface} ${this.addr.address}/${this.addr.prefix} (${intToIp(ipToInt(this.addr.address) & prefixToMask(this.addr.prefix))}), isolation ${this.isolation}`;
  }
}
