import * as os from 'node:os';
import type { RedApi } from './red';

export interface InterfaceInfo {
  name: string;
  /** IPv4 addresses in CIDR form, e.g. 192.168.0.1/24. */
  ipv4: string[];
  mac: string;
  internal: boolean;
}

/** The machine's network interfaces with their IPv4 addresses, for the editor's pickers. */
export function listInterfaces(): InterfaceInfo[] {
  const out: InterfaceInfo[] = [];
  for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
    if (!addrs) continue;
    const v4 = addrs.filter((a) => a.family === 'IPv4');
    out.push({
      name,
      ipv4: v4.map((a) => a.cidr ?? a.address),
      mac: addrs[0]?.mac ?? '',
      internal: addrs.every((a) => a.internal),
    });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

const registered = new WeakSet<object>();

/**
 * GET /pxe/interfaces for the DHCP and NAT editors. Several node types call this; it registers
 * the route once per runtime.
 */
export function registerInterfacesEndpoint(RED: RedApi, permission: string): void {
  if (registered.has(RED.httpAdmin)) return;
  registered.add(RED.httpAdmin);
  RED.httpAdmin.get('/pxe/interfaces', RED.auth.needsPermission(permission), (_req, res) => {
    res.json(listInterfaces());
  });
}
