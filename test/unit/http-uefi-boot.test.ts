/**
 * What edk2's HttpBootDxe (edk2-stable202211, Debian's ovmf) asks of the HTTP server, sent as it
 * sends it on one connection: first `HEAD <path>` to learn the size (HttpBootLoadFile; with no
 * usable answer it falls back to a GET), then `GET <path>`, origin-form, with
 * `User-Agent: UefiHttpBoot/1.0` and `Accept: *\/*`. It downloads into a buffer of the size the HEAD
 * gave, so Content-Length must be there and match; it does not follow redirects (a 3xx is printed
 * as an error and the boot fails); it takes the image type from Content-Type `application/efi`,
 * else from the `.efi` extension.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HttpFileService } from '../../nodes/lib/http/serve-file';
import { HttpListener } from '../../nodes/lib/http/server';
import { FolderStore } from '../../nodes/lib/store/folder-store';

interface RawReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Sends `requests` on one TCP connection and splits the answers by Content-Length (HEAD: no body). */
function exchange(port: number, requests: { method: string; path: string }[]): Promise<RawReply[]> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const out: RawReply[] = [];
    let i = 0;
    const send = (): void => {
      const r = requests[i]!;
      sock.write(`${r.method} ${r.path} HTTP/1.1\r\nHost: 10.0.0.1\r\nAccept: */*\r\nUser-Agent: UefiHttpBoot/1.0\r\n\r\n`);
    };
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no complete answer within 5 s (got ${out.length})`));
    }, 5000);
    sock.on('connect', send);
    sock.on('error', reject);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
        const status = Number(lines[0]!.split(' ')[1]);
        const headers: Record<string, string> = {};
        for (const l of lines.slice(1)) {
          const c = l.indexOf(':');
          headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
        }
        const len = requests[i]!.method === 'HEAD' ? 0 : Number(headers['content-length'] ?? NaN);
        if (Number.isNaN(len)) {
          clearTimeout(timer);
          sock.destroy();
          return reject(new Error(`answer without Content-Length: ${lines.join(' | ')}`));
        }
        if (buf.length < end + 4 + len) return;
        out.push({ status, headers, body: buf.subarray(end + 4, end + 4 + len) });
        buf = buf.subarray(end + 4 + len);
        if (++i === requests.length) {
          clearTimeout(timer);
          sock.end();
          return resolve(out);
        }
        send();
      }
    });
  });
}

describe('HTTP node: what UEFI HTTP Boot firmware needs of the loader download', () => {
  let tmp: string;
  let loader: Buffer;
  let service: HttpFileService;
  let listener: HttpListener;
  let port: number;
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-uefi-http-'));
    // The size of Debian's snponly.efi, give or take: more than one read chunk of a slow client.
    loader = randomBytes(173_792);
    fs.writeFileSync(path.join(tmp, 'snponly.efi'), loader);
    service = new HttpFileService({ store: await new FolderStore(tmp).init() });
    listener = new HttpListener(service.handle);
    port = (await listener.listen({ address: '127.0.0.1', port: 0 })).port;
  });
  after(async () => {
    await service.close();
    await listener.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('HEAD then GET on one connection: 200, the exact Content-Length, application/efi, no chunked encoding, the whole file', async () => {
    const [head, get] = await exchange(port, [
      { method: 'HEAD', path: '/snponly.efi' },
      { method: 'GET', path: '/snponly.efi' },
    ]);
    for (const r of [head!, get!]) {
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], String(loader.length));
      assert.equal(r.headers['transfer-encoding'], undefined);
      assert.equal(r.headers['content-type'], 'application/efi');
      assert.equal(r.headers.location, undefined);
    }
    assert.deepEqual(get!.body, loader);
  });

  it('a missing loader is a plain 404 with a length, not a redirect', async () => {
    const [r] = await exchange(port, [{ method: 'HEAD', path: '/ipxe.efi' }]);
    assert.equal(r!.status, 404);
    assert.ok(r!.headers['content-length'] !== undefined);
  });
});
