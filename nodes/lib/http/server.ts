/**
 * The node's own HTTP listener around a request handler: listen with errors a user can act on,
 * keep-alive, a timeout for vanished clients, and a close that really waits.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ListenOptions {
  /** Bind address; '' or undefined for all addresses. */
  address?: string;
  port: number;
  /** A socket with no traffic either way for this long is closed (default 60 s): a vanished client. */
  idleTimeoutMs?: number;
}

/**
 * Connections at once, over the listener and from one client address. An open connection costs
 * little (a socket, a parser: ~10 KiB) but nothing else bounds how many a client opens and keeps
 * idle; over a limit a new connection is closed at once. 128 per address: 64 downloads (the
 * transfer limit) plus as many idle keep-alive connections; 1,024 in all.
 */
export const MAX_CONNECTIONS = 1024;
export const MAX_CONNECTIONS_PER_CLIENT = 128;

export class HttpListener {
  readonly server: http.Server;
  private readonly perClient = new Map<string, number>();
  /** Connections closed at once for being over a limit. */
  refused = 0;

  constructor(
    handler: http.RequestListener,
    readonly limits: { maxConnections?: number; maxConnectionsPerClient?: number } = {},
  ) {
    this.server = http.createServer({ keepAlive: true }, handler);
    this.server.maxConnections = limits.maxConnections ?? MAX_CONNECTIONS;
    const perClientMax = limits.maxConnectionsPerClient ?? MAX_CONNECTIONS_PER_CLIENT;
    this.server.on('connection', (socket) => {
      const who = socket.remoteAddress ?? '';
      const n = this.perClient.get(who) ?? 0;
      if (n >= perClientMax) {
        this.refused++;
        socket.destroy();
        return;
      }
      this.perClient.set(who, n + 1);
      socket.once('close', () => {
        const left = (this.perClient.get(who) ?? 1) - 1;
        if (left > 0) this.perClient.set(who, left);
        else this.perClient.delete(who);
      });
    });
  }

  /** Open connections from `address`. */
  connectionsFrom(address: string): number {
    return this.perClient.get(address) ?? 0;
  }

  /** Starts listening; rejects with the bind error as it is (its code says what went wrong; the node words the fix). */
  listen(opts: ListenOptions): Promise<AddressInfo> {
    const s = this.server;
    s.keepAliveTimeout = 5000;
    s.setTimeout(opts.idleTimeoutMs ?? 60_000);
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        s.off('listening', onListening);
        reject(err);
      };
      const onListening = (): void => {
        s.off('error', onError);
        resolve(s.address() as AddressInfo);
      };
      s.once('error', onError);
      s.once('listening', onListening);
      s.listen({ port: opts.port, host: opts.address || undefined });
    });
  }

  get address(): AddressInfo | null {
    return this.server.address() as AddressInfo | null;
  }

  /** Stops accepting, closes idle keep-alive sockets and cuts transfers in flight; resolves when closed. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
      this.server.closeAllConnections();
    });
  }
}
