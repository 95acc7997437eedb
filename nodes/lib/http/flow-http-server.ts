/**
 * Where the flow's own HTTP node serves a store, as a base URL a boot loader can fetch from: the
 * DHCP node points generated pxelinux configs' LINUX/INITRD there (kernel over HTTP). Found among
 * the deployed nodes (a running pxe-http node naming the same store), once that node is serving.
 */
import { hostFor } from './ipxe-script';
import type { NodeDef, RedApi, RedNode } from '../red';

/** What the pxe-http node exposes to others (see pxe-http.ts). */
interface HttpNodeView extends RedNode {
  ready?: Promise<void>;
  boundPort?: number;
}

type RedWithFlows = RedApi & { nodes: RedApi['nodes'] & { eachNode?(cb: (def: NodeDef) => void): void } };

const WILDCARD = new Set(['', '0.0.0.0', '::']);
const LOOPBACK = /^(127\.|::1$|localhost$|::ffff:127\.)/i;
/** Longest wait for an HTTP node still opening its store: past it, the kernel comes over TFTP. */
export const HTTP_READY_WAIT_MS = 15_000;

export interface FlowHttpServer {
  /** 'http://{next-server}/' (the DHCP node puts its address there) or 'http://10.0.0.1:8080/pxe/'. */
  url: string;
  /** The pxe-http node's name or id, to say where the kernel comes from. */
  node: string;
}

/** '/pxe/' → '/pxe'; '' → '' (as pxe-http mounts itself). */
function mountPath(p: unknown): string {
  const s = String(p ?? '').trim();
  return s ? ('/' + s).replace(/\/+/g, '/').replace(/\/$/, '') : '';
}

/** A host for the URL: the bound address when it is one a client can reach, else '{next-server}'. */
function hostPart(address: string, port: number): string | null {
  if (WILDCARD.has(address)) return port === 80 ? '{next-server}' : `{next-server}:${port}`;
  if (LOOPBACK.test(address)) return null;
  return hostFor(address, port);
}

async function settled(p: Promise<void> | undefined, ms: number): Promise<boolean> {
  if (!p) return true;
  let timer: NodeJS.Timeout | undefined;
  const ok = await Promise.race([p.then(() => true, () => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]);
  clearTimeout(timer);
  return ok;
}

/**
 * The first running pxe-http node that serves `storeId` where a client can reach it: an own
 * listener that bound its port (any address but loopback), else a path on Node-RED's web server
 * (plain http, not bound to loopback). null when there is none.
 */
export async function flowHttpServer(RED: RedApi, storeId: string | undefined, waitMs = HTTP_READY_WAIT_MS): Promise<FlowHttpServer | null> {
  const each = (RED as RedWithFlows).nodes.eachNode;
  if (!storeId || typeof each !== 'function') return null;
  const defs: NodeDef[] = [];
  each((d) => {
    if (d.type === 'pxe-http' && d.store === storeId) defs.push(d);
  });
  // Own listeners first: they are what the ISO's HTTP entry expects (port 80, the store at '/').
  defs.sort((a, b) => Number(a.mode === 'httpNode') - Number(b.mode === 'httpNode'));
  for (const d of defs) {
    // Not running: disabled, or on a disabled tab.
    const node = RED.nodes.getNode(d.id) as HttpNodeView | null;
    if (!node) continue;
    if (!(await settled(node.ready, waitMs))) continue;
    const name = d.name || d.id;
    if (d.mode === 'httpNode') {
      const s = RED.settings;
      if (s.httpNodeRoot === false || s.https) continue;
      const host = hostPart(String(s.uiHost ?? ''), Number(s.uiPort ?? 1880));
      const root = typeof s.httpNodeRoot === 'string' ? mountPath(s.httpNodeRoot) : '';
      if (host) return { url: `http://${host}${root}${mountPath(d.path ?? '/pxe')}/`, node: name };
    } else if (node.boundPort) {
      const host = hostPart(String(d.address ?? '').trim(), node.boundPort);
      if (host) return { url: `http://${host}/`, node: name };
    }
  }
  return null;
}
