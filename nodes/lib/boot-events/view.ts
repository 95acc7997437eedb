import type { HttpRequest, HttpResponse, RedApi } from '../red';
import { Coalescer } from './coalesce';
import { bootMonitor, type BootMonitor } from './live';

/**
 * What the editor's PXE sidebar talks to: admin endpoints (Node-RED's own auth: `pxe.read` to
 * look, `pxe.write` to clear and to name machines) and one comms topic.
 *
 * Node-RED cannot restrict a comms topic by permission: every editor connection with
 * `status.read` receives every published message. So the topic carries no boot data at all, only
 * "something changed, version N" (at most twice a second, however many clients boot); the
 * sidebar then asks the endpoint for what changed since the version it has, and that request
 * is where `pxe.read` is checked. A user without it sees nothing but a counter.
 */
export const COMMS_TOPIC = 'pxe/boots';
export const NOTIFY_INTERVAL_MS = 500;

type RedWithComms = RedApi & { comms?: { publish(topic: string, data: unknown, retain?: boolean): void } };

const installed = new WeakSet<object>();
let notifier: Coalescer | undefined;
let publish: ((topic: string, data: unknown) => void) | undefined;

function bad(res: HttpResponse, status: number, message: string): void {
  res.status(status).json({ error: message });
}

/** Starts the shared monitor and serves it to the editor; safe to call from every node and plugin. */
export function installBootView(RED: RedWithComms, monitor: BootMonitor = bootMonitor): void {
  monitor.start({ userDir: typeof RED.settings.userDir === 'string' ? RED.settings.userDir : undefined, warn: (m) => RED.log.warn(m) });
  if (RED.comms) {
    const comms = RED.comms;
    publish = (topic, data) => comms.publish(topic, data, false);
  }
  if (!notifier) {
    const n = new Coalescer(() => publish?.(COMMS_TOPIC, { epoch: monitor.epoch, v: monitor.version }), NOTIFY_INTERVAL_MS);
    monitor.onChange(() => n.poke());
    notifier = n;
  }
  const app = RED.httpAdmin as unknown as object;
  if (!app || installed.has(app)) return;
  installed.add(app);
  const read = RED.auth.needsPermission('pxe.read');
  const write = RED.auth.needsPermission('pxe.write');

  RED.httpAdmin.get('/pxe/boots', read, (req: HttpRequest, res: HttpResponse) => {
    const since = req.query.since === undefined || req.query.since === '' ? undefined : Number(req.query.since);
    res.json(monitor.list(since, req.query.epoch));
  });
  RED.httpAdmin.get('/pxe/boots/:id', read, (req: HttpRequest, res: HttpResponse) => {
    const d = monitor.detail(String(req.params.id ?? ''));
    if (!d) return bad(res, 404, 'no such boot');
    res.json(d);
  });
  RED.httpAdmin.post('/pxe/boots/clear', write, (_req: HttpRequest, res: HttpResponse) => {
    res.json({ cleared: monitor.clear() });
  });
  RED.httpAdmin.post('/pxe/names', write, (req: HttpRequest, res: HttpResponse) => {
    const body = (req.body && typeof req.body === 'object' ? req.body : {}) as { mac?: unknown; name?: unknown };
    try {
      monitor.setName(String(body.mac ?? ''), String(body.name ?? ''));
    } catch (err) {
      return bad(res, 400, (err as Error).message);
    }
    const mac = String(body.mac).trim().toLowerCase().replace(/-/g, ':');
    res.json({ mac, name: monitor.nameOf(mac) ?? '' });
  });
}
