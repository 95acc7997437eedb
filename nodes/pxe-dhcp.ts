import * as path from 'node:path';
import { bootBus } from './lib/boot-events/bus';
import { dhcpSignal } from './lib/boot-events/dhcp-signal';
import { ARCH_BIOS_DEFAULTS, type BootAction } from './lib/dhcp/boot-rules';
import type { DhcpEvent } from './lib/dhcp/events';
import { DhcpConfigError, kernelHttpOf, menuApplies, menuChoiceOf, parseExtraOptions, toServiceConfig, type BiosDefaults, type DhcpNodeDef, type KernelHttp, type RuleDef } from './lib/dhcp/node-config';
import { flowHttpServer } from './lib/http/flow-http-server';
import { BootMenus, TOP_MENU_KEY, type BootChoice } from './lib/menus/boot-menus';
import { loaderFetchesHttp } from './lib/menus/pxelinux-config';
import { bindErrorKind } from './lib/bind-error';
import { DhcpService, RogueServerError, type DhcpServiceConfig } from './lib/dhcp/service';
import { normalizeMac } from './lib/dhcp/ip';
import { interfaceAddress } from './lib/dhcp/socket';
import { registerInterfacesEndpoint } from './lib/interfaces';
import type { NodeDef, NodeMessage, RedApi, RedNode } from './lib/red';
import { detectArchiso } from './lib/store/archiso';
import { runServerNode, StartFailure, type StartContext } from './lib/server-node';
import { getStoreNode, type IsoStoreNode } from './lib/store-node';
import type { PublishedFiles } from './lib/store/published-files';

interface PxeDhcpDef extends NodeDef, DhcpNodeDef {
  store?: string;
}

/**
 * The BIOS rule's defaults: what the store's Arch ISO needs (its layout's loader and options
 * 209/210), or the wiki's settings when there is no store or no Arch ISO in it.
 */
async function biosDefaults(
  storeNode: IsoStoreNode | null,
  user: RedNode,
): Promise<{ bios: BiosDefaults; from: 'iso' | 'wiki' | 'noArch' | 'isos' | 'isosFailed'; layout?: string; detail?: Record<string, unknown> }> {
  if (!storeNode) return { bios: ARCH_BIOS_DEFAULTS, from: 'wiki' };
  try {
    const store = await storeNode.acquire(user);
    const info = await detectArchiso(store);
    if (info.detected && info.dhcp) {
      const { bootFile, configFile, pathPrefix } = info.dhcp;
      // Several ISOs behind the store: BIOS clients get the generated menu of all of them.
      // If that menu cannot be written, the main ISO's own menu still boots.
      if (storeNode.isos.length > 0 && storeNode.published) {
        const published = storeNode.published;
        const top = await BootMenus.load(store)
          .then((menus) => menus.publishPxelinux(published, TOP_MENU_KEY, { choice: { mode: 'menu' } }))
          .catch((err: Error) => err);
        if (typeof top === 'string') return { bios: { bootFile, configFile: top, pathPrefix }, from: 'isos', detail: { count: storeNode.isos.length + 1 } };
        return { bios: { bootFile, configFile, pathPrefix }, from: 'isosFailed', layout: info.layout ?? undefined, detail: { message: top.message } };
      }
      return { bios: { bootFile, configFile, pathPrefix }, from: 'iso', layout: info.layout ?? undefined };
    }
    return { bios: ARCH_BIOS_DEFAULTS, from: 'noArch' };
  } finally {
    await storeNode.release(user);
  }
}

/**
 * Loads the ISO's PXE menu, lets `fn` publish generated configs with it, and lets the store go.
 * Unattended boots need the store (the menu's entries) and its published files (the user dir).
 */
async function withMenus<T>(RED: RedApi, storeNode: IsoStoreNode | null, user: RedNode, fn: (menus: BootMenus, published: PublishedFiles) => Promise<T>): Promise<T> {
  if (!storeNode) throw new Error(RED._('pxe-dhcp.errors.menu-no-store'));
  if (!storeNode.published) throw new Error(RED._('pxe-dhcp.errors.menu-no-userdir'));
  const store = await storeNode.acquire(user);
  try {
    return await fn(await BootMenus.load(store), storeNode.published);
  } finally {
    await storeNode.release(user);
  }
}

/** The loader a generated config is handed to: the ISO's. */
function loaderOf(menus: BootMenus, bios: BiosDefaults): string | undefined {
  return menus.info.dhcp?.bootFile ?? bios.bootFile;
}

/** The BIOS boot that `name` (a generated pxelinux config) makes: the ISO's loader, with the menu's working directory. */
function menuAction(menus: BootMenus, name: string, bios: BiosDefaults): BootAction {
  return { bootFile: loaderOf(menus, bios), configFile: name, pathPrefix: menus.workDir };
}

/** '{next-server}' in a choice's kernel parameters and kernel URL becomes `address`, as in a rule's boot file. */
function withServer(boot: BootChoice, address: string): BootChoice {
  const put = (s: string): string => s.split('{next-server}').join(address);
  return { ...boot, ...(boot.extraArgs ? { extraArgs: put(boot.extraArgs) } : {}), ...(boot.kernelBaseUrl ? { kernelBaseUrl: put(boot.kernelBaseUrl) } : {}) };
}

/** The boot override a flow sends in msg.payload (pixiecore-API style); `what` names it in errors. */
function overrideFrom(p: Record<string, unknown>, what: string): BootAction | null {
  if (p.remove === true) return null;
  const a: BootAction = {};
  for (const k of ['nextServer', 'bootFile', 'tftpServer', 'configFile', 'pathPrefix'] as const) {
    if (typeof p[k] === 'string' && p[k]) a[k] = p[k] as string;
  }
  if (p.noBoot === true) a.noBoot = true;
  if (p.raspberryPi === true) a.raspberryPi = true;
  if (Array.isArray(p.options)) a.options = p.options as BootAction['options'];
  else if (typeof p.options === 'string') a.options = parseExtraOptions(p.options, what);
  return a;
}

export = function register(RED: RedApi): void {
  registerInterfacesEndpoint(RED, 'pxe-dhcp.read');

  /** A rule, as errors name it in the user's language. */
  const ruleLabel = (d: Pick<RuleDef, 'name'>, i: number): string => (d.name ? RED._('pxe-dhcp.config.rule', { name: d.name }) : RED._('pxe-dhcp.config.ruleN', { n: i + 1 }));
  /** A bad setting in the user's language (its English text stays on `DhcpConfigError.message`). */
  const worded = (err: unknown): Error => (err instanceof DhcpConfigError ? new Error(RED._(`pxe-dhcp.config.${err.key}`, err.subs)) : (err as Error));

  function PxeDhcpNode(this: RedNode, def: PxeDhcpDef): void {
    RED.nodes.createNode(this, def);
    let service: DhcpService | null = null;
    let closing = false;

    const userDir = RED.settings.userDir;
    const iface = String(def.iface ?? '').trim();
    // One lease file per interface: redeploying or recreating the node keeps its leases.
    const leaseFile = userDir ? path.join(userDir, 'pxe-dhcp', `leases-${iface.replace(/[^\w.-]/g, '_')}.jsonl`) : undefined;

    const storeNode = getStoreNode(RED, def.store);
    let biosSettings: BiosDefaults = ARCH_BIOS_DEFAULTS;
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
          this.status({ fill: 'yellow', shape: 'ring', text: RED._('pxe-dhcp.status.waiting', { iface }).slice(0, 19) });
          if (!warned) this.warn(RED._('pxe-dhcp.warn.waiting', { message: (err as Error).message }));
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          retry = setTimeout(resolve, 1000);
        });
      }
    };
    // The flow's HTTP node serving the store, looked up once (it may still be opening the ISO).
    let httpServer: ReturnType<typeof flowHttpServer> | undefined;
    /**
     * Where a generated config's kernel and initramfs come from: `url`, an http:// base URL (still
     * with '{next-server}'), or none for TFTP; `note` says which, for the log once the config is
     * written. HTTP only when the loader can fetch it (lpxelinux.0); 'auto' uses the flow's own
     * HTTP node for the store, and TFTP when there is none.
     */
    const kernelSource = async (kernel: KernelHttp, loader: string | undefined, what: string): Promise<{ url?: string; note: string }> => {
      const tftp = (why: string): { note: string } => ({ note: RED._('pxe-dhcp.log.kernel-tftp', { rule: what, why }) });
      if (kernel === 'tftp') return tftp(RED._('pxe-dhcp.log.why-rule'));
      if (!loaderFetchesHttp(loader)) {
        if (kernel !== 'auto') this.warn(RED._('pxe-dhcp.errors.kernel-http-loader', { rule: what, loader: String(loader) }));
        return tftp(RED._('pxe-dhcp.log.why-loader', { loader: String(loader) }));
      }
      if (kernel !== 'auto') return { url: kernel, note: RED._('pxe-dhcp.log.kernel-http', { rule: what, url: kernel }) };
      httpServer ??= flowHttpServer(RED, def.store);
      const found = await httpServer;
      if (!found) return tftp(RED._('pxe-dhcp.log.why-no-http'));
      return { url: found.url, note: RED._('pxe-dhcp.log.kernel-http-node', { rule: what, url: found.url, node: found.node }) };
    };

    const start = async (ownServer: StartContext<undefined>['own']): Promise<DhcpService | undefined> => {
      // The store, when chosen, is where boot files come from; it only matters to the merge
      // (detected Arch files fill the BIOS rule). Its absence is not an error.
      if (def.store && !storeNode) this.warn(RED._('pxe-dhcp.errors.no-store'));
      const { bios, from, layout, detail } = await biosDefaults(storeNode, this);
      biosSettings = bios;
      let cfg: DhcpServiceConfig;
      // Unattended boots: a rule that picks an entry of the ISO's menu hands out a generated
      // pxelinux config instead of the ISO's. If that fails, the rule keeps the ISO's own menu:
      // a client that waits at a menu is better than one that cannot boot. Written once the
      // interface is up: '{next-server}' in the kernel parameters is its address.
      let chosen: { i: number; name: string; boot: BootChoice; kernel: KernelHttp }[];
      try {
        cfg = toServiceConfig(def, { leaseFile, bios, label: ruleLabel });
        chosen = (def.rules ?? [])
          .map((d, i) => ({ i, name: ruleLabel(d, i), boot: menuChoiceOf(d, ruleLabel(d, i)), kernel: kernelHttpOf(d, ruleLabel(d, i)) }))
          .filter((x): x is { i: number; name: string; boot: BootChoice; kernel: KernelHttp } => x.boot !== null);
      } catch (err) {
        throw err instanceof DhcpConfigError ? new StartFailure('config', worded(err).message) : err;
      }
      // A menu on a rule for UEFI, HTTP Boot, iPXE or Pi clients would hand them a BIOS loader:
      // those keep their own boot file.
      for (const c of chosen.filter(({ i }) => !menuApplies(cfg.rules[i]!))) this.warn(RED._('pxe-dhcp.warn.menuNotBios', { rule: c.name }));
      chosen = chosen.filter(({ i }) => menuApplies(cfg.rules[i]!));
      this.debug(RED._('pxe-dhcp.log.bios', { from: RED._(`pxe-dhcp.log.bios-${from}`, { layout, ...detail }), ...bios }));
      if (cfg.mode === 'full' && !leaseFile) this.warn(RED._('pxe-dhcp.errors.no-userdir'));
      await waitForInterface();
      if (closing) return undefined;
      if (chosen.length) {
        const own = interfaceAddress(iface).address;
        await withMenus(RED, storeNode, this, async (menus, published) => {
          for (const { i, name, boot, kernel } of chosen) {
            try {
              const src = await kernelSource(kernel, loaderOf(menus, bios), name);
              const server = cfg.rules[i]!.nextServer ?? own;
              const file = await menus.publishPxelinux(published, `rule-${i + 1}`, withServer({ ...boot, kernelBaseUrl: src.url }, server));
              Object.assign(cfg.rules[i]!, menuAction(menus, file, bios));
              this.log(src.note.split('{next-server}').join(server));
            } catch (err) {
              this.error(RED._('pxe-dhcp.errors.menu', { rule: name, message: (err as Error).message }));
            }
          }
        }).catch((err: Error) => this.error(RED._('pxe-dhcp.errors.menu', { rule: chosen.map((c) => c.name).join(', '), message: err.message })));
      }
      const svc = ownServer(
        await DhcpService.start(cfg).catch((err: Error) => {
          if (err instanceof RogueServerError) throw new StartFailure('rogue', err.message);
          // A port below 1024 without CAP_NET_BIND_SERVICE: the status names the fix.
          throw bindErrorKind(err) === 'noPermission' ? new StartFailure('noPermission', err.message) : err;
        }),
      );
      if (closing) return svc;
      service = svc;
      for (const w of svc.startupWarnings) this.warn(RED._(`pxe-dhcp.warn.${w.key}`, w.subs));
      svc.on('event', (e: DhcpEvent) => {
        this.send({ topic: `dhcp/${e.type}`, payload: e });
        // Offers and ACKs carry the boot information the boot-events node starts a timeline with;
        // a proxy offer carries no address.
        if (e.type === 'ack' || e.type === 'offer' || (e.type === 'request' && e.ip)) {
          bootBus.publish(dhcpSignal(e, cfg.mode));
        }
        if (e.type === 'ack' || e.type === 'offer') this.status({ fill: 'green', shape: 'dot', text: RED._('pxe-dhcp.status.sent', { type: e.type, ip: e.ip ?? '' }).trim() });
      });
      svc.on('warn', (w) => this.warn(RED._(`pxe-dhcp.warn.${w.key}`, w.subs)));
      svc.on('error', (err) => this.error(err.message));
      this.log(RED._('pxe-dhcp.log.serving', { mode: cfg.mode, sockets: svc.sockets.description }));
      this.status({ fill: 'green', shape: 'dot', text: RED._('pxe-dhcp.status.serving', { mode: cfg.mode, iface }).slice(0, 19) });
      return svc;
    };
    // No store held while serving: the start borrows it to read the ISO, and gives it back.
    runServerNode<DhcpService | undefined, undefined>(RED, this, {
      type: 'pxe-dhcp',
      start: ({ own }) => start(own),
      errorStatus: 'error',
      closing: () => {
        closing = true;
        service = null;
        clearTimeout(retry);
        wake?.();
      },
    });

    this.on('input', (msg: NodeMessage, send, done) => {
      const reply = (topic: string, payload: unknown): void => {
        send({ ...msg, topic, payload });
      };
      // A machine's unattended boot, set at run time: the same choices as a rule's, for one MAC.
      if (msg.topic === 'boot/menu') {
        const p = (msg.payload && typeof msg.payload === 'object' ? msg.payload : {}) as Record<string, unknown>;
        const svc = service;
        if (!svc) return done(new Error(RED._('pxe-dhcp.errors.not-running')));
        (async () => {
          const mac = normalizeMac(String(p.mac ?? ''));
          const what = RED._('pxe-dhcp.config.message', { topic: 'boot/menu', mac });
          const boot = p.remove === true ? null : menuChoiceOf({ menu: String(p.menu ?? 'now'), entry: p.entry as string, menuSeconds: p.seconds as number, kernelArgs: p.kernelArgs as string }, what);
          if (!boot) {
            svc.setBootOverride(mac, null);
            return;
          }
          const kernel = kernelHttpOf({ kernelHttp: p.kernelHttp as string }, what);
          await withMenus(RED, storeNode, this, async (menus, published) => {
            const src = await kernelSource(kernel, loaderOf(menus, biosSettings), mac);
            const server = interfaceAddress(iface).address;
            const file = await menus.publishPxelinux(published, mac, withServer({ ...boot, kernelBaseUrl: src.url }, server));
            this.debug(src.note.split('{next-server}').join(server));
            svc.setBootOverride(mac, menuAction(menus, file, biosSettings));
          });
        })().then(
          () => {
            reply('dhcp/overrides', svc.rules.listOverrides());
            done();
          },
          (err: Error) => done(worded(err)),
        );
        return;
      }
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
            service.setBootOverride(String(p.mac ?? ''), overrideFrom(p, RED._('pxe-dhcp.config.message', { topic: 'boot/override', mac: String(p.mac ?? '') })));
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
        done(worded(err));
      }
    });
  }

  RED.nodes.registerType('pxe-dhcp', PxeDhcpNode);
};
