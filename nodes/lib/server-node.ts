/**
 * The lifecycle every server node shares (TFTP, NBD, NFS, HTTP, DHCP): check the settings, take
 * the store, start the server, show a status; on a failure give back everything taken so far and
 * show why; on close wait for the server to finish and give the store back. Modelled on Node-RED's
 * 10-mqtt.js: the node's constructor returns at once, a deploy never waits for a socket, and close
 * resolves only when every port and descriptor is released.
 *
 * Status and error texts come from the node's locale file: `<type>.status.<key>` for the dot and
 * `<type>.errors.<key>` for the log, so each node says how to fix a failure in its own words.
 */
import { bindErrorKind } from './bind-error';
import type { RedApi, RedNode } from './red';
import type { IsoStoreNode } from './store-node';
import type { FileStore } from './store/types';

/** Anything a start opens and a close must wait for. */
export interface Closeable {
  close(): Promise<void>;
}

/** A failure the node words itself: the status dot's key and the error already translated. */
export class StartFailure extends Error {
  constructor(
    /** `<type>.status.<statusKey>`, red ring. */
    readonly statusKey: string,
    message: string,
    /** Substitutions for the status text (e.g. the port). */
    readonly statusSubs: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** A port from the editor: `fallback` when empty, undefined unless a whole number in [min, 65535]. */
export function parsePort(v: unknown, fallback: number, min = 1): number | undefined {
  const n = v === undefined || v === '' ? fallback : Number(v);
  return Number.isInteger(n) && n >= min && n <= 65535 ? n : undefined;
}

export interface StartContext<Store> {
  /** The store, taken for this node (undefined for a node without one). */
  store: Store;
  /** A failure worded by `<type>.errors.<errorKey>`, to throw. */
  fail(statusKey: string, errorKey: string, subs?: Record<string, unknown>): StartFailure;
  /** Waits for `listening`; a bind error (on `where`, or the port the error names) becomes the locale's inUse / noPermission / badAddress / listen text. */
  listen<T>(listening: Promise<T>, where: { port: number; address: string }): Promise<T>;
  /** Closed with the node, or at once if the start fails; closed last-opened first. */
  own<C extends Closeable>(resource: C): C;
  /** True once the node is closing: a long start (a wait for an interface) stops. */
  readonly closing: boolean;
}

export interface ServerNodeSpec<S, Store = FileStore> {
  /** The node type: the prefix of its locale keys. */
  type: string;
  /** The store node its `store` setting names (null: none chosen, a noStore failure). Omit for a node without a store. */
  store?: IsoStoreNode | null;
  /** The first bad setting, checked before anything opens. */
  check?(fail: StartContext<Store>['fail']): StartFailure | undefined;
  /** Builds and starts the server; `own` each thing it opens before it can fail. */
  start(ctx: StartContext<Store>): Promise<S>;
  /** The server runs (not called when the node closed meanwhile): log it and show the status. */
  started?(server: S): void;
  /** The status key for a failure that is not a StartFailure (its message is logged as it is). */
  errorStatus?: string;
  /** Called first when the node closes (stop timers, status updaters). */
  closing?(): void;
}

/** Settles when the node serves or has failed to (never rejects). */
export interface ServerNodeHandle {
  ready: Promise<void>;
}

export function runServerNode<S, Store = FileStore>(RED: RedApi, node: RedNode, spec: ServerNodeSpec<S, Store>): ServerNodeHandle {
  const owned: Closeable[] = [];
  let holdsStore = false;
  let closing = false;

  const fail: StartContext<Store>['fail'] = (statusKey, errorKey, subs = {}) => new StartFailure(statusKey, RED._(`${spec.type}.errors.${errorKey}`, subs), subs);
  /** Closes what the start opened and gives the store back; rejects with the first close error, after all. */
  const releaseAll = async (): Promise<void> => {
    let error: unknown;
    // Last opened first: a server closes before the export or store it reads from.
    for (let r = owned.pop(); r; r = owned.pop()) await r.close().catch((err: unknown) => (error ??= err));
    if (holdsStore && spec.store) {
      holdsStore = false;
      await spec.store.release(node).catch(() => undefined);
    }
    if (error) throw error;
  };
  const ctx: StartContext<Store> = {
    store: undefined as Store,
    fail,
    own: (r) => {
      owned.push(r);
      return r;
    },
    listen: (listening, where) =>
      listening.catch((err: unknown) => {
        const key = bindErrorKind(err);
        // A server that binds several ports (NFS) names the one that failed on its error.
        const subs = { port: (err as { port?: number }).port ?? where.port, address: where.address || '*', message: (err as Error).message };
        throw new StartFailure(key === 'listen' ? 'listenError' : key, RED._(`${spec.type}.errors.${key}`, subs), subs);
      }),
    get closing() {
      return closing;
    },
  };

  const start = async (): Promise<void> => {
    const bad = spec.check?.(fail);
    if (bad) throw bad;
    if (spec.store === null) throw fail('noStore', 'noStore');
    node.status({ fill: 'yellow', shape: 'ring', text: RED._(`${spec.type}.status.starting`) });
    if (spec.store) {
      holdsStore = true;
      try {
        ctx.store = (await spec.store.acquire(node)) as Store;
      } catch (err) {
        throw fail('storeError', 'store', { message: (err as Error).message });
      }
      if (closing) return;
    }
    const server = await spec.start(ctx);
    if (!closing) spec.started?.(server);
  };

  const ready = start().catch(async (err: Error) => {
    // A failed start holds nothing: a port left bound or a store left open would outlive the
    // red dot that says the node does not serve.
    await releaseAll().catch(() => undefined);
    // Closed meanwhile (a deploy replaced the node): its status and log are no longer its own.
    if (closing) return;
    const f = err instanceof StartFailure ? err : new StartFailure(spec.errorStatus ?? 'listenError', err.message);
    node.status({ fill: 'red', shape: 'ring', text: RED._(`${spec.type}.status.${f.statusKey}`, f.statusSubs) });
    node.error(f.message);
  });

  node.on('close', (_removed: boolean, done: () => void) => {
    closing = true;
    spec.closing?.();
    ready
      .then(releaseAll)
      .then(
        () => node.status({}),
        (err: Error) => node.error(err.message),
      )
      .finally(done);
  });
  return { ready };
}
