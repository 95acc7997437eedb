import { ActivityStatus } from './lib/activity-status';
import { bootBus } from './lib/boot-events/bus';
import { FileExport } from './lib/nbd/export';
import { NbdServer, type NbdDisconnect, type NbdProgress, type NbdSessionInfo } from './lib/nbd/server';
import type { NodeDef, RedApi, RedNode } from './lib/red';
import { getStoreNode, type IsoStoreNode } from './lib/store-node';
import { bindErrorKind } from './lib/bind-error';
import { isoMounts } from './lib/store/mounted-store';

interface NbdDef extends NodeDef {
  store: string;
  exportName?: string;
  address?: string;
  port?: string | number;
  progressInterval?: string | number;
}

const DEFAULT_PORT = 10809;
const DEFAULT_EXPORT = 'archiso';

/** A port from the editor, or undefined if it is not one. */
function parsePort(v: unknown): number | undefined {
  const n = v === undefined || v === '' ? DEFAULT_PORT : Number(v);
  return Number.isInteger(n) && n > 0 && n < 65536 ? n : undefined;
}

export = function register(RED: RedApi): void {
  function PxeNbdNode(this: RedNode, def: NbdDef): void {
    RED.nodes.createNode(this, def);
    const exportName = String(def.exportName ?? '').trim() || DEFAULT_EXPORT;
    const address = String(def.address ?? '').trim();
    const port = parsePort(def.port);
    const intervalS = Number(def.progressInterval ?? 1);
    const progressIntervalMs = Number.isFinite(intervalS) && intervalS >= 0 ? intervalS * 1000 : 1000;
    const storeNode: IsoStoreNode | null = getStoreNode(RED, def.store);

    let server: NbdServer | undefined;
    let exp: FileExport | undefined;
    /** Further ISOs of the store, each exported under its path prefix (what the top menu's entries name). */
    const more: FileExport[] = [];
    let acquired = false;
    let closed = false;

    const fail = (statusKey: string, message: string): void => {
      this.status({ fill: 'red', shape: 'ring', text: RED._(`pxe-nbd.status.${statusKey}`) });
      this.error(message);
    };
    // "2 reading, 41 MB/s (3 connected)", at most once a second. A client that reads counts as
    // busy; the kernel's NBD client stays connected for as long as the machine runs, so one that
    // has read nothing for a while (a few progress intervals) is only connected.
    const activity = new ActivityStatus({
      show: (s) => this.status(s),
      idle: () => {
        const count = server?.clientCount ?? 0;
        return { fill: count > 0 ? 'blue' : 'green', shape: 'dot', text: RED._('pxe-nbd.status.clients', { count }) };
      },
      busyText: (count, rate) => RED._('pxe-nbd.status.busy', { count, rate, clients: server?.clientCount ?? 0 }),
      staleMs: Math.max(5000, 3 * progressIntervalMs),
    });
    const showClients = (): void => activity.update();

    const start = async (): Promise<void> => {
      if (port === undefined) return fail('badConfig', RED._('pxe-nbd.errors.port', { port: String(def.port) }));
      if (!storeNode) return fail('noStore', RED._('pxe-nbd.errors.noStore'));
      this.status({ fill: 'yellow', shape: 'ring', text: RED._('pxe-nbd.status.starting') });
      acquired = true;
      let store;
      try {
        store = await storeNode.acquire(this);
      } catch (err) {
        return fail('storeError', RED._('pxe-nbd.errors.store', { message: (err as Error).message }));
      }
      if (closed) return;
      // NBD exports a block device: the image file itself. A folder has no such thing.
      if (store.kind !== 'iso') return fail('folderStore', RED._('pxe-nbd.errors.folderStore', { source: store.source }));
      try {
        exp = await FileExport.open(exportName, store.source, 'Arch Linux ISO image');
      } catch (err) {
        return fail('storeError', RED._('pxe-nbd.errors.image', { source: store.source, message: (err as Error).message }));
      }
      try {
        for (const m of isoMounts(store)) {
          if (m.store.kind !== 'iso') continue;
          if (m.prefix === exportName) this.warn(RED._('pxe-nbd.log.skipped', { name: m.prefix }));
          else more.push(await FileExport.open(m.prefix, m.store.source, 'Arch Linux ISO image'));
        }
      } catch (err) {
        return fail('storeError', RED._('pxe-nbd.errors.image', { source: store.source, message: (err as Error).message }));
      }
      if (closed) return;
      const srv = new NbdServer({ exports: [exp, ...more], progressIntervalMs });
      srv.on('connect', (info: NbdSessionInfo) => {
        this.send({ topic: 'nbd/connect', payload: info });
        showClients();
      });
      // The boot-events node treats NBD reads as the root filesystem's progress.
      const signal = (kind: 'progress' | 'done', p: NbdProgress): void =>
        bootBus.publish({ source: 'nbd', kind, ip: p.address, file: '', bytes: Math.min(p.bytesRead, p.size), size: p.size, at: Date.now() });
      srv.on('progress', (p: NbdProgress) => {
        this.send({ topic: 'nbd/progress', payload: p });
        // bytesRead counts re-read blocks again: what went over the wire, as a rate should.
        activity.progress(String(p.id), p.bytesRead);
        signal('progress', p);
      });
      srv.on('disconnect', (d: NbdDisconnect) => {
        this.send({ topic: 'nbd/disconnect', payload: d });
        activity.end(String(d.id), d.bytesRead);
        signal(d.share >= 1 ? 'done' : 'progress', d);
        showClients();
      });
      srv.on('clientError', (e) => this.debug(`NBD client ${e.address}:${e.port}: ${e.message}`));
      // A flood of refused connections must not flood the log: one warning per address and kind a minute.
      const warned = new Map<string, number>();
      const warnOnce = (key: string, text: string): void => {
        const now = Date.now();
        if (now - (warned.get(key) ?? -Infinity) < 60_000) return;
        if (warned.size >= 256) warned.clear();
        warned.set(key, now);
        this.warn(text);
      };
      srv.on('refused', (r) =>
        warnOnce(`${r.reason} ${r.address}`, RED._(r.reason === 'address' ? 'pxe-nbd.errors.tooManyFromAddress' : 'pxe-nbd.errors.tooMany', { address: r.address, max: r.max })),
      );
      srv.on('evicted', (e) =>
        warnOnce(`${e.reason} ${e.address}`, RED._(e.reason === 'stalled' ? 'pxe-nbd.errors.evictedStalled' : 'pxe-nbd.errors.evictedHandshake', { address: e.address })),
      );
      try {
        await srv.listen(port, address);
      } catch (err) {
        const key = bindErrorKind(err);
        return fail(key === 'listen' ? 'listenError' : key, RED._(`pxe-nbd.errors.${key}`, { port, address: address || '*', message: (err as Error).message }));
      }
      server = srv;
      if (closed) return;
      for (const e of [exp, ...more]) this.log(RED._('pxe-nbd.log.serving', { source: e === exp ? store.source : isoMounts(store).find((m) => m.prefix === e.name)?.store.source, name: e.name, address: address || '*', port, size: e.size }));
      showClients();
    };

    const starting = start().catch((err: Error) => fail('listenError', err.message));

    this.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      activity.close();
      void (async () => {
        await starting;
        await server?.close();
        await exp?.close().catch(() => undefined);
        for (const e of more) await e.close().catch(() => undefined);
        if (acquired && storeNode) await storeNode.release(this).catch(() => undefined);
        this.status({});
      })().then(done, (err: Error) => {
        this.error(err);
        done();
      });
    });
  }
  RED.nodes.registerType('pxe-nbd', PxeNbdNode);
};
