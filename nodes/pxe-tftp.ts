import { ActivityStatus } from './lib/activity-status';
import { bootBus, type TransferSignal } from './lib/boot-events/bus';
import type { NodeDef, RedApi, RedNode } from './lib/red';
import { getStoreNode, type IsoStoreNode } from './lib/store-node';
import { ErrorCode } from './lib/tftp/codec';
import { MAX_GRANTED_WINDOWSIZE } from './lib/tftp/options';
import { TftpServer, type ProgressEvent, type TftpEvent } from './lib/tftp/server';
import { parsePort, runServerNode } from './lib/server-node';

interface TftpDef extends NodeDef {
  store: string;
  address?: string;
  port?: string | number;
  maxBlksize?: string | number;
  maxWindowsize?: string | number;
  maxTransfers?: string | number;
  maxPerClient?: string | number;
  /** Transfer worker threads: '' for automatic (up to 4 with 2+ cores), 0 for none. */
  workers?: string | number;
  /** false: Node's dgram sockets even when the native addon is built. */
  nativeIo?: boolean;
}

const DEFAULT_PORT = 69;

/** An integer from the editor within [min, max], the default when empty, undefined if invalid. */
function intSetting(v: unknown, fallback: number, min: number, max: number): number | undefined {
  const n = v === undefined || v === '' ? fallback : Number(v);
  return Number.isInteger(n) && n >= min && n <= max ? n : undefined;
}

export = function register(RED: RedApi): void {
  function PxeTftpNode(this: RedNode, def: TftpDef): void {
    RED.nodes.createNode(this, def);
    const address = String(def.address ?? '').trim();
    const settings = {
      port: parsePort(def.port, DEFAULT_PORT),
      maxBlksize: intSetting(def.maxBlksize, 1468, 8, 65464),
      maxWindowsize: intSetting(def.maxWindowsize, 64, 1, MAX_GRANTED_WINDOWSIZE),
      maxTransfers: intSetting(def.maxTransfers, 100, 1, 100000),
      maxPerClient: intSetting(def.maxPerClient, 8, 1, 100000),
    };
    // Empty: the server's own choice of worker threads; a number (0: none) overrides it.
    const workers = def.workers === undefined || def.workers === '' ? undefined : intSetting(def.workers, 0, 0, 64);
    const badWorkers = workers === undefined && def.workers !== undefined && def.workers !== '';
    const storeNode: IsoStoreNode | null = getStoreNode(RED, def.store);

    let server: TftpServer | undefined;
    // "3 active, 41 MB/s" (", 12 waiting" while requests wait for a slot), at most once a second,
    // from the server's progress reports (a few a second per running transfer) and each end.
    const activity = new ActivityStatus({
      show: (s) => this.status(s),
      idle: () => ({ fill: 'green', shape: 'dot', text: RED._('pxe-tftp.status.listening', { port: settings.port }) }),
      busyText: (count, rate) => {
        const waiting = server?.waitingRequests ?? 0;
        return waiting > 0 ? RED._('pxe-tftp.status.busyWaiting', { count, waiting, rate }) : RED._('pxe-tftp.status.busy', { count, rate });
      },
    });
    // The ISO a file came from: with several behind one store, the one under the file's prefix.
    const storeOf = (file: string): string | undefined => (storeNode?.source ? storeNode.isoName(file) : undefined);
    const signal = (ev: TftpEvent | ProgressEvent, kind: TransferSignal['kind'], bytes: number, extra: Partial<TransferSignal> = {}): void => {
      const store = storeOf(ev.file);
      bootBus.publish({ source: 'tftp', kind, ip: ev.client.address.replace(/^::ffff:/, ''), file: ev.file, bytes, size: ev.size ?? bytes, at: Date.now(), ...(store ? { store } : {}), ...extra });
    };

    // Requests dropped at the per-client limit (no ERROR sent: the firmware resends and is served a
    // moment later), and requests refused because every slot stayed busy, come in bursts in a boot
    // storm: one warning a minute of each says how many, not one each.
    const DROP_WARN_MS = 60_000;
    const bursts = { dropped: { count: 0, at: -Infinity }, refused: { count: 0, at: -Infinity } };
    const onBusy = (ev: TftpEvent & { type: 'error' }, kind: keyof typeof bursts): void => {
      this.debug(RED._('pxe-tftp.log.dropped', { who: `${ev.client.address}:${ev.client.port}`, file: ev.file, message: ev.message }));
      const b = bursts[kind];
      b.count++;
      if (Date.now() - b.at < DROP_WARN_MS) return;
      this.warn(RED._(`pxe-tftp.warn.${kind}`, { count: b.count, message: ev.message }));
      b.at = Date.now();
      b.count = 0;
    };

    const onEvent = (ev: TftpEvent): void => {
      const who = `${ev.client.address}:${ev.client.port}`;
      const key = String(ev.id);
      if (ev.type === 'error' && ev.stage === 'request' && ev.code === undefined) {
        // Not a failure of the boot: the client waits its turn, so no error goes to the boot view.
        this.send({ topic: 'tftp/error', payload: ev });
        return onBusy(ev, 'dropped');
      }
      if (ev.type === 'error' && ev.busy) {
        // The client was told (an ERROR) and its boot stops there: the boot view shows it.
        this.send({ topic: 'tftp/error', payload: ev });
        signal(ev, 'error', 0, { error: ev.message });
        return onBusy(ev, 'refused');
      }
      switch (ev.type) {
        case 'declined':
          // A PXE ROM asked for the size and hung up: routine, not a failure.
          this.debug(RED._('pxe-tftp.log.declined', { who, file: ev.file }));
          activity.end(key);
          break;
        case 'error':
          if (ev.quiet) this.debug(RED._('pxe-tftp.log.notFound', { who, file: ev.file }));
          else this.warn(RED._('pxe-tftp.log.failed', { who, file: ev.file, message: ev.message }));
          this.send({ topic: 'tftp/error', payload: ev });
          activity.end(key, ev.bytesSent, Date.now() - ev.durationMs);
          signal(ev, 'error', ev.bytesSent, { error: ev.message, ...(ev.code === ErrorCode.FILE_NOT_FOUND ? { notFound: true } : {}) });
          break;
        case 'start':
          this.send({ topic: 'tftp/start', payload: ev });
          activity.begin(key);
          signal(ev, 'start', 0);
          break;
        case 'done':
          this.send({ topic: 'tftp/done', payload: ev });
          activity.end(key, ev.bytesSent, Date.now() - ev.durationMs);
          signal(ev, 'done', ev.bytesSent);
          break;
      }
    };

    // Large files (kernel, initramfs) move the sidebar's progress bar while they load; no
    // message goes out for them (a flow gets tftp/start and tftp/done).
    const onProgress = (ev: ProgressEvent): void => {
      activity.progress(String(ev.id), ev.bytesSent);
      signal(ev, 'progress', ev.bytesSent);
    };

    let source = '';
    runServerNode<TftpServer>(RED, this, {
      type: 'pxe-tftp',
      store: storeNode,
      check: (fail) => {
        const bad = Object.entries({ ...settings, ...(badWorkers ? { workers: undefined } : {}) }).find(([, v]) => v === undefined);
        return bad && fail('badConfig', 'setting', { name: bad[0], value: String(def[bad[0]]) });
      },
      start: async ({ store, own, listen }) => {
        // Transfer workers open their own copy of the store the way the store node opened it: the
        // files the flow published, the image (or folder) and further ISOs, then its extra folder.
        const sn = storeNode!;
        source = store.source;
        const workerStore = sn.spec();
        // Owned: the node's close waits until the listening socket and every transfer socket are closed.
        const srv = own(new TftpServer({ store, address: address || undefined, workerStore, ...settings, ...(workers !== undefined ? { workers } : {}), nativeIo: def.nativeIo !== false }));
        server = srv;
        srv.on('transfer', onEvent);
        srv.on('progress', onProgress);
        srv.on('warning', (err) => this.warn(RED._('pxe-tftp.errors.socket', { message: err.message })));
        await listen(srv.listen(), { port: settings.port!, address });
        return srv;
      },
      started: (srv) => {
        const io = srv.socketIo;
        this.log(RED._('pxe-tftp.log.serving', { source, address: address || '*', port: settings.port }));
        this.log(io.kind === 'native' ? RED._('pxe-tftp.log.nativeIo') : RED._('pxe-tftp.log.dgramIo', { reason: io.reason ?? '' }));
        activity.update();
      },
      closing: () => activity.close(),
    });
  }
  RED.nodes.registerType('pxe-tftp', PxeTftpNode);
};
