import { ActivityStatus } from './lib/activity-status';
import { bootBus } from './lib/boot-events/bus';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostFor } from './lib/http/ipxe-script';
import { HttpFileService } from './lib/http/serve-file';
import { HttpListener } from './lib/http/server';
import type { MenuChoice } from './lib/menus/pxelinux-config';
import type { NodeDef, NodeMessage, RedApi, RedNode } from './lib/red';
import { parsePort, runServerNode, type StartContext } from './lib/server-node';
import { getStoreNode } from './lib/store-node';
import type { FileStore } from './lib/store/types';

interface PxeHttpDef extends NodeDef {
  store: string;
  /** 'listen': our own listener; 'httpNode': a path on Node-RED's own web server. */
  mode?: 'listen' | 'httpNode';
  address?: string;
  port?: number | string;
  path?: string;
  listing?: boolean;
  ipxePath?: string;
  kernelArgs?: string;
  /** What the iPXE script boots: 'http' (the ISO over HTTP, no menu), or the ISO's menu: 'iso', 'timeout', 'now'. */
  ipxeMenu?: string;
  ipxeEntry?: string;
  ipxeSeconds?: number | string;
  progressStep?: number | string;
}

/** The iPXE script's menu choice from the node's settings (undefined for the plain HTTP boot), or the failure to throw. */
function ipxeMenuOf(def: PxeHttpDef, fail: StartContext<FileStore>['fail']): MenuChoice | undefined {
  const mode = def.ipxeMenu || 'http';
  if (mode === 'http') return undefined;
  if (mode === 'iso') return { mode: 'menu' };
  const entry = String(def.ipxeEntry ?? '').trim();
  if (!entry) throw fail('badConfig', 'ipxeEntry');
  if (mode === 'now') return { mode: 'now', entry };
  const seconds = Number(def.ipxeSeconds ?? 10);
  if (mode !== 'timeout' || !Number.isFinite(seconds) || seconds < 1 || seconds > 3600) throw fail('badConfig', 'ipxeMenu', { mode, seconds: String(def.ipxeSeconds) });
  return { mode: 'timeout', entry, seconds };
}

type Middleware = (req: IncomingMessage, res: ServerResponse, next: () => void) => void;

/** The part of Node-RED's httpNode (an Express app) this node uses. */
interface HttpNodeApp {
  use(path: string, handler: Middleware): void;
  _router?: { stack: Array<{ handle?: unknown }> };
  router?: { stack: Array<{ handle?: unknown }> };
}

type RedWithHttpNode = RedApi & { httpNode?: HttpNodeApp };

/** `ready` and `boundPort` are also read by the DHCP node (lib/http/flow-http-server.ts: kernel over HTTP). */
interface PxeHttpNode extends RedNode {
  /** Settles when the node is serving (or has failed to start); tests await it. */
  ready: Promise<void>;
  /** The port actually bound by the own listener (port 0 picks one). */
  boundPort?: number;
}

/** '/pxe/' → '/pxe'; '' → '' (the root). */
function mountPath(p: unknown): string {
  const s = String(p ?? '').trim();
  return s ? ('/' + s).replace(/\/+/g, '/').replace(/\/$/, '') : '';
}

/** Takes a middleware back off an Express app (Express has no API for it; Node-RED's http-in does the same). */
function removeMiddleware(app: HttpNodeApp, handler: Middleware): void {
  const stack = (app._router ?? app.router)?.stack;
  if (!stack) return;
  for (let i = stack.length - 1; i >= 0; i--) if (stack[i]!.handle === handler) stack.splice(i, 1);
}

const WILDCARD = new Set(['', '0.0.0.0', '::']);

export = function register(RED: RedWithHttpNode): void {
  function PxeHttpNode(this: PxeHttpNode, def: PxeHttpDef): void {
    RED.nodes.createNode(this, def);
    const mode = def.mode === 'httpNode' ? 'httpNode' : 'listen';
    const address = String(def.address ?? '').trim();
    // 0: a free port (boundPort says which).
    const port = parsePort(def.port, 80, 0);
    const mount = mountPath(def.path ?? '/pxe');
    const storeNode = getStoreNode(RED, def.store);
    let idleText = '';
    // "3 active, 41 MB/s", at most once a second: the service counts the downloads in flight
    // (onActive) and reports each one's running total every progress step.
    const activity = new ActivityStatus({
      show: (s) => this.status(s),
      idle: () => ({ fill: 'green', shape: 'dot', text: idleText }),
      busyText: (count, rate) => RED._('pxe-http.status.busy', { count, rate }),
    });

    const send = (topic: string, payload: object): void => this.send({ topic, payload } as NodeMessage);
    const bootSignal = (kind: 'progress' | 'done', client: string, file: string, bytes: number, size: number): void =>
      bootBus.publish({ source: 'http', kind, ip: client.replace(/^::ffff:/, ''), file, bytes, size, at: Date.now(), ...(storeNode ? { store: storeNode.isoName(file) } : {}) });
    // One warning per kind a minute: a client repeating a failing request must not flood the log.
    const warned = new Map<string, { at: number; more: number }>();
    const warnOnce = (kind: string, text: string): void => {
      const now = Date.now();
      const w = warned.get(kind);
      if (w && now - w.at < 60_000) {
        w.more++;
        return;
      }
      if (warned.size > 100) warned.clear();
      this.warn(w && w.more > 0 ? `${text} ${RED._('pxe-http.warn.repeated', { count: w.more })}` : text);
      warned.set(kind, { at: now, more: 0 });
    };

    const { ready } = runServerNode<void>(RED, this, {
      type: 'pxe-http',
      store: storeNode,
      check: (fail) => (port === undefined ? fail('badConfig', 'port', { port: String(def.port) }) : undefined),
      start: async ({ store, fail, own, listen }) => {
        const nodeRoot = typeof RED.settings.httpNodeRoot === 'string' ? mountPath(RED.settings.httpNodeRoot) : '';
        let listener: HttpListener | undefined;
        let middleware: Middleware | undefined;
        const service = new HttpFileService({
          store,
          listing: def.listing === true,
          ipxePath: def.ipxePath === undefined ? '/boot.ipxe' : String(def.ipxePath),
          kernelArgs: String(def.kernelArgs ?? ''),
          ipxeMenu: ipxeMenuOf(def, fail),
          basePath: mode === 'httpNode' ? nodeRoot + mount : '',
          publicHost: mode === 'listen' && !WILDCARD.has(address) ? hostFor(address, port!) : undefined,
          progressStep: def.progressStep === undefined || def.progressStep === '' ? 10 : Number(def.progressStep),
          hooks: {
            onRequest: (e) => send('http/request', e),
            onProgress: (e) => {
              send('http/progress', e);
              activity.progress(String(e.id), e.bytes);
              bootSignal('progress', e.client, e.path, e.bytes, e.total);
            },
            onDone: (e) => {
              send('http/done', e);
              activity.end(String(e.id), e.bytes, Date.now() - e.durationMs);
              // A whole file (not a range) sent in full: a finished download for the boot timeline.
              if (e.status === 200) bootSignal('done', e.client, e.path, e.bytes, e.bytes);
            },
            onFail: (e) => {
              send('http/error', e);
              activity.end(String(e.id), e.bytes);
              // What went wrong on our side (a store error, memory for stalled clients spent) is
              // the log's to tell; clients only get a generic answer.
              if (e.status >= 500 && e.status !== 503) warnOnce(e.error, RED._('pxe-http.warn.failed', { status: e.status, client: e.client, path: e.path, error: e.error }));
              else if (e.error.includes('memory for stalled clients')) warnOnce('stalled', RED._('pxe-http.warn.failed', { status: e.status, client: e.client, path: e.path, error: e.error }));
            },
            onLog: (line) => this.debug(line),
            onActive: (n) => activity.setCount(n),
          },
        });
        // One owned closer, in the order that frees a port soonest: no new requests reach the
        // service, transfers in flight are cut, then the listener's sockets close.
        own({
          close: async () => {
            if (middleware && RED.httpNode) removeMiddleware(RED.httpNode, middleware);
            await service.close();
            await listener?.close();
          },
        });
        if (mode === 'httpNode') {
          const app = RED.httpNode;
          if (!app || RED.settings.httpNodeRoot === false) throw fail('badConfig', 'noHttpNode');
          // Other methods fall through to the rest of the flows' routes.
          middleware = (req, res, next) => (req.method === 'GET' || req.method === 'HEAD' ? service.handle(req, res) : next());
          app.use(mount || '/', middleware);
          idleText = RED._('pxe-http.status.mounted', { path: nodeRoot + mount || '/' });
        } else {
          listener = new HttpListener(service.handle);
          const bound = await listen(listener.listen({ address, port: port! }), { port: port!, address });
          this.boundPort = bound.port;
          idleText = RED._('pxe-http.status.listening', { port: bound.port });
        }
      },
      started: () => activity.update(),
      errorStatus: 'notServing',
      closing: () => activity.close(),
    });
    this.ready = ready;
  }
  RED.nodes.registerType('pxe-http', PxeHttpNode);
};
