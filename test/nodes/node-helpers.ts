// What the node runtime tests share: free loopback ports and waiting for a node's spied calls
// (node-red-node-test-helper emits `call:<method>` for each status/error/warn/... call).
import * as net from 'node:net';
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
