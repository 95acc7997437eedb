import type { NodeDef, NodeMessage, RedApi, RedNode } from './lib/red';
import { getStoreNode } from './lib/store-node';
import { isStoreError } from './lib/store/types';

interface FilesDef extends NodeDef {
  store: string;
}

/**
 * Publishes files from the flow into a store: `file/set`, `file/delete`, `file/list`. The files
 * themselves belong to the store node (PublishedFiles), so every TFTP, HTTP and NFS node serving
 * that store sees them, and they outlive this node; it only carries the messages.
 */
export = function register(RED: RedApi): void {
  function PxeFilesNode(this: RedNode, def: FilesDef): void {
    RED.nodes.createNode(this, def);
    const storeNode = getStoreNode(RED, def.store);
    const published = storeNode?.published;
    if (!storeNode) {
      this.status({ fill: 'red', shape: 'ring', text: RED._('pxe-files.status.noStore') });
    } else if (!published) {
      this.status({ fill: 'red', shape: 'ring', text: RED._('pxe-files.status.noUserDir') });
    }

    const showCount = async (): Promise<void> => {
      if (!published) return;
      const n = (await published.list()).length;
      this.status({ fill: n > 0 ? 'green' : 'grey', shape: n > 0 ? 'dot' : 'ring', text: RED._('pxe-files.status.count', { count: n }) });
    };
    showCount().catch(() => this.status({ fill: 'red', shape: 'ring', text: RED._('pxe-files.status.unreadable') }));

    this.on('input', (msg: NodeMessage, send, done) => {
      if (!published) {
        done(new Error(RED._(storeNode ? 'pxe-files.errors.noUserDir' : 'pxe-files.errors.noStore')));
        return;
      }
      const filePath = typeof msg.path === 'string' ? msg.path : '';
      const run = async (): Promise<unknown> => {
        switch (msg.topic) {
          case 'file/set': {
            const data = msg.payload;
            if (typeof data !== 'string' && !Buffer.isBuffer(data)) throw new Error(RED._('pxe-files.errors.payload'));
            const f = await published.set(filePath, data);
            return { path: `/${f.path}`, size: f.size, mtime: f.mtime.toISOString() };
          }
          case 'file/delete':
            return { path: filePath, deleted: await published.delete(filePath) };
          case 'file/list':
            return (await published.list()).map((f) => ({ path: `/${f.path}`, size: f.size, mtime: f.mtime.toISOString() }));
          default:
            throw new Error(RED._('pxe-files.errors.topic', { topic: String(msg.topic) }));
        }
      };
      run()
        .then((payload) => {
          send({ ...msg, payload });
          done();
          return showCount();
        })
        .catch((err: Error) => {
          // Store errors (a path with '..', a file too large) read as they are; anything else is ours.
          done(new Error(isStoreError(err) ? RED._('pxe-files.errors.refused', { message: err.message }) : err.message));
        });
    });
  }
  RED.nodes.registerType('pxe-files', PxeFilesNode);

  // The edit dialog lists what a store has published (a deployed store node only).
  RED.httpAdmin.get('/pxe-files/:store', RED.auth.needsPermission('pxe-files.read'), (req, res) => {
    const published = getStoreNode(RED, req.params.store)?.published;
    if (!published) {
      res.json({ ok: false, files: [] });
      return;
    }
    published
      .list()
      .then((files) => res.json({ ok: true, files: files.map((f) => ({ path: `/${f.path}`, size: f.size, mtime: f.mtime.toISOString() })) }))
      .catch(() => res.json({ ok: false, files: [] }));
  });
};
