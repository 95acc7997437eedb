import { ARCH_BIOS_DEFAULTS } from './lib/dhcp/boot-rules';
import { BootMenus } from './lib/menus/boot-menus';
import type { NodeDef, RedApi, RedNode } from './lib/red';
import { PublishedFiles, publishedFolder } from './lib/store/published-files';
import { SharedResource } from './lib/shared-resource';
import { detectArchiso } from './lib/store/archiso';
import { describeStore } from './lib/store/describe';
import { checkPrefix, defaultPrefix, MAX_MOUNTS } from './lib/store/mounted-store';
import { openConfiguredStore, openStoreSpec, type IsoMountSpec, type StoreSpec } from './lib/store/open-store';
import type { FileStore } from './lib/store/types';
import { getStoreNode, type IsoStoreNode } from './lib/store-node';

interface IsoStoreDef extends NodeDef {
  path: string;
  /** Optional folder of extra files served after the image's (e.g. /usr/lib/ipxe). */
  extra?: string;
  /** Further ISOs served beside this one by the same servers, each under its own path prefix. */
  isos?: { path?: string; prefix?: string }[];
}

const baseName = (p: string): string => p.replace(/\/+$/, '').split('/').pop() ?? p;

/** The further ISOs as configured, checked: a path each, and a prefix (typed, or from the file name) used once. */
function isoMountsOf(def: IsoStoreDef): IsoMountSpec[] {
  const rows = (Array.isArray(def.isos) ? def.isos : []).filter((r) => String(r?.path ?? '').trim());
  if (rows.length > MAX_MOUNTS) throw new Error(`at most ${MAX_MOUNTS} further ISOs`);
  const seen = new Set<string>();
  return rows.map((r) => {
    const source = String(r.path).trim();
    const prefix = checkPrefix(String(r.prefix ?? '').trim() || defaultPrefix(source));
    if (seen.has(prefix)) throw new Error(`two ISOs under the same prefix /${prefix}/`);
    seen.add(prefix);
    return { prefix, source };
  });
}

export = function register(RED: RedApi): void {
  function PxeIsoStoreNode(this: IsoStoreNode, def: IsoStoreDef): void {
    RED.nodes.createNode(this, def);
    this.source = String(def.path ?? '').trim();
    const extra = String(def.extra ?? '').trim();
    this.extra = extra;
    const userDir = RED.settings.userDir;
    const published = typeof userDir === 'string' && userDir ? new PublishedFiles(publishedFolder(userDir, this.id)) : undefined;
    this.published = published;
    let isos: IsoMountSpec[] = [];
    let badIsos: Error | undefined;
    try {
      isos = isoMountsOf(def);
    } catch (err) {
      badIsos = err as Error;
      this.error(RED._('pxe-iso-store.errors.isos', { message: badIsos.message }));
    }
    this.isos = isos;
    this.spec = (): StoreSpec => ({
      source: this.source,
      ...(extra ? { extraFolder: extra } : {}),
      ...(published ? { publishedFolder: published.folder } : {}),
      ...(isos.length ? { isos } : {}),
    });
    const names = new Map(isos.map((i) => [i.prefix, baseName(i.source)]));
    this.isoName = (p: string): string => names.get(p.replace(/^[/\\]+/, '').split(/[/\\]/)[0] ?? '') ?? baseName(this.source);
    const shared = new SharedResource<FileStore>(
      async () => {
        if (badIsos) throw badIsos;
        if (published) await published.init();
        return openStoreSpec(this.spec());
      },
      (store) => store.close(),
    );
    this.acquire = (user) => shared.acquire(user.id);
    this.release = (user) => shared.release(user.id);
    this.on('close', (_removed: boolean, done: () => void) => {
      shared.closeNow().then(done, (err: Error) => {
        this.error(err);
        done();
      });
    });
  }
  RED.nodes.registerType('pxe-iso-store', PxeIsoStoreNode);

  // The DHCP rule editor and the HTTP node's iPXE menu offer the entries of a deployed store's
  // ISO menu; the rule editor also says what fills a BIOS rule's empty fields (`bios`: the ISO's
  // loader and options 209/210, or the Arch wiki's when there is no store ('wiki') or no Arch ISO
  // in it ('noArch'), the choice the DHCP node makes at deploy; null for a store that is not
  // deployed, or cannot be opened, then with `error`). Each lookup holds the store as its own
  // user, so one finishing does not close it under another.
  let lookups = 0;
  const wiki = { ...ARCH_BIOS_DEFAULTS, from: 'wiki' };
  RED.httpAdmin.get('/pxe-iso-store/menu-entries', RED.auth.needsPermission('pxe-iso-store.read'), (req, res) => {
    if (!req.query.store) return res.json({ ok: false, entries: [], bios: wiki });
    const storeNode = getStoreNode(RED, req.query.store);
    if (!storeNode) return res.json({ ok: false, entries: [], bios: null });
    const lookup = { id: `pxe-iso-store-menu-entries-${++lookups}` } as RedNode;
    storeNode
      .acquire(lookup)
      .then(async (store) => {
        const info = await detectArchiso(store);
        const bios = info.detected && info.dhcp ? { ...info.dhcp, from: 'iso', layout: info.layout } : { ...wiki, from: 'noArch' };
        const entries = await BootMenus.load(store).then(
          (menus) => menus.choices,
          () => [],
        );
        return { ok: entries.length > 0, entries, bios };
      })
      .then(
        (answer) => res.json(answer),
        (err: Error) => res.json({ ok: false, entries: [], bios: null, error: RED._('pxe-iso-store.errors.inspect', { message: err.message }) }),
      )
      .finally(() => storeNode.release(lookup).catch(() => undefined));
  });

  // The editor asks what a path holds before the user deploys it. Opening a path on this host is
  // configuration, so it takes the right to change such nodes (a read-only editor user cannot),
  // and it answers with what a store on that path would serve, summed up (describeStore): never a
  // folder's listing.
  RED.httpAdmin.get('/pxe-iso-store/inspect', RED.auth.needsPermission('pxe-iso-store.write'), (req, res) => {
    const source = String(req.query.path ?? '').trim();
    openConfiguredStore(source, String(req.query.extra ?? '').trim())
      .then(async (store) => {
        try {
          res.json({ ok: true, ...(await describeStore(store)) });
        } finally {
          await store.close();
        }
      })
      .catch((err: Error) => res.json({ ok: false, error: RED._('pxe-iso-store.errors.inspect', { message: err.message }) }));
  });
};
