/**
 * The request handler: serves a FileStore over HTTP (GET and HEAD, single ranges, conditional
 * requests, an optional directory listing, the generated iPXE script) and reports requests,
 * progress and completed or failed transfers through hooks. Knows nothing of Node-RED; works as a
 * plain `http` listener and as an Express middleware (Node-RED's httpNode).
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { FileStore, StoreFile, StoreStat } from '../store/types';
import { BufferPool } from './buffer-pool';
import { evaluateConditions, validatorsFor } from './conditional';
import { contentTypeFor } from './content-type';
import { BootMenus } from '../menus/boot-menus';
import { MenuError, type MenuChoice } from '../menus/pxelinux-config';
import { findArchBootFiles, hostFor, hostOnly, renderArchIpxeScript, safeHost, urlPath, type ArchBootFiles } from './ipxe-script';
import { ProgressTracker } from './progress';
import { contentRange, ifRangeMatches, parseRange } from './range';
import { sendRange, socketAssigned, type SendOptions, type SendOutcome } from './send-range';
import { TransferSlots } from './slots';

/** Read size from the store: large reads keep the per-byte cost low (the issue measured 1 MiB). */
export const READ_CHUNK = 1 << 20;
/**
 * Read buffers all transfers of the process share: at most 24 MiB in use however many clients
 * download at once (a transfer holds at most two), plus at most 24 MiB written off to clients that
 * stopped reading in the middle of a write. One client address holds at most 8 of them (in use and
 * written off together): it takes three addresses to fill the pool, and a transfer that finds it
 * full sends through its own 64 KiB buffer instead of waiting (send-range.ts).
 */
export const sharedPool = new BufferPool(READ_CHUNK, 24, 10_000, { maxPerOwner: 8, maxWrittenOff: 24 });
/**
 * Body transfers at once over the process, and from one client address: each holds an open file
 * and up to 64 KiB of its own (1 MiB of the pool's while its client reads fast) until its client
 * reads or is cut off, so 512 of them stay within 32 MiB. 64 per address leaves room for a
 * download manager or a lab of browsers behind one NAT, and takes 8 addresses to fill the server.
 */
export const sharedSlots = new TransferSlots(512, 64);

interface Client {
  /** Request number within this service, to tell concurrent transfers apart. */
  id: number;
  client: string;
  port: number;
  method: string;
  /** The decoded URL path as requested ('/arch/boot/x86_64/vmlinuz-linux'). */
  path: string;
}

export interface RequestEvent extends Client {
  status: number;
  /** The byte range being sent, inclusive, or null for the whole file / no file. */
  range: { start: number; end: number } | null;
  /** File size, when the request named a file. */
  size: number | null;
}

export interface ProgressEvent extends Client {
  bytes: number;
  total: number;
  percent: number;
}

export interface DoneEvent extends Client {
  status: number;
  bytes: number;
  durationMs: number;
  /** Bytes per second over the transfer. */
  throughput: number;
}

export interface FailEvent extends Client {
  status: number;
  error: string;
  /** Body bytes sent before a transfer broke off. */
  bytes: number;
  /** The client went away (or the service closed) in the middle of a transfer. */
  aborted: boolean;
}

export interface FileServiceHooks {
  onRequest?(e: RequestEvent): void;
  onProgress?(e: ProgressEvent): void;
  onDone?(e: DoneEvent): void;
  onFail?(e: FailEvent): void;
  /** One access-log line per request, when its response is over. */
  onLog?(line: string): void;
  /** The number of body transfers in flight changed. */
  onActive?(count: number): void;
}

export interface FileServiceOptions {
  store: FileStore;
  /** Serve an HTML listing for directories (default false: 403). */
  listing?: boolean;
  /** URL path of the generated iPXE script, or null/'' for none (default '/boot.ipxe'). */
  ipxePath?: string | null;
  /** Extra kernel command-line arguments for the generated iPXE script (e.g. console=ttyS0). */
  kernelArgs?: string;
  /**
   * What the generated iPXE script boots: absent, the ISO over HTTP straight away (no menu);
   * otherwise the entries of the ISO's own PXE menu (NBD, NFS, HTTP, …), shown as a menu, booted
   * after a timeout, or one booted at once (BootMenus).
   */
  ipxeMenu?: MenuChoice;
  /** URL prefix the service is mounted under on a shared server ('' for its own listener). */
  basePath?: string;
  /** host[:port] for generated URLs when a request has no usable Host header. */
  publicHost?: string;
  /** Progress report step in percent (default 10) and least interval between reports (250 ms). */
  progressStep?: number;
  progressIntervalMs?: number;
  /** Where read buffers come from (default: sharedPool). */
  pool?: BufferPool;
  /** Admission of body transfers (default: sharedSlots, shared by the process). */
  slots?: TransferSlots;
  /** A client that takes nothing for this long is cut off (default 60 s). */
  stallTimeoutMs?: number;
  /** Tuning of the data path (tests): own chunk size, proof of reading, write-off delay. */
  send?: Omit<SendOptions, 'owner' | 'stallTimeoutMs'>;
  /** Where the iPXE script finds its files (the fixed Arch layout by default). */
  bootFiles?: (store: FileStore) => Promise<ArchBootFiles>;
  hooks?: FileServiceHooks;
}

/** Body bytes of one response, for the access log. */
interface Account {
  bytes: number;
}

interface Transfer {
  res: ServerResponse;
  done: Promise<void>;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  412: 'Precondition Failed',
  416: 'Range Not Satisfiable',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/**
 * What a client is told about a store error, by status. Store messages name files and folders
 * on the server (the image path, a symlink's target): they go to the hooks (the node's log and
 * messages) only, never into a response.
 */
const STORE_ERROR_TEXT: Record<number, string> = {
  400: 'the path is not allowed',
  403: 'access to this path is refused',
  404: 'no such file',
  416: 'range not satisfiable',
  500: 'the file cannot be read (the server log says why)',
};

/** The HTTP status for a store error (path rules, missing files) or anything else. */
export function statusForError(err: unknown): number {
  switch ((err as { code?: unknown } | null)?.code) {
    case 'EINVAL':
      return 400;
    case 'EACCES':
    case 'EPERM':
    case 'EISDIR':
      return 403;
    case 'ENOENT':
    case 'ENOTDIR':
      return 404;
    case 'ERANGE':
      return 416;
    default:
      return 500;
  }
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The path part of a request target ('/a/b?x' → '/a/b'; absolute-form targets are accepted). */
export function targetPath(url: string): string {
  let p = url;
  const abs = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(p);
  if (abs) p = p.slice(abs[0].length) || '/';
  const q = p.search(/[?#]/);
  return q < 0 ? p : p.slice(0, q);
}

function normalizeUrlPath(p: string): string {
  const trimmed = p.trim();
  if (!trimmed) return '';
  return ('/' + trimmed).replace(/\/+/g, '/').replace(/\/$/, '');
}

export class HttpFileService {
  private nextId = 1;
  private readonly transfers = new Set<Transfer>();
  private readonly accounts = new WeakMap<ServerResponse, Account>();
  private closing = false;
  private readonly ipxePath: string;
  private readonly basePath: string;
  private readonly pool: BufferPool;
  hooks: FileServiceHooks;

  constructor(private readonly opts: FileServiceOptions) {
    this.ipxePath = normalizeUrlPath(opts.ipxePath === undefined ? '/boot.ipxe' : (opts.ipxePath ?? ''));
    this.basePath = normalizeUrlPath(opts.basePath ?? '');
    this.hooks = opts.hooks ?? {};
    this.pool = opts.pool ?? sharedPool;
  }

  /** Body transfers in flight. */
  get activeDownloads(): number {
    return this.transfers.size;
  }

  private get slots(): TransferSlots {
    return this.opts.slots ?? sharedSlots;
  }

  /** The request listener, for http.createServer() or an Express app. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const c: Client = {
      id: this.nextId++,
      client: (req.socket.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.)/, ''),
      port: req.socket.remotePort ?? 0,
      method: req.method ?? 'GET',
      path: '',
    };
    const started = process.hrtime.bigint();
    const acct: Account = { bytes: 0 };
    this.accounts.set(res, acct);
    res.once('close', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const ua = String(req.headers['user-agent'] ?? '-').replace(/"/g, "'");
      this.hooks.onLog?.(
        `${c.client} "${c.method} ${req.url ?? ''} HTTP/${req.httpVersion}" ${res.statusCode} ${acct.bytes} ${ms.toFixed(1)}ms "${ua}"` +
          (res.writableFinished ? '' : ' aborted'),
      );
    });
    this.serve(req, res, c).catch((err: Error) => {
      // Only reached through a bug; the client still gets an answer, the log the details.
      if (!res.headersSent) this.sendText(req, res, c, 500, 'internal error\n', {}, null, `internal error: ${err.stack ?? err.message}`);
      else res.destroy();
    });
  };

  private async serve(req: IncomingMessage, res: ServerResponse, c: Client): Promise<void> {
    // A pipelined request does nothing (no stat, no open file) before the ones ahead of it are
    // answered: what a connection holds does not grow with the requests a client sends ahead.
    if (!(await socketAssigned(req, res))) return;
    if (this.closing) return this.sendText(req, res, c, 503, 'shutting down\n', { Connection: 'close' });
    if (c.method !== 'GET' && c.method !== 'HEAD') {
      c.path = targetPath(req.url ?? '/');
      return this.sendText(req, res, c, 405, 'only GET and HEAD are served\n', { Allow: 'GET, HEAD' });
    }
    const raw = targetPath(req.url ?? '/');
    try {
      c.path = decodeURIComponent(raw);
    } catch {
      c.path = raw;
      return this.sendText(req, res, c, 400, 'malformed percent-encoding in the path\n');
    }
    if (!c.path.startsWith('/')) return this.sendText(req, res, c, 400, 'the path must start with /\n');
    if (this.ipxePath && normalizeUrlPath(c.path) === this.ipxePath) return this.serveIpxe(req, res, c);

    let st: StoreStat;
    try {
      st = await this.opts.store.stat(c.path);
    } catch (err) {
      return this.storeError(req, res, c, err);
    }
    if (st.isDirectory) return this.serveDirectory(req, res, c, st, raw);
    return this.serveFile(req, res, c, st);
  }

  private async serveFile(req: IncomingMessage, res: ServerResponse, c: Client, st: StoreStat): Promise<void> {
    const v = validatorsFor(st.size, st.mtime);
    const headers: OutgoingHttpHeaders = { ETag: v.etag, 'Last-Modified': v.lastModified, 'Accept-Ranges': 'bytes' };
    const cond = evaluateConditions(req.headers, v);
    if (cond === 'not-modified') {
      this.emitRequest(c, 304, null, st.size);
      res.writeHead(304, headers).end();
      return;
    }
    if (cond === 'precondition-failed') return this.sendText(req, res, c, 412, 'precondition failed\n', headers, st.size);

    let status = 200;
    let start = 0;
    let end = st.size - 1;
    if (req.headers.range !== undefined && ifRangeMatches(req.headers['if-range'] as string | undefined, v.etag, v.mtime)) {
      const r = parseRange(req.headers.range, st.size);
      if (r.type === 'unsatisfiable') {
        headers['Content-Range'] = `bytes */${st.size}`;
        return this.sendText(req, res, c, 416, `range not satisfiable: ${req.headers.range} (size ${st.size})\n`, headers, st.size);
      }
      if (r.type === 'range') {
        status = 206;
        start = r.start;
        end = r.end;
        headers['Content-Range'] = contentRange(start, end, st.size);
      }
    }
    const length = st.size === 0 ? 0 : end - start + 1;
    headers['Content-Type'] = contentTypeFor(st.name);
    headers['Content-Length'] = length;
    const range = status === 206 ? { start, end } : null;

    if (c.method === 'HEAD' || length === 0) {
      this.emitRequest(c, status, range, st.size);
      res.writeHead(status, headers).end();
      if (c.method === 'GET') this.hooks.onDone?.({ ...c, status, bytes: 0, durationMs: 0, throughput: 0 });
      return;
    }

    if (!this.slots.tryTake(c.client)) {
      const busy = this.slots.heldBy(c.client) >= this.slots.maxPerClient ? `from ${c.client} (limit ${this.slots.maxPerClient})` : `(limit ${this.slots.max})`;
      return this.sendText(req, res, c, 503, 'too many downloads at once, try again shortly\n', { 'Retry-After': '5' }, st.size, `too many downloads at once ${busy}: refused`);
    }
    try {
      let file: StoreFile;
      try {
        file = await this.opts.store.open(st.path);
      } catch (err) {
        return this.storeError(req, res, c, err);
      }
      if (res.destroyed || this.closing) {
        // The client left (or we are closing) while the file was being opened.
        await file.close().catch(() => undefined);
        return;
      }
      this.emitRequest(c, status, range, st.size);
      res.writeHead(status, headers);
      await this.transfer(req, res, c, status, file, start, length);
    } finally {
      this.slots.give(c.client);
    }
  }

  /** Sends the body and reports progress, then done or failed once the file is closed. */
  private async transfer(req: IncomingMessage, res: ServerResponse, c: Client, status: number, file: StoreFile, start: number, length: number): Promise<void> {
    const tracker = new ProgressTracker(length, { step: this.opts.progressStep, minIntervalMs: this.opts.progressIntervalMs });
    const acct = this.accounts.get(res);
    const started = process.hrtime.bigint();
    let resolveDone!: () => void;
    const t: Transfer = { res, done: new Promise<void>((r) => (resolveDone = r)) };
    this.transfers.add(t);
    this.hooks.onActive?.(this.transfers.size);
    let outcome: SendOutcome;
    try {
      outcome = await sendRange(
        req,
        res,
        file,
        start,
        length,
        this.pool,
        (bytes) => {
          if (acct) acct.bytes = bytes;
          const pct = bytes < length ? tracker.update(bytes) : null;
          if (pct !== null && !this.closing) this.hooks.onProgress?.({ ...c, bytes, total: length, percent: pct });
        },
        { ...this.opts.send, owner: c.client, stallTimeoutMs: this.opts.stallTimeoutMs },
      );
    } finally {
      await file.close().catch(() => undefined);
      this.transfers.delete(t);
      resolveDone();
    }
    if (this.closing) return;
    this.hooks.onActive?.(this.transfers.size);
    const { bytes } = outcome;
    if (outcome.complete) {
      const pct = tracker.finish();
      if (pct !== null) this.hooks.onProgress?.({ ...c, bytes, total: length, percent: pct });
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      this.hooks.onDone?.({ ...c, status, bytes, durationMs, throughput: durationMs > 0 ? (bytes * 1000) / durationMs : 0 });
      return;
    }
    this.hooks.onFail?.({
      ...c,
      status,
      bytes,
      aborted: !outcome.readError,
      error: outcome.readError
        ? `read error after ${bytes} of ${length} bytes: ${outcome.readError.message}`
        : outcome.stalled
          ? `client stopped reading after ${bytes} of ${length} bytes and was cut off`
          : outcome.starvedPool
            ? `client stopped reading after ${bytes} of ${length} bytes while the memory for stalled clients was spent, and was cut off`
            : `client closed the connection after ${bytes} of ${length} bytes`,
    });
  }

  private async serveDirectory(req: IncomingMessage, res: ServerResponse, c: Client, st: StoreStat, raw: string): Promise<void> {
    if (!this.opts.listing) return this.sendText(req, res, c, 403, 'directory listing is disabled\n');
    if (!raw.endsWith('/')) {
      // Relative links in the listing need the trailing slash.
      const location = `${this.basePath}${raw}/`;
      this.emitRequest(c, 301, null, null);
      res.writeHead(301, { Location: location, 'Content-Length': 0 }).end();
      return;
    }
    let entries: StoreStat[];
    try {
      entries = await this.opts.store.list(st.path);
    } catch (err) {
      return this.storeError(req, res, c, err);
    }
    const dirUrl = `${this.basePath}/${st.path ? urlPath(st.path) + '/' : ''}`;
    const title = escapeHtml(`Index of /${st.path ? st.path + '/' : ''}`);
    const items = entries.map((e) => {
      const name = e.isDirectory ? `${e.name}/` : e.name;
      const href = escapeHtml(dirUrl + encodeURIComponent(e.name) + (e.isDirectory ? '/' : ''));
      return `<li><a href="${href}">${escapeHtml(name)}</a>${e.isDirectory ? '' : ` ${e.size}`}</li>`;
    });
    if (st.path) {
      const parent = st.path.includes('/') ? urlPath(st.path.slice(0, st.path.lastIndexOf('/'))) + '/' : '';
      items.unshift(`<li><a href="${escapeHtml(`${this.basePath}/${parent}`)}">../</a></li>`);
    }
    const html =
      `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${title}</title></head>\n` +
      `<body><h1>${title}</h1>\n<ul>\n${items.join('\n')}\n</ul></body></html>\n`;
    this.sendText(req, res, c, 200, html, { 'Content-Type': 'text/html; charset=utf-8' });
  }

  private async serveIpxe(req: IncomingMessage, res: ServerResponse, c: Client): Promise<void> {
    if (this.opts.ipxeMenu) return this.serveIpxeMenu(req, res, c, this.opts.ipxeMenu);
    let files: ArchBootFiles;
    try {
      files = await (this.opts.bootFiles ?? findArchBootFiles)(this.opts.store);
    } catch (err) {
      const status = statusForError(err);
      // A store without the Arch files is a setup mistake worth naming to the one at the console.
      const text = status === 404 ? `cannot generate ${this.ipxePath}: the store is not an Arch ISO\n` : `${STORE_ERROR_TEXT[500]}\n`;
      return this.sendText(req, res, c, status === 404 ? 404 : 500, text, {}, null, `cannot generate ${this.ipxePath}: ${(err as Error).message}`);
    }
    const host =
      safeHost(req.headers.host) ?? this.opts.publicHost ?? hostFor(req.socket.localAddress ?? '127.0.0.1', req.socket.localPort ?? 80);
    const script = renderArchIpxeScript(files, `http://${host}${this.basePath}/`, this.opts.kernelArgs);
    this.sendText(req, res, c, 200, script, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-cache' });
  }

  /** The ISO's PXE menu as an iPXE script; its NBD and NFS entries name this host as their server. */
  private async serveIpxeMenu(req: IncomingMessage, res: ServerResponse, c: Client, choice: MenuChoice): Promise<void> {
    const host = safeHost(req.headers.host) ?? this.opts.publicHost ?? hostFor(req.socket.localAddress ?? '127.0.0.1', req.socket.localPort ?? 80);
    let script: string;
    try {
      const menus = await BootMenus.load(this.opts.store);
      script = menus.ipxe({ choice, extraArgs: this.opts.kernelArgs }, `http://${host}${this.basePath}/`, hostOnly(host));
    } catch (err) {
      const status = err instanceof MenuError ? 404 : statusForError(err);
      const text = status === 404 ? `cannot generate ${this.ipxePath}: ${err instanceof MenuError ? err.message : 'the store is not an Arch ISO'}\n` : `${STORE_ERROR_TEXT[500]}\n`;
      return this.sendText(req, res, c, status === 404 ? 404 : 500, text, {}, null, `cannot generate ${this.ipxePath}: ${(err as Error).message}`);
    }
    this.sendText(req, res, c, 200, script, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-cache' });
  }

  private emitRequest(c: Client, status: number, range: RequestEvent['range'], size: number | null): void {
    if (!this.closing) this.hooks.onRequest?.({ ...c, status, range, size });
  }

  /** A store error: a generic text for the client, the store's own message for the hooks. */
  private storeError(req: IncomingMessage, res: ServerResponse, c: Client, err: unknown): void {
    const status = statusForError(err);
    const text = STORE_ERROR_TEXT[status] ?? STORE_ERROR_TEXT[500]!;
    const detail = err instanceof Error ? err.message : String(err);
    this.sendText(req, res, c, status, `${text}\n`, {}, null, detail);
  }

  /**
   * A small complete response (errors, listing, script); failures are reported as well, with
   * `detail` (what the server knows, never sent) in place of the body when given.
   */
  private sendText(
    req: IncomingMessage,
    res: ServerResponse,
    c: Client,
    status: number,
    body: string,
    headers: OutgoingHttpHeaders = {},
    size: number | null = null,
    detail?: string,
  ): void {
    if (res.headersSent || res.destroyed) return;
    const buf = Buffer.from(status >= 400 ? `${status} ${STATUS_TEXT[status] ?? ''}: ${body}` : body, 'utf8');
    this.emitRequest(c, status, null, size);
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers, 'Content-Length': buf.length });
    res.end(req.method === 'HEAD' ? undefined : buf);
    const acct = this.accounts.get(res);
    if (acct && req.method !== 'HEAD') acct.bytes = buf.length;
    if (status >= 400 && !this.closing) {
      this.hooks.onFail?.({ ...c, status, error: detail ?? body.trim(), bytes: 0, aborted: false });
    }
  }

  /** Stops serving: new requests get 503, transfers in flight are cut and their files closed. */
  async close(): Promise<void> {
    this.closing = true;
    const pending = [...this.transfers];
    for (const t of pending) t.res.destroy();
    await Promise.all(pending.map((t) => t.done));
  }
}
