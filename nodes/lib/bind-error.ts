/**
 * What went wrong when a server could not bind its port, as the key of the node's locale
 * messages (`errors.<key>`; the status uses `listenError` for 'listen'). Each node's messages
 * say how to fix it in its own words; server-node.ts's `listen` shows them.
 */
export type BindErrorKind = 'inUse' | 'noPermission' | 'badAddress' | 'listen';

export function bindErrorKind(err: unknown): BindErrorKind {
  switch ((err as NodeJS.ErrnoException | undefined)?.code) {
    case 'EADDRINUSE':
      return 'inUse';
    case 'EACCES': // a port below 1024 without CAP_NET_BIND_SERVICE
    case 'EPERM':
      return 'noPermission';
    case 'EADDRNOTAVAIL':
      return 'badAddress';
    default:
      return 'listen';
  }
}
