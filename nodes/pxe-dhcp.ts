import * as path from 'node:path';
import { bootBus } from './lib/boot-events/bus';
import { ARCH_BIOS_DEFAULTS, type BootAction } from './lib/dhcp/boot-rules';
import type { DhcpEvent } from './lib/dhcp/events';
import { parseExtraOptions, toServiceConfig, type BiosDefaults, type DhcpNodeDef } from './lib/dhcp/node-config';
import { DhcpService, RogueServerError } from './lib/dhcp/service';
import { interfaceAddress } from './lib/dhcp/socket';
import { registerInterfacesEndpoint } from './lib/interfaces';
import type { NodeDef, NodeMessage, RedApi, RedNode } from './lib/red';
import { detectArchiso } from './lib/store/archiso';
import { getStoreNode, type IsoStoreNode } from './lib/store-node';

interface PxeDhcpDef extends NodeDef, DhcpNodeDef {
  store?: string;
}

/**
 * The BIOS rule's defaults: what the store's Arch ISO needs (its layout's loader and options
 * 209/210), or the wiki's settings when there is no store or no Arch ISO in it.
 */
async function biosDefaults(storeNode: IsoStoreNode | null, user: RedNode): Promise<{ bios: BiosDefaults; from: string }> {
  if (!storeNode) return { bios: ARCH_BIOS_DEFAULTS, from: "the Arch wiki's settings" };
  try {
    const info = await detectArchiso(await storeNode.acquire(user));
    if (info.detected && info.dhcp) {
      const { bootFile, configFile, pathPrefix } = info.dhcp;
      return { bios: { bootFile, configFile, pathPrefix }, from: `the ISO (${info.layout} layout)` };
    }
    return { bios: ARCH_BIOS_DEFAULTS, from: "the Arch wiki's settings (no Arch ISO found in the store)" };
  } finally {
    await storeNode.release(user);
  }
}

/** The boot override a flow sends in msg.payload (pixiecore-API style). */
function overrideFrom(p: Record<string, unknown>): BootAction | null {
  if (p.remove === true) return null;
  const a: BootAction = {};
  for (const k of ['nextServer', 'bootFile', 'tftpServer', 'configFile', 'pathPrefix'] as const) {
    if (typeof p[k] === 'string' && p[k]) a[k] = p[k] as string;
  }
  if (p.noBoot === true) a.noBoot = true;
  if (p.raspberryPi === true) a.raspberryPi = true;
  if (Array.isArray(p.options)) a.options = p.options as BootAction['options'];
  else if (typeof p.options === 'string') a.options = parseExtraOptions(p.options);
  return a;
}

export = function register(RED: RedApi): void {
  registerInterfacesEndpoint(RED, 'pxe-dhcp.read');

  function PxeDhcpNode(this: RedNode, def: PxeDhcpDef): void {
    RED.nodes.createNode(this, def);
    let service: DhcpService | null = null;
    let closing = false;

    const userDir = RED.settings.userDir;
    const iface = String(def.iface ?? '').trim();
    // One lease file per interface: redeploying or recreating the node keeps its leases.
    const leaseFile = userDir ? path.join(userDir, 'pxe-dhcp', `leases-${iface.replace(/[^\w.-]/g, '_')}.jsonl`) : undefined;

    let starting: Promise<void> = Promise.resolve();
    let retry: NodeJS.Timeout | undefined;
    let wake: (() => void) | undefined;
    // An interface that is down or has no address yet (no cable, a bridge with no ports up, a
    // Pi still bringing up its network at boot) is waited for instead of failing the node.
    const waitForInterface = async (): Promise<void> => {
      for (let warned = false; !closing; warned = true) {
        try {
          interfaceAddress(iface);
          return;
        } catch (err) {
          this.status({ fill: 'yellow', shape: 'ring', text: `waiting for ${iface}`.slice(0, 19) });
          if (!warned) this.warn(`${(err as Error).message}; waiting for it to come up`);
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          retry = setTimeout(resolve, 1000);
        });
      }
    };
    const start = async (): Promise<void> => {
      this.status({ fill: 'yellow', shape: 'ring', text: RED._('pxe-dhcp.status.starting') });
      // The store, when chosen, is where boot files come from; it only matters to the merge
      // (detected Arch files fill the BIOS rule). Its absence is not an error.
      const storeNode = getStoreNode(RED, def.store);
      if (def.store && !storeNode) this.warn(RED._('pxe-dhcp.errors.no-store'));
      const { bios, from } = await biosDefaults(storeNode, this);
      const cfg = toServiceConfig(def, { leaseFile, bios });
      this.debug(`BIOS boot settings from ${from}: ${bios.bootFile} 209=${bios.configFile} 210=${bios.pathPrefix}`);
      if (cfg.mode === 'full' && !leaseFile) this.warn(RED._('pxe-dhcp.errors.no-userdir'));
      await waitForInterface();
      if (closing) return;
      const svc = await DhcpService.start(cfg);
      if (closing) {
        await svc.close();
        return;
      }
      service = svc;
      for (const w of svc.startupWarnings) this.warn(w);
      svc.on('event', (e: DhcpEvent) => {
        this.send({ topic: `dhcp/${e.type}`, payload: e });
        // Offers and ACKs carry the boot information the boot-events node starts a timeline with;
        // a proxy offer carries no address.
        if (e.type === 'ack' || e.type === 'offer' || (e.type === 'request' && e.ip)) {
          bootBus.publish({ source: 'dhcp', kind: e.type, mac: e.mac, ip: e.ip ?? undefined, arch: e.archName ?? undefined, bootFile: e.bootFile ?? undefined, at: Date.now() });
        }
        if (e.type === 'ack' || e.type === 'offer') this.status({ fill: 'green', shape: 'dot', text: `${e.type} ${e.ip ?? ''}`.trim() });
      });
      svc.on('warn', (w) => this.warn(w));
      svc.on('error', (err) => this.error(err.message));
      this.log(`${cfg.mode} mode on ${svc.sockets.description}`);
      this.status({ fill: 'green', shape: 'dot', text: `${cfg.mode} ${iface}`.slice(0, 19) });
    };
    starting = start().catch((err: Error) => {
      if (err instanceof RogueServerError) {
        this.status({ fill: 'red', shape: 'ring', text: RED._('pxe-dhcp.status.rogue') });
      } else this.status({ fill: 'red', shape: 'ring', text: RED._('pxe-dhcp.status.error') });
      this.error(err.message);
    });

    this.on('input', (msg: NodeMessage, send, done) => {
      const reply = (topic: string, payload: unknown): void => {
        send({ ...msg, topic, payload });
      };
      try {
        if (!service) throw new Error(RED._('pxe-dhcp.errors.not-running'));
        const p = (msg.payload && typeof msg.payload === 'object' ? msg.payload : {}) as Record<string, unknown>;
        switch (msg.topic) {
          case 'reservation/add':
            reply('dhcp/reservations', service.addReservation({ mac: String(p.mac ?? ''), ip: String(p.ip ?? ''), ...(p.hostname ? { hostname: String(p.hostname) } : {}) }));
            break;
          case 'reservation/remove':
            reply('dhcp/reservations', service.removeReservation(String(p.mac ?? '')));
            break;
          case 'reservations':
            reply('dhcp/reservations', service.reservations());
            break;
          case 'boot/override':
            service.setBootOverride(String(p.mac ?? ''), overrideFrom(p));
            reply('dhcp/overrides', service.rules.listOverrides());
            break;
          case 'leases':
            reply('dhcp/leases', service.leases());
            break;
          default:
            throw new Error(RED._('pxe-dhcp.errors.unknown-topic', { topic: String(msg.topic) }));
        }
        done();
      } catch (err) {
        done(err as Error);
      }
    });

    this.on('close', (_removed: boolean, done: () => void) => {
      closing = true;
      clearTimeout(retry);
      wake?.();
      starting
        .then(() => service?.close())
        .catch((err: Error) => this.error(err.message))
        .finally(() => {
          service = null;
          this.status({});
          done();
        });
    });
  }

  RED.nodes.registerType('pxe-dhcp', PxeDhcpNode);
};
