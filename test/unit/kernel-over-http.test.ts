/**
 * Kernel and initramfs over HTTP in generated pxelinux configs: the chosen entry's LINUX/INITRD
 * become URLs of our HTTP server (for lpxelinux.0, which fetches HTTP; pxelinux.0 does not), on
 * the three archiso layouts' real menus, and those URLs really serve the files; the rule's
 * setting; and finding the flow's HTTP node that serves the store.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { describe, it } from 'node:test';
import { kernelHttpOf } from '../../nodes/lib/dhcp/node-config';
import { flowHttpServer } from '../../nodes/lib/http/flow-http-server';
import { HttpFileService } from '../../nodes/lib/http/serve-file';
import { HttpListener } from '../../nodes/lib/http/server';
import { BootMenus } from '../../nodes/lib/menus/boot-menus';
import { checkKernelBaseUrl, GENERATED_LABEL, kernelOverHttp, loaderFetchesHttp, MenuError, pxelinuxConfig } from '../../nodes/lib/menus/pxelinux-config';
import { readMenu, resolveMenuPath, type ReadText } from '../../nodes/lib/menus/syslinux';
import type { NodeDef, RedApi, RedNode } from '../../nodes/lib/red';
import { openStore } from '../../nodes/lib/store/open-store';
import { ensureFixtures, fixturePath } from '../fixtures/fixtures';

function get(port: number, p: string): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p }, (res) => {
        let bytes = 0;
        res.on('data', (d: Buffer) => (bytes += d.length)).on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
      })
      .on('error', reject);
  });
}

describe('kernel over HTTP', () => {
  const manifest = ensureFixtures();
  for (const [name, iso] of Object.entries(manifest.isos)) {
    it(`${name}: the generated entry names the kernel and initrds as URLs our HTTP server serves; the ISO's menu keeps TFTP`, async () => {
      const store = await openStore(fixturePath(iso.file));
      const service = new HttpFileService({ store });
      const listener = new HttpListener(service.handle);
      const { port } = await listener.listen({ address: '127.0.0.1', port: 0 });
      try {
        const menus = await BootMenus.load(store);
        const http0 = menus.entries.find((e) => /archiso_http_srv=/.test(e.append))!;
        const base = `http://127.0.0.1:${port}/`;
        const input = { menuPath: menus.menuPath, workDir: menus.workDir, entries: menus.entries, kernelBaseUrl: base };
        for (const choice of [{ mode: 'now', entry: http0.label } as const, { mode: 'timeout', entry: http0.label, seconds: 3 } as const]) {
          const text = pxelinuxConfig({ ...input, choice });
          const files: Record<string, string> = { 'gen/x.cfg': text };
          const read: ReadText = async (p) => {
            if (p in files) return files[p]!;
            const chunks: Buffer[] = [];
            for await (const c of await store.createReadStream(p)) chunks.push(c as Buffer);
            return Buffer.concat(chunks).toString('utf8');
          };
          const parsed = await readMenu(read, 'gen/x.cfg', menus.workDir);
          const ours = parsed.entries.find((e) => e.label === GENERATED_LABEL)!;
          const urls = [ours.kernel!, ...ours.initrd!.split(',')];
          assert.equal(urls.length, 1 + http0.initrd!.split(',').length, 'every initrd (microcode first) is kept, in order');
          const tftpPaths = [http0.kernel!, ...http0.initrd!.split(',')].map((p) => resolveMenuPath(p, menus.workDir));
          for (const [i, u] of urls.entries()) {
            assert.ok(u.startsWith(base), u);
            const storePath = u.slice(base.length);
            assert.equal(storePath, tftpPaths[i], 'the same file the ISO names, resolved as pxelinux resolves it');
            const res = await get(port, `/${storePath}`);
            assert.equal(res.status, 200, u);
            assert.equal(res.bytes, (await store.stat(storePath)).size, u);
          }
          assert.equal(ours.append, http0.append, 'the kernel parameters are the entry\'s own');
          // The ISO's entries (a person at the menu picks those) still load over TFTP.
          for (const e of parsed.entries.filter((x) => x.label !== GENERATED_LABEL)) assert.doesNotMatch(`${e.kernel} ${e.initrd}`, /http:/, e.label);
        }
        // Without a base URL: the ISO's TFTP paths, as before.
        const tftp = pxelinuxConfig({ ...input, kernelBaseUrl: undefined, choice: { mode: 'now', entry: http0.label } });
        assert.match(tftp, new RegExp(`^LINUX ${http0.kernel!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
        // The plain menu has no entry of ours: nothing changes.
        assert.doesNotMatch(pxelinuxConfig({ ...input, choice: { mode: 'menu' } }), /http:/);
      } finally {
        await service.close();
        await listener.close();
        await store.close();
      }
    });
  }

  it('only lpxelinux.0 is handed HTTP URLs; base URLs that would break a config line or need https are refused', () => {
    for (const f of ['/boot/syslinux/lpxelinux.0', 'lpxelinux.0', '/arch/boot/syslinux/LPXELINUX.0']) assert.equal(loaderFetchesHttp(f), true, f);
    for (const f of ['/boot/syslinux/pxelinux.0', 'undionly.kpxe', 'snponly.efi', '', undefined, 'lpxelinux.0.old']) assert.equal(loaderFetchesHttp(f), false, String(f));
    assert.equal(checkKernelBaseUrl('http://10.0.0.1'), 'http://10.0.0.1/');
    assert.equal(checkKernelBaseUrl('http://10.0.0.1:8080/pxe/'), 'http://10.0.0.1:8080/pxe/');
    for (const bad of ['https://10.0.0.1/', 'ftp://x/', 'http://', 'http://a b/', 'http://a/\nLABEL x', 'http://a/x,y', 'http://a/"x']) {
      assert.throws(() => checkKernelBaseUrl(bad), (e: unknown) => e instanceof MenuError && e.code === 'BAD_URL', JSON.stringify(bad));
    }
    const e = { label: 'x', title: '', kernel: 'boot/x86_64/vmlinuz', initrd: 'boot/intel_ucode.img, boot/x86_64/archiso.img', append: 'a=1', hidden: false, file: 'f' };
    assert.deepEqual(kernelOverHttp(e, '/arch/', 'http://s/').initrd, 'http://s/arch/boot/intel_ucode.img,http://s/arch/boot/x86_64/archiso.img');
    assert.equal(kernelOverHttp({ ...e, kernel: '::/a b/vmlinuz' }, '/arch/', 'http://s:81/p').kernel, 'http://s:81/p/a%20b/vmlinuz', 'path segments are URL-encoded');
    // A chain loader or memtest stays on TFTP.
    const c32 = pxelinuxConfig({ menuPath: 'm', workDir: '/', entries: [{ ...e, kernel: 'chain.c32', initrd: undefined }], choice: { mode: 'now', entry: 'x' }, kernelBaseUrl: 'http://s/' });
    assert.match(c32, /^LINUX chain\.c32$/m);
  });

  it("reads a rule's kernel source: auto by default, tftp, or an http:// base URL", () => {
    assert.equal(kernelHttpOf({}, 'r'), 'auto');
    assert.equal(kernelHttpOf({ kernelHttp: ' Auto ' }, 'r'), 'auto');
    assert.equal(kernelHttpOf({ kernelHttp: 'tftp' }, 'r'), 'tftp');
    assert.equal(kernelHttpOf({ kernelHttp: 'off' }, 'r'), 'tftp');
    assert.equal(kernelHttpOf({ kernelHttp: 'http://{next-server}:8080/' }, 'r'), 'http://{next-server}:8080/');
    assert.throws(() => kernelHttpOf({ kernelHttp: 'https://x/' }, 'rule "a"'), /rule "a": kernel over HTTP from "https:\/\/x\/"/);
    assert.throws(() => kernelHttpOf({ kernelHttp: 'yes please' }, 'r'), /auto, tftp or an http:\/\/ URL/);
  });

  it("finds the flow's running HTTP node for the store: its port, address and path; none when it is not serving", async () => {
    const defs: NodeDef[] = [];
    const running = new Map<string, Partial<RedNode> & { ready?: Promise<void>; boundPort?: number }>();
    const settings: Record<string, unknown> = {};
    const RED = {
      nodes: {
        eachNode: (cb: (d: NodeDef) => void) => defs.forEach(cb),
        getNode: (id: string) => (running.get(id) as RedNode) ?? null,
      },
      settings,
    } as unknown as RedApi;
    const set = (d: NodeDef[], nodes: [string, { ready?: Promise<void>; boundPort?: number }][]): void => {
      defs.splice(0, defs.length, ...d);
      running.clear();
      for (const [id, n] of nodes) running.set(id, n);
    };
    const ok = Promise.resolve();

    set([{ id: 'h1', type: 'pxe-http', store: 's1', address: '', port: 80 }], [['h1', { ready: ok, boundPort: 80 }]]);
    assert.deepEqual(await flowHttpServer(RED, 's1'), { url: 'http://{next-server}/', node: 'h1' });
    assert.equal(await flowHttpServer(RED, 's2'), null, 'another store');
    assert.equal(await flowHttpServer(RED, undefined), null);

    set([{ id: 'h1', type: 'pxe-http', name: 'HTTP', store: 's1', address: '0.0.0.0', port: 0 }], [['h1', { ready: ok, boundPort: 41234 }]]);
    assert.deepEqual(await flowHttpServer(RED, 's1'), { url: 'http://{next-server}:41234/', node: 'HTTP' }, 'the port it bound');
    set([{ id: 'h1', type: 'pxe-http', store: 's1', address: '10.0.0.5', port: 8080 }], [['h1', { ready: ok, boundPort: 8080 }]]);
    assert.equal((await flowHttpServer(RED, 's1'))?.url, 'http://10.0.0.5:8080/');
    set([{ id: 'h1', type: 'pxe-http', store: 's1', address: '127.0.0.1', port: 80 }], [['h1', { ready: ok, boundPort: 80 }]]);
    assert.equal(await flowHttpServer(RED, 's1'), null, 'loopback: no client reaches it');
    set([{ id: 'h1', type: 'pxe-http', store: 's1', port: 80 }], [['h1', { ready: ok }]]);
    assert.equal(await flowHttpServer(RED, 's1'), null, 'its listener failed (port taken)');
    set([{ id: 'h1', type: 'pxe-http', store: 's1', port: 80 }], []);
    assert.equal(await flowHttpServer(RED, 's1'), null, 'disabled, not running');
    set([{ id: 'h1', type: 'pxe-http', store: 's1', port: 80 }], [['h1', { ready: new Promise(() => undefined), boundPort: 80 }]]);
    assert.equal(await flowHttpServer(RED, 's1', 50), null, 'still not serving after the wait');

    // On Node-RED's own web server: its port and httpNodeRoot, the node's path.
    Object.assign(settings, { uiPort: 1880, httpNodeRoot: '/api/' });
    set(
      [
        { id: 'h2', type: 'pxe-http', store: 's1', mode: 'httpNode', path: 'pxe' },
        { id: 'h1', type: 'pxe-http', store: 's1', port: 80 },
      ],
      [
        ['h1', { ready: ok, boundPort: 80 }],
        ['h2', { ready: ok }],
      ],
    );
    assert.equal((await flowHttpServer(RED, 's1'))?.url, 'http://{next-server}/', 'an own listener first');
    set([{ id: 'h2', type: 'pxe-http', store: 's1', mode: 'httpNode', path: '/pxe/' }], [['h2', { ready: ok }]]);
    assert.equal((await flowHttpServer(RED, 's1'))?.url, 'http://{next-server}:1880/api/pxe/');
    settings.uiHost = '127.0.0.1';
    assert.equal(await flowHttpServer(RED, 's1'), null, 'the editor bound to loopback');
    settings.uiHost = '0.0.0.0';
    settings.https = { key: 'k' };
    assert.equal(await flowHttpServer(RED, 's1'), null, 'https: lpxelinux cannot fetch it');
  });
});
