/** The event the server reports for every DHCP message it receives or sends. */
import { archName, type ClientInfo } from './client';
import { getString, Opt, type MessageTypeName, type Options } from './options';

export interface DhcpEvent {
  type: MessageTypeName;
  mac: string;
  /** The address concerned: offered/acked, requested, released, declined or informed. */
  ip: string | null;
  arch: number | null;
  archName: string | null;
  vendorClass: string | null;
  userClass: string[];
  hostname: string | null;
  uuid: string | null;
  bootFile: string | null;
  /** Which boot rule or override chose the boot file. */
  bootRule: string | null;
  /** Offers and ACKs: option 209 sent (PXELINUX configuration file), when it was. */
  configFile?: string;
  /** Offers and ACKs: option 210 sent (PXELINUX path prefix), when it was. */
  pathPrefix?: string;
  xid: number;
  /** The relay agent's address when relayed. */
  relay: string | null;
  /** Why a request was ignored or refused, when it was. */
  reason?: string;
}

export function makeEvent(
  type: MessageTypeName,
  c: ClientInfo,
  xid: number,
  giaddr: string,
  extra: Partial<DhcpEvent> = {},
): DhcpEvent {
  return {
    type,
    mac: c.mac,
    ip: null,
    arch: c.arch,
    archName: archName(c.arch),
    vendorClass: c.vendorClass,
    userClass: c.userClasses,
    hostname: c.hostname,
    uuid: c.uuid,
    bootFile: null,
    bootRule: null,
    xid,
    relay: giaddr === '0.0.0.0' ? null : giaddr,
    ...extra,
  };
}

/** Options 209/210 as a reply carries them, for its event (whatever set them: a rule or an extra option). */
export function sentPxelinuxOptions(options: Options): Pick<DhcpEvent, 'configFile' | 'pathPrefix'> {
  const configFile = getString(options, Opt.PXELINUX_CONFIG_FILE);
  const pathPrefix = getString(options, Opt.PXELINUX_PATH_PREFIX);
  return { ...(configFile ? { configFile } : {}), ...(pathPrefix ? { pathPrefix } : {}) };
}
