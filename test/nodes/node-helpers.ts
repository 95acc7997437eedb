// What the node runtime tests share: free loopback ports and waiting for a node's spied calls
// (node-red-node-test-helper emits `call:<method>` for each status/error/warn/... call).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { RedNode } from '../../nodes/lib/red';

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves with the arguments of the next `method` call of `node` that `pred` accepts. */
export function waitFor(node: RedNode, method: string, pred: (args: unknown[]) => boolean, timeoutMs = 5000): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no matching ${method} call`)), timeoutMs);
    const on = (call: { args: unknown[] }): void => {
      if (pred(call.args)) {
        clearTimeout(t);
        node.off(`call:${method}`, on);
        resolve(call.args);
      }
    };
    node.on(`call:${method}`, on);
  });
}

/**
 * Passed to helper.load before the nodes under test: RED._ words messages from the package's
 * en-US locale files (the test helper's own RED._ returns the bare key), so a test can read a
 * status dot as a user sees it ("2 active, 41 MB/s").
 */
export function withLocale(RED: { _: (key: string, subs?: Record<string, unknown>) => string }): void {
  const dir = path.join(__dirname, '../../nodes/locales/en-US');
  const catalog: Record<string, unknown> = {};
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.json')) Object.assign(catalog, JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')));
  RED._ = (key, subs = {}) => {
    let v: unknown = catalog;
    for (const part of key.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[part] : undefined;
    if (typeof v !== 'string') return key;
    return v.replace(/__(\w+)__/g, (m, name: string) => (name in subs ? String(subs[name]) : m));
  };
}
