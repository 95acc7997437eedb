/**
 * Errors of the NAT code, with a code the node maps to a status and a hint telling the user what
 * to do (the messages are shown as they are in the Node-RED debug sidebar).
 */
export type NatErrorCode =
  | 'EINVAL' // settings that are not valid (a subnet that is not a subnet, a bad port)
  | 'ENOENT' // a firewall tool is not installed
  | 'EPERM' // no CAP_NET_ADMIN (or not root)
  | 'ETIMEDOUT' // a tool did not answer in time
  | 'EFAIL'; // a tool failed for another reason

export class NatError extends Error {
  constructor(
    readonly code: NatErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'NatError';
  }
}

export const PERMISSION_HINT =
  'changing firewall rules and IPv4 forwarding needs CAP_NET_ADMIN: run Node-RED as root, or under systemd with ' +
  'AmbientCapabilities=CAP_NET_ADMIN (a file capability on node is not passed on to nft/iptables), or set ' +
  "pxeNat: { commandPrefix: ['/usr/bin/sudo', '-n'] } in settings.js with a sudoers rule for nft/iptables";
