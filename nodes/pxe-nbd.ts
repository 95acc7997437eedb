import { ActivityStatus } from './lib/activity-status';
import { bootBus } from './lib/boot-events/bus';
import { FileExport } from './lib/nbd/export';
import { NbdServer, type NbdDisconnect, type NbdProgress, type NbdSessionInfo } from './lib/nbd/server';
import type { NodeDef, RedApi, RedNode } from './lib/red';
import { getStoreNode, type IsoStoreNode } from './lib/store-node';
import { parsePort, runServerNode } from './lib/server-node';
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

export = function register(RED: RedApi): void {
  function PxeNbdNode(this: RedNode, def: NbdDef): void {
    RED.nodes.createNode(this, def);
    const exportName = String(def.exportName ?? '').trim() || DEFAULT_EXPORT;
    const address = String(def.address ?? '').trim();
    const port = parsePort(def.port, DEFAULT_PORT);
    const intervalS = Number(def.progressInterval ?? 1);
    const progressIntervalMs = Number.isFinite(intervalS) && intervalS >= 0 ? intervalS * 1000 : 1000;
    const storeNode: IsoStoreNode | null = getStoreNode(RED, def.store);

    let server: NbdServer | undefined;
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

    let source = '';
    let exp: FileExport | undefined;
    let more: { exp: FileExport; source: string }[] = [];
    runServerNode<NbdServer>(RED, this, {
      type: 'pxe-nbd',
      store: storeNode,
      check: (fail) => (port === undefined ? fail('badConfig', 'port', { port: String(def.port) }) : undefined),
      start: async ({ store, fail, own, listen }) => {
        source = store.source;
        // NBD exports a block device: the image file itself. A folder has no such thing.
        if (store.kind !== 'iso') throw fail('folderStore', 'folderStore', { source: store.source });
        try {
          exp = own(await FileExport.open(exportName, store.source, 'Arch Linux ISO image'));
        } catch (err) {
          throw fail('storeError', 'image', { source: store.source, message: (err as Error).message });
        }
        // Further ISOs of the store, each exported under its path prefix (what the top menu's entries name).
        more = [];
        for (const m of isoMounts(store)) {
          if (m.store.kind !== 'iso') continue;
          if (m.prefix === exportName) {
            this.warn(RED._('pxe-nbd.log.skipped', { name: m.prefix }));
            continue;
          }
          try {
            more.push({ exp: own(await FileExport.open(m.prefix, m.store.source, 'Arch Linux ISO image')), source: m.store.source });
          } catch (err) {
            throw fail('storeError', 'image', { source: m.store.source, message: (err as Error).message });
          }
        }
        const srv = own(new NbdServer({ exports: [exp, ...more.map((m) => m.exp)], progressIntervalMs }));
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
        srv.on('clientError', (e) => this.debug(RED._('pxe-nbd.log.clientError', { address: e.address, port: e.port, message: e.message })));
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
        await listen(srv.listen(port!, address), { port: port!, address });
        return srv;
      },
      started: (srv) => {
        server = srv;
        this.log(RED._('pxe-nbd.log.serving', { source, name: exportName, address: address || '*', port, size: exp?.size }));
        for (const m of more) this.log(RED._('pxe-nbd.log.serving', { source: m.source, name: m.exp.name, address: address || '*', port, size: m.exp.size }));
        showClients();
      },
      closing: () => activity.close(),
    });
  }
  RED.nodes.registerType('pxe-nbd', PxeNbdNode);
};
