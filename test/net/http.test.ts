/**
 * Our HTTP file server in one lab namespace, curl and busybox wget in another: downloads with
 * checksums, ranges, HEAD, conditional requests, traversal, a client that stops reading, 50
 * parallel downloads, progress events, the iPXE script, and port 80 without privilege.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bindErrorKind } from '../../nodes/lib/bind-error';
import { Lab, labAvailable, type Netns } from '../lab/netns';
import { waitForLine } from '../lab/process';

const skip = labAvailable();
const CURL = '/usr/bin/curl';
const BUSYBOX = '/bin/busybox';
const SRV = '10.86.0.1';
const CLI = '10.86.0.2';
const BASE = `http://${SRV}`;
const MiB = 1 << 20;

type Event = Record<string, unknown>;

/** Collects the child's JSON lines. */
function collect(child: ChildProcess): Event[] {
  const lines: Event[] = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    for (const p of parts) {
      try {
        lines.push(JSON.parse(p) as Event);
      } catch {
        // not ours
      }
    }
  });
  return lines;
}

async function until<T>(fn: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

describe('pxe-http in the lab', { skip: skip ?? false }, () => {
  let lab: Lab;
  let srv: Netns;
  let cli: Netns;
  let tmp: string;
  let root: string;
  let child: ChildProcess;
  let events: Event[];
  const files: Record<string, Buffer> = {};

  const curl = (args: string[], timeoutMs = 60_000) => cli.run(CURL, ['-s', '--connect-timeout', '5', ...args], { timeoutMs });
  const of = (kind: string, p: string): Event[] => events.filter((e) => kind in e && (e[kind] as Event).path === p).map((e) => e[kind] as Event);

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-net-http-'));
    fs.chmodSync(tmp, 0o755);
    root = path.join(tmp, 'root');
    const put = (rel: string, data: Buffer): void => {
      fs.mkdirSync(path.join(root, path.dirname(rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), data);
      files[rel] = data;
    };
    put('arch/x86_64/airootfs.sfs', randomFillSync(Buffer.alloc(64 * MiB)));
    put('arch/boot/x86_64/vmlinuz-linux', randomFillSync(Buffer.alloc(3 * MiB + 17)));
    put('arch/boot/x86_64/initramfs-linux.img', randomFillSync(Buffer.alloc(5 * MiB + 5)));
    put('arch/boot/amd-ucode.img', randomFillSync(Buffer.alloc(40_000)));
    put('small.txt', Buffer.from('0123456789abcdef'));
    put('mid.bin', randomFillSync(Buffer.alloc(8 * MiB)));
    fs.writeFileSync(path.join(tmp, 'secret'), 'TOP-SECRET');

    lab = Lab.create();
    srv = lab.netns('srv');
    cli = lab.netns('cli');
    lab.veth(srv, `${SRV}/24`, cli, `${CLI}/24`);
    child = srv.spawn(process.execPath, ['--import', 'tsx', 'test/net/http-child.ts', root, SRV, '80', '--step', '10', '--interval', '0'], {
      cwd: path.resolve(__dirname, '../..'),
    });
    events = collect(child);
    await waitForLine(child, /"listening"/, 30_000);
  });

  after(async () => {
    await lab?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('curl and busybox wget download whole files with matching checksums', async () => {
    for (const rel of ['arch/x86_64/airootfs.sfs', 'arch/boot/x86_64/vmlinuz-linux', 'small.txt']) {
      const out = path.join(tmp, `curl-${path.basename(rel)}`);
      const r = await curl(['-o', out, '-w', '%{http_code}', `${BASE}/${rel}`]);
      assert.equal(r.stdout, '200', rel);
      assert.equal(sha(fs.readFileSync(out)), sha(files[rel]!), rel);
      const wout = path.join(tmp, `wget-${path.basename(rel)}`);
      const w = await cli.run(BUSYBOX, ['wget', '-q', '-O', wout, `${BASE}/${rel}`], { timeoutMs: 60_000 });
      assert.equal(w.code, 0, w.stderr);
      assert.equal(sha(fs.readFileSync(wout)), sha(files[rel]!), rel);
    }
  });

  it('reports progress per transfer in order, in 10% steps, ending at 100, then done', async () => {
    const rel = '/arch/x86_64/airootfs.sfs';
    const before = of('done', rel).length;
    assert.equal((await curl(['-o', '/dev/null', '-w', '%{http_code}', `${BASE}${rel}`])).stdout, '200');
    const done = await until(() => of('done', rel)[before], 5000, 'done');
    const id = done.id;
    const progress = of('progress', rel).filter((e) => e.id === id);
    assert.deepEqual(progress.map((e) => e.percent), [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    assert.equal(progress.at(-1)!.bytes, 64 * MiB);
    assert.equal(done.bytes, 64 * MiB);
    assert.ok((done.throughput as number) > 0);
    const req = of('request', rel).find((e) => e.id === id)!;
    assert.equal(req.client, CLI);
    assert.equal(req.status, 200);
  });

  it('serves ranges: start, middle, suffix, past the end (416), and busybox wget -c resumes', async () => {
    const data = files['mid.bin']!;
    const cases: Array<[string, Buffer]> = [
      ['0-99', data.subarray(0, 100)],
      ['1048000-3000000', data.subarray(1048000, 3000001)],
      ['-1000', data.subarray(data.length - 1000)],
      ['8000000-', data.subarray(8000000)],
    ];
    for (const [range, expect] of cases) {
      const out = path.join(tmp, 'range.bin');
      const r = await curl(['-r', range, '-o', out, '-w', '%{http_code}', `${BASE}/mid.bin`]);
      assert.equal(r.stdout, '206', range);
      assert.equal(sha(fs.readFileSync(out)), sha(expect), range);
    }
    const past = await curl(['-r', `${data.length}-`, '-D', '-', '-o', '/dev/null', `${BASE}/mid.bin`]);
    assert.match(past.stdout, /^HTTP\/1\.1 416/);
    assert.match(past.stdout, new RegExp(`Content-Range: bytes \\*/${data.length}`, 'i'));
    const partial = path.join(tmp, 'resume.bin');
    fs.writeFileSync(partial, data.subarray(0, 3 * MiB + 5));
    const w = await cli.run(BUSYBOX, ['wget', '-q', '-c', '-O', partial, `${BASE}/mid.bin`], { timeoutMs: 60_000 });
    assert.equal(w.code, 0, w.stderr);
    assert.equal(sha(fs.readFileSync(partial)), sha(data));
    const ranged = of('request', '/mid.bin').find((e) => (e.range as Event | null)?.start === 3 * MiB + 5);
    assert.ok(ranged, 'wget -c asked for the rest with a Range');
  });

  it('answers HEAD and conditional requests', async () => {
    const head = await curl(['-I', `${BASE}/small.txt`]);
    assert.match(head.stdout, /^HTTP\/1\.1 200/);
    assert.match(head.stdout, /Content-Length: 16\r\n/i);
    assert.match(head.stdout, /Content-Type: text\/plain; charset=utf-8/i);
    const etag = /ETag: (\S+)/i.exec(head.stdout)![1]!;
    const lm = /Last-Modified: ([^\r\n]+)/i.exec(head.stdout)![1]!;
    assert.equal((await curl(['-o', '/dev/null', '-w', '%{http_code}', '-H', `If-None-Match: ${etag}`, `${BASE}/small.txt`])).stdout, '304');
    assert.equal((await curl(['-o', '/dev/null', '-w', '%{http_code}', '-H', `If-Modified-Since: ${lm}`, `${BASE}/small.txt`])).stdout, '304');
    const ifRange = await curl(['-r', '0-3', '-H', `If-Range: ${etag}`, '-w', ' %{http_code}', `${BASE}/small.txt`]);
    assert.equal(ifRange.stdout, '0123 206');
    const mismatch = await curl(['-r', '0-3', '-H', 'If-Range: "stale"', '-w', ' %{http_code}', `${BASE}/small.txt`]);
    assert.equal(mismatch.stdout, '0123456789abcdef 200');
  });

  it('refuses traversal attempts through the store rules', async () => {
    for (const [p, status] of [
      ['/../secret', '400'],
      ['/arch/../../secret', '400'],
      ['/%2e%2e/secret', '400'],
      ['/%2e%2e%2fsecret', '400'],
      ['/small.txt%00', '400'],
      ['/%00', '400'],
      ['/arch/', '403'],
    ] as const) {
      const r = await curl(['--path-as-is', '-w', ' %{http_code}', `${BASE}${p}`]);
      assert.ok(r.stdout.endsWith(` ${status}`), `${p}: ${r.stdout}`);
      assert.doesNotMatch(r.stdout, /TOP-SECRET/);
    }
  });

  it('a client that stops reading holds little: reads stop at backpressure, and leaving closes the file', async () => {
    const rel = '/arch/x86_64/airootfs.sfs';
    const before = of('fail', rel).length;
    // The client's receive buffer is capped (its own namespace's sysctl) so that kernel buffers
    // cannot hide what the server reads ahead. curl reads at 256 KB/s for 3 s, then gives up.
    const saved = (await cli.run('/usr/sbin/sysctl', ['-n', 'net.ipv4.tcp_rmem'])).stdout.trim().replace(/\s+/g, ' ');
    const sysctl = await cli.run('/usr/sbin/sysctl', ['-w', 'net.ipv4.tcp_rmem=4096 131072 1048576']);
    assert.equal(sysctl.code, 0, sysctl.stderr);
    try {
      const slow = curl(['--limit-rate', '256k', '--max-time', '3', '-o', '/dev/null', `${BASE}${rel}`], 20_000);
      await new Promise((r) => setTimeout(r, 2000));
      child.stdin!.write('stats\n');
      const stats = (await until(() => events.find((e) => 'stats' in e), 3000, 'stats')).stats as Event;
      events.splice(events.findIndex((e) => 'stats' in e), 1);
      assert.equal(stats.active, 1);
      // Pool buffers are the only large allocations; they stay within two per transfer.
      assert.ok((stats.arrayBuffers as number) < 8 * MiB, `arrayBuffers ${stats.arrayBuffers}`);
      const r = await slow;
      assert.equal(r.code, 28, 'curl timed out as planned');
      const fail = await until(() => of('fail', rel)[before], 5000, 'the aborted transfer');
      assert.equal(fail.aborted, true);
      assert.match(fail.error as string, /client closed the connection after \d+ of 67108864 bytes/);
      // Socket buffers (4 MiB sending, 1 MiB receiving) and one read ahead, nowhere near the 64 MiB file.
      assert.ok((fail.bytes as number) < 12 * MiB, `read ${fail.bytes} bytes for a client that took ~768 KB`);
      child.stdin!.write('stats\n');
      const after = (await until(() => events.find((e) => 'stats' in e), 3000, 'stats')).stats as Event;
      events.splice(events.findIndex((e) => 'stats' in e), 1);
      assert.equal(after.active, 0);
    } finally {
      await cli.run('/usr/sbin/sysctl', ['-w', `net.ipv4.tcp_rmem=${saved}`]);
    }
  });

  it('50 parallel downloads arrive intact', async () => {
    const expect = sha(files['mid.bin']!);
    const r = await cli.run(
      '/bin/sh',
      ['-c', `for i in $(seq 50); do (${CURL} -s ${BASE}/mid.bin | /usr/bin/sha256sum) & done; wait`],
      { timeoutMs: 120_000 },
    );
    const sums = r.stdout.trim().split('\n').map((l) => l.split(/\s+/)[0]);
    assert.equal(sums.length, 50, r.stderr);
    assert.ok(sums.every((s) => s === expect), `${sums.filter((s) => s !== expect).length} corrupt`);
  });

  it('the iPXE script names files that exist and points archiso back at this server', async () => {
    const r = await curl([`${BASE}/boot.ipxe`]);
    const script = r.stdout;
    assert.match(script, /^#!ipxe\n/);
    assert.match(script, new RegExp(`^kernel ${BASE}/arch/boot/x86_64/vmlinuz-linux archisobasedir=arch archiso_http_srv=${BASE}/ ip=dhcp initrd=amd-ucode.img initrd=initramfs-linux.img$`, 'm'));
    const urls = [...script.matchAll(/^(?:kernel|initrd) (\S+)/gm)].map((m) => m[1]!);
    assert.deepEqual(urls, [`${BASE}/arch/boot/x86_64/vmlinuz-linux`, `${BASE}/arch/boot/amd-ucode.img`, `${BASE}/arch/boot/x86_64/initramfs-linux.img`]);
    // What archiso fetches next: <archiso_http_srv><archisobasedir>/x86_64/airootfs.sfs.
    urls.push(`${BASE}/arch/x86_64/airootfs.sfs`);
    for (const u of urls) {
      const rel = u.slice(BASE.length + 1);
      const h = await curl(['-o', '/dev/null', '-w', '%{http_code} %{size_download}', u]);
      assert.equal(h.stdout, `200 ${files[rel]!.length}`, u);
    }
  });

  it('port 80 without privilege fails as a permission error, which the node words with the fixes', async () => {
    const ns = lab.netns('unpriv');
    const home = path.join(tmp, 'nobody'); // tsx needs a cache folder the unprivileged user can write
    fs.mkdirSync(home, { mode: 0o777 });
    fs.chmodSync(home, 0o777);
    const c = ns.spawn('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all',
      process.execPath, '--import', 'tsx', 'test/net/http-child.ts', root, '127.0.0.1', '80'], {
      cwd: path.resolve(__dirname, '../..'),
      env: { ...process.env, HOME: home, TMPDIR: home },
    });
    const m = await waitForLine(c, /^\{"listenError":(\{.*\})\}$/, 30_000);
    const err = JSON.parse(m[1]!) as { code: string; message: string };
    assert.equal(err.code, 'EACCES');
    // The listener rejects with the system's error; the node (server-node.ts) words it from its locale.
    assert.equal(bindErrorKind(err), 'noPermission');
    const locale = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../nodes/locales/en-US/pxe-http.json'), 'utf8'));
    const text = String(locale['pxe-http'].errors.noPermission);
    assert.match(text, /setcap cap_net_bind_service/);
    assert.match(text, /pxe-nat node's port redirect/);
  });
});
