/**
 * A transfer's own UDP socket (its TID): bound to the address of port 69 on a free port and
 * connected to the client, so the kernel drops datagrams from other TIDs and reports an ICMP port
 * unreachable (the client is gone) as ECONNREFUSED. Two implementations with one behaviour:
 * the native addon's batched I/O when it is built (IPv4), else Node's dgram.
 */
import * as dgram from 'node:dgram';
import { constants } from 'node:os';
import { errnoName, nativeUdp, nativeUdpMissing, type NativeUdp } from '../native-udp';

const { EAGAIN, ENOBUFS } = constants.errno;

export interface TransferSocket {
  readonly kind: 'native' | 'dgram';
  /** Sends one datagram; a full socket buffer drops it (the retransmit timer covers that). */
  send(data: Buffer): void;
  /**
   * Starts delivering datagrams from the client and socket errors (`code` ECONNREFUSED when the
   * client's port is unreachable). `msg` is only valid during the call.
   */
  listen(onMessage: (msg: Buffer) => void, onError: (err: NodeJS.ErrnoException) => void): void;
  /** Stops delivering datagrams; later errors are swallowed. */
  mute(): void;
  /** Resolves once the socket is closed. */
  close(): Promise<void>;
}

export interface Peer {
  address: string;
  port: number;
}

/** Which I/O transfer sockets bound to `local` get: the addon (asked for, IPv4, built) or dgram and why. */
export function transferSocketIo(local: string, native: boolean): { kind: 'native' | 'dgram'; reason?: string } {
  if (!native) return { kind: 'dgram', reason: 'turned off' };
  if (local.includes(':')) return { kind: 'dgram', reason: 'IPv6' };
  const missing = nativeUdpMissing();
  return missing ? { kind: 'dgram', reason: missing } : { kind: 'native' };
}

/** Opens a transfer socket; `native` false forces dgram. Rejects with the bind/connect error. */
export async function openTransferSocket(local: string, peer: Peer, native = true): Promise<TransferSocket> {
  const io = native && !local.includes(':') ? nativeUdp() : null;
  if (io) return new NativeTransferSocket(io, local, peer);
  return openDgram(local, peer);
}

const ignore = (): void => undefined;

function errnoError(code: string, syscall: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${syscall} ${code}`);
  err.code = code;
  err.syscall = syscall;
  return err;
}

/** The handlers both implementations deliver to, and their muting. */
abstract class Delivery {
  protected onMessage: (msg: Buffer) => void = ignore;
  protected onError: (err: NodeJS.ErrnoException) => void = ignore;

  listen(onMessage: (msg: Buffer) => void, onError: (err: NodeJS.ErrnoException) => void): void {
    this.onMessage = onMessage;
    this.onError = onError;
  }

  mute(): void {
    this.onMessage = ignore;
    this.onError = ignore;
  }
}

class NativeTransferSocket extends Delivery implements TransferSocket {
  readonly kind = 'native';
  private readonly fd: number;
  private closed = false;

  constructor(
    private readonly io: NativeUdp,
    local: string,
    peer: Peer,
  ) {
    super();
    this.fd = io.connect(local, peer.address, peer.port, {
      message: (data) => this.onMessage(data),
      error: (code) => this.onError(errnoError(code, 'recv')),
    });
  }

  send(data: Buffer): void {
    if (this.closed) return;
    const r = this.io.send(this.fd, data);
    // EAGAIN/ENOBUFS: dropped like a lost packet. Anything else (ECONNREFUSED from an earlier
    // ICMP error) is reported as dgram would: asynchronously, through the error handler.
    if (r < 0 && r !== -EAGAIN && r !== -ENOBUFS) {
      const err = errnoError(errnoName(-r), 'send');
      process.nextTick(() => this.onError(err));
    }
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.mute();
      this.io.close(this.fd);
    }
    return Promise.resolve();
  }
}

class DgramTransferSocket extends Delivery implements TransferSocket {
  readonly kind = 'dgram';
  private closing: Promise<void> | undefined;

  constructor(private readonly socket: dgram.Socket) {
    super();
    socket.on('message', (msg) => this.onMessage(msg));
    // Always listening: a late ICMP error must not become an uncaught 'error' event.
    socket.on('error', (err) => this.onError(err));
  }

  send(data: Buffer): void {
    this.socket.send(data);
  }

  close(): Promise<void> {
    this.mute();
    this.closing ??= new Promise<void>((resolve) => this.socket.close(() => resolve()));
    return this.closing;
  }
}

function openDgram(local: string, peer: Peer): Promise<TransferSocket> {
  const socket = dgram.createSocket({ type: local.includes(':') ? 'udp6' : 'udp4' });
  return new Promise<TransferSocket>((resolve, reject) => {
    const fail = (err: Error): void => {
      socket.close();
      reject(err);
    };
    socket.once('error', fail);
    socket.bind({ address: local, port: 0 }, () => {
      socket.connect(peer.port, peer.address, () => {
        socket.off('error', fail);
        resolve(new DgramTransferSocket(socket));
      });
    });
  });
}
