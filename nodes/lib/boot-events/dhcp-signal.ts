import type { DhcpEvent } from '../dhcp/events';
import type { DhcpSignal } from './bus';
import { bootChoiceFor } from './choices';

/**
 * What a DHCP offer or ACK tells the boot view: the boot information the client got (mode, boot
 * file, options 209/210, the rule that chose them) and what the client said of itself (vendor
 * class, user class, hostname, architecture), and the menu entry and ISO a generated config boots.
 * Null and empty fields are left out.
 */
export function dhcpSignal(e: DhcpEvent, mode: 'full' | 'proxy', at = Date.now()): DhcpSignal {
  // A generated config names the entry (and ISO) the client will boot.
  const chosen = bootChoiceFor(e.pathPrefix ?? undefined, e.configFile ?? undefined);
  return {
    source: 'dhcp',
    kind: e.type as DhcpSignal['kind'],
    mac: e.mac,
    at,
    mode,
    ...(e.ip ? { ip: e.ip } : {}),
    ...(e.archName ? { arch: e.archName } : {}),
    ...(e.bootFile ? { bootFile: e.bootFile } : {}),
    ...(e.bootRule ? { bootRule: e.bootRule } : {}),
    ...(e.configFile ? { configFile: e.configFile } : {}),
    ...(e.pathPrefix ? { pathPrefix: e.pathPrefix } : {}),
    ...(e.vendorClass ? { vendorClass: e.vendorClass } : {}),
    ...(e.userClass.length ? { userClass: e.userClass } : {}),
    ...(e.hostname ? { hostname: e.hostname } : {}),
    ...(chosen?.entry ? { entry: chosen.entry } : {}),
    ...(chosen?.iso ? { iso: chosen.iso } : {}),
  };
}
