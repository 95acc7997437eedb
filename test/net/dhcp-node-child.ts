/**
 * The pxe-dhcp node in a Node-RED runtime (node-red-node-test-helper), run inside a lab namespace
 * by test/net/dhcp-node.test.ts. argv[2]: JSON node properties; argv[3]: user directory;
 * argv[4], optional: an ISO for a pxe-iso-store node 's1' that the DHCP node uses.
 * Prints JSON lines: {"status":…}, {"msg":…} for every output message, {"error":…};
 * stdin JSON lines are input messages for the node, or {"unload":true} to close the flow.
 */
import * as readline from 'node:readline';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
import dhcpNode from '../../nodes/pxe-dhcp';
import storeNode from '../../nodes/pxe-iso-store';
import type { NodeMessage, NodeStatus, RedNode } from '../../nodes/lib/red';

helper.init(require.resolve('node-red'));
const props = JSON.parse(process.argv[2] ?? '{}') as Record<string, unknown>;
const out = (o: unknown): void => {
  process.stdout.write(JSON.stringify(o) + '\n');
};

void (async () => {
  helper.settings({ userDir: process.argv[3] });
  await helper.startServer();
  const iso = process.argv[4];
  const flow = [
    ...(iso ? [{ id: 's1', type: 'pxe-iso-store', path: iso }] : []),
    { id: 'd1', type: 'pxe-dhcp', name: '', ...props, ...(iso ? { store: 's1' } : {}), wires: [['h1']] },
    { id: 'h1', type: 'helper' },
  ];
  await helper.load([storeNode, dhcpNode], flow);
  const d1 = helper.getNode('d1') as RedNode & { receive(m: NodeMessage): void };
  const h1 = helper.getNode('h1') as RedNode;
  d1.on('call:status', ((call: { args: [NodeStatus] }) => out({ status: call.args[0] })) as never);
  d1.on('call:error', ((call: { args: [unknown] }) => out({ error: String(call.args[0]) })) as never);
  d1.on('call:warn', ((call: { args: [unknown] }) => out({ warn: String(call.args[0]) })) as never);
  h1.on('input', (msg: NodeMessage) => out({ msg: { topic: msg.topic, payload: msg.payload } }));
  out({ loaded: true });
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    const m = JSON.parse(line) as NodeMessage & { unload?: boolean };
    if (m.unload) {
      helper
        .unload()
        .then(() => helper.stopServer())
        .then(() => {
          out({ unloaded: true });
          process.exit(0);
        });
    } else d1.receive(m);
  });
})().catch((e: Error) => {
  out({ fatal: e.stack ?? e.message });
  process.exit(2);
});
