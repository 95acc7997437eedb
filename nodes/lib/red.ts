/**
 * The small part of Node-RED's runtime API that our nodes use, typed here rather than through the
 * stale @types/node-red. Node files are thin adapters; everything below them knows nothing of this.
 */
import type { EventEmitter } from 'node:events';

export interface NodeStatus {
  fill?: 'red' | 'green' | 'yellow' | 'blue' | 'grey';
  shape?: 'ring' | 'dot';
  text?: string;
}

export interface NodeMessage {
  _msgid?: string;
  topic?: string;
  payload?: unknown;
  [key: string]: unknown;
}

export type SendFn = (msg: NodeMessage | (NodeMessage | null)[] | null) => void;
export type DoneFn = (err?: Error) => void;

export interface RedNode extends EventEmitter {
  id: string;
  type: string;
  name?: string;
  z?: string;
  status(status: NodeStatus): void;
  send(msg: NodeMessage | (NodeMessage | null)[] | null): void;
  log(msg: unknown): void;
  warn(msg: unknown): void;
  error(msg: unknown, srcMsg?: NodeMessage): void;
  debug(msg: unknown): void;
  trace(msg: unknown): void;
  on(event: 'input', cb: (msg: NodeMessage, send: SendFn, done: DoneFn) => void): this;
  on(event: 'close', cb: (removed: boolean, done: () => void) => void): this;
  on(event: string, cb: (...args: never[]) => void): this;
}

export interface NodeDef {
  id: string;
  type: string;
  name?: string;
  z?: string;
  [key: string]: unknown;
}

type Handler = (req: HttpRequest, res: HttpResponse, next?: () => void) => void;

export interface HttpRequest {
  query: Record<string, string | undefined>;
  params: Record<string, string | undefined>;
  body?: unknown;
}

export interface HttpResponse {
  status(code: number): HttpResponse;
  json(body: unknown): void;
  send(body: unknown): void;
}

export interface RedApi {
  nodes: {
    createNode(node: RedNode, def: NodeDef): void;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each node type narrows `this` and its def
    registerType<N extends RedNode, D extends NodeDef>(type: string, ctor: (this: N, def: D) => void, opts?: any): void;
    getNode(id: string): RedNode | null;
  };
  httpAdmin: {
    get(path: string, ...handlers: Handler[]): void;
    post(path: string, ...handlers: Handler[]): void;
  };
  auth: { needsPermission(permission: string): Handler };
  settings: { userDir?: string; [key: string]: unknown };
  log: {
    info(msg: unknown): void;
    warn(msg: unknown): void;
    error(msg: unknown): void;
    debug(msg: unknown): void;
  };
  _(key: string, substitutions?: Record<string, unknown>): string;
}
