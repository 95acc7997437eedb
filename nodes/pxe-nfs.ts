import { ActivityStatus } from './lib/activity-status';
import { bootBus } from './lib/boot-events/bus';
import { NfsServer, type NfsClientInfo, type NfsListening, type NfsMountEvent, type NfsReadProgress } from './lib/nfs/server';
import type { NodeDef, RedApi, RedNode } from './lib/red';
import { getStoreNode, type IsoStoreNode } from './lib/store-node';
import { parseExportPaths, parsePortmapMode } from './lib/nfs/node-config';
import { parsePort, runServerNode } from './lib/server-node';

interface NfsDef extends NodeDef {
  store: string;
  address?: string;
  nfsPort?: string | number;
  mountPort?: string | number;
  portmap?: string;
  exportPaths?: string;
  maxConnections?: string | number;
  progressInterval?: string | number;
}

export = function register(RED: RedApi): void {
  function PxeNfsNode(this: RedNode, def: NfsDef): void {
    RED.nodes.createNode(this, def);
    const address = String(def.address ?? '').trim();
    const nfsPort = parsePort(def.nfsPort, 2049);
    const mountPort = parsePort(def.mountPort, 20048);
    const portmap = parsePortmapMode(def.portmap);
    const exportPaths = parseExportPaths(def.exportPaths);
    const maxConnections = def.maxConnections === undefined || def.maxConnections === '' ? 64 : Number(def.maxConnections);
    const intervalS = Number(def.progressInterval ?? 1);
    const progressIntervalMs = Number.isFinite(intervalS) && intervalS >= 0 ? intervalS * 1000 : 1000;
    const storeNode: IsoStoreNode | null = getStoreNode(RED, def.store);

    let server: NfsServer | undefined;
    // "2 reading, 41 MB/s (3 mounted)", at most once a second. NFS has no transfers of its own:
    // a client+file pair counts from its first read report until it has read every byte, or
    // until it has read nothing for a few report intervals (a client reads what it needs and stops).
    // Bytes are the server's own count: distinct bytes of the file read so far.
    const activity = new ActivityStatus({
      show: (s) => this.status(s),
      idle: () => {
        const count = server?.mountCount ?? 0;
        return { fill: count > 0 ? 'blue' : 'green', shape: 'dot', text: RED._('pxe-nfs.status.mounted', { count }) };
      },
      busyText: (count, rate) => RED._('pxe-nfs.status.busy', { count, rate, mounts: server?.mountCount ?? 0 }),
      staleMs: Math.max(5000, 3 * progressIntervalMs),
    });
    const showMounts = (): void => activity.update();

    let source = '';
    let listening: NfsListening | undefined;
    runServerNode<NfsServer>(RED, this, {
      type: 'pxe-nfs',
      store: storeNode,
      check: (fail) => {
        if (nfsPort === undefined) return fail('badConfig', 'port', { port: String(def.nfsPort) });
        if (mountPort === undefined) return fail('badConfig', 'port', { port: String(def.mountPort) });
        if (!exportPaths) return fail('badConfig', 'exportPaths', { paths: String(def.exportPaths) });
        if (!Number.isInteger(maxConnections) || maxConnections < 1 || maxConnections > 4096) {
          return fail('badConfig', 'maxConnections', { value: String(def.maxConnections) });
        }
        return undefined;
      },
      start: async ({ store, own, listen }) => {
        source = store.source;
        const srv = own(new NfsServer({ store, exportPaths: exportPaths!, maxConnections, progressIntervalMs }));
        srv.on('mount', (m: NfsMountEvent) => {
          this.send({ topic: 'nfs/mount', payload: m });
          showMounts();
        });
        srv.on('umount', (m: NfsMountEvent) => {
          this.send({ topic: 'nfs/umount', payload: m });
          showMounts();
        });
        // The boot-events node sees NFS reads like HTTP downloads: airootfs.sfs read whole = complete.
        srv.on('read', (p: NfsReadProgress) => {
          this.send({ topic: 'nfs/read', payload: p });
          const key = `${p.address} ${p.path}`;
          if (p.done) activity.end(key, p.bytes);
          else activity.progress(key, p.bytes);
          bootBus.publish({ source: 'nfs', kind: p.done ? 'done' : 'progress', ip: p.address, file: p.path, bytes: p.bytes, size: p.size, at: Date.now(), ...(storeNode ? { store: storeNode.isoName(p.path) } : {}) });
        });
        srv.on('clientError', (e: NfsClientInfo & { message: string }) => this.debug(RED._('pxe-nfs.log.clientError', { address: e.address, port: e.port, message: e.message })));
        srv.on('refused', (r: NfsClientInfo & { max: number }) => this.warn(RED._('pxe-nfs.errors.tooMany', { address: r.address, max: r.max })));
        listening = await listen(srv.listen({ address, nfsPort, mountPort, portmap }), { port: nfsPort!, address });
        return srv;
      },
      started: (srv) => {
        server = srv;
        const pm = listening!.portmap;
        this.log(
          RED._('pxe-nfs.log.serving', {
            source,
            exports: exportPaths!.join(', '),
            address: address || '*',
            nfsPort: listening!.nfsPort,
            mountPort: listening!.mountPort,
            portmap: RED._(`pxe-nfs.log.portmap-${pm.mode}`, { port: pm.port ?? '' }),
          }),
        );
        showMounts();
      },
      closing: () => activity.close(),
    });
  }
  RED.nodes.registerType('pxe-nfs', PxeNfsNode);
};
