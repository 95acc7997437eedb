/**
 * Our TFTP server in a lab namespace, downloaded from by the real clients people use (tftp-hpa,
 * atftp, curl) over a veth with MTU 1500: edge sizes, rollover, netascii, loss and reordering,
 * 50 concurrent clients, refusals, and redeploys. Every download is checked byte for byte.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable, type Netns, type RunResult } from '../lab/netns';
import { waitForLine } from '../lab/process';
import { netasciiEncode } from '../../nodes/lib/tftp/netascii';
import type { TftpEvent } from '../../nodes/lib/tftp/server';

const skip = labAvailable();
const SRV = '10.61.0.1';
const CLI = '10.61.0.2';
const MiB = 1024 * 1024;
const root = path.join(__dirname, '..', '..');

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('tftp server in the lab, with tftp-hpa, atftp and curl', { skip: skip ?? false }, () => {
  let lab: Lab;
  let srv: Netns;
  let cli: Netns;
  let tmp: string;
  let store: string;
  let out: string;
  let child: ChildProcess;
  const events: TftpEvent[] = [];
  const lines: Record<string, unknown>[] = [];
  const files: Record<string, { size: number; sha: string }> = {};
  let outN = 0;

  const put = (name: string, data: Buffer): void => {
    fs.writeFileSync(path.join(store, name), data);
    files[name] = { size: data.length, sha: sha(data) };
  };
  const outFile = (): string => path.join(out, `o${outN++}`);
  const check = (file: string, name: string, what: string, r: RunResult): void => {
    assert.ok(fs.existsSync(file), `${what}: no output file (${r.code}) ${r.stdout} ${r.stderr}`);
    const got = fs.readFileSync(file);
    assert.equal(got.length, files[name]!.size, `${what}: size`);
    assert.equal(sha(got), files[name]!.sha, `${what}: checksum`);
    fs.rmSync(file);
  };
  const hpa = (file: string, to: string, mode = 'binary', host = SRV, port = '69'): Promise<RunResult> =>
    cli.run('/usr/bin/tftp', ['-m', mode, host, port, '-c', 'get', file, to], { timeoutMs: 120_000 });
  const curl = (file: string, to: string, blksize: number, host = SRV, port = 69, extra: string[] = []): Promise<RunResult> =>
    cli.run('/usr/bin/curl', ['-sS', '--path-as-is', '--tftp-blksize', String(blksize), '-o', to, ...extra, `tftp://${host}:${port}/${file}`], { timeoutMs: 180_000 });
  const atftp = (file: string, to: string, blksize: number, windowsize: number, host = SRV, port = '69'): Promise<RunResult> =>
    cli.run('/usr/bin/atftp', ['--option', `blksize ${blksize}`, '--option', `windowsize ${windowsize}`, '-g', '-r', file, '-l', to, host, port], { timeoutMs: 180_000 });
  const ask = async (cmd: string, re: RegExp): Promise<Record<string, unknown>> => {
    const wait = waitForLine(child, re, 60_000);
    child.stdin!.write(cmd + '\n');
    return JSON.parse((await wait).input!) as Record<string, unknown>;
  };
  const doneFor = (file: string): TftpEvent[] => events.filter((e) => e.type === 'done' && e.file === file);
  /** Events travel through the child's stdout: a client may exit before its event is read. */
  const eventually = async (cond: () => boolean, what: string): Promise<void> => {
    const end = Date.now() + 5000;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`no event: ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  before(async () => {
    lab = Lab.create();
    srv = lab.netns('srv');
    cli = lab.netns('cli');
    lab.veth(srv, `${SRV}/24`, cli, `${CLI}/24`, { mtu: 1500 });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-tftp-lab-'));
    store = path.join(tmp, 'store');
    out = path.join(tmp, 'out');
    fs.mkdirSync(store);
    fs.mkdirSync(out);
    put('empty', Buffer.alloc(0));
    put('one', Buffer.from('1'));
    put('b512', randomBytes(512));
    put('b1468', randomBytes(1468));
    put('k256', randomBytes(256 * 1024));
    put('m1', randomBytes(MiB));
    put('m100', randomBytes(100 * MiB));
    put('text.cfg', Buffer.from('DEFAULT arch\nLABEL arch\n  KERNEL /arch/boot/x86_64/vmlinuz-linux\n  APPEND archisobasedir=arch\n'.repeat(40)));
    child = srv.spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test', 'net', 'tftp-child.ts'), '--root', store, '--address', SRV, '--port', '69', '--max-per-client', '64'], { cwd: root });
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      for (const l of parts) {
        const o = JSON.parse(l) as Record<string, unknown>;
        lines.push(o);
        if (o.event) events.push(o.event as TftpEvent);
      }
    });
    await waitForLine(child, /"listening"/, 30_000);
  });
  after(async () => {
    try {
      if (child.exitCode === null) await ask('quit', /"closed"/).catch(() => undefined);
    } finally {
      await lab.destroy();
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('tftp-hpa (512-byte blocks, no options) gets 0 B, 1 B, one block and 1 MiB intact', async () => {
    for (const name of ['empty', 'one', 'b512', 'm1']) {
      const to = outFile();
      check(to, name, `tftp-hpa ${name}`, await hpa(name, to));
    }
  });

  it('curl gets 0 B, 1 B, one block and 1 MiB intact at blksize 512 and 1468', async () => {
    for (const blksize of [512, 1468]) {
      for (const name of ['empty', 'one', blksize === 512 ? 'b512' : 'b1468', 'm1']) {
        const to = outFile();
        const r = await curl(name, to, blksize);
        if (name === 'empty' && r.code !== 0) {
          // curl 7.88 cannot download an empty file over TFTP from any server: it stops with
          // "getpeername() failed" (exit 71) before acknowledging; dnsmasq gets the same.
          assert.match(r.stderr, /getpeername/);
          fs.rmSync(to, { force: true });
          continue;
        }
        assert.equal(r.code, 0, `curl ${name}: ${r.stderr}`);
        check(to, name, `curl ${blksize} ${name}`, r);
      }
    }
    await eventually(() => doneFor('m1').length >= 3, 'm1 done');
    const d = doneFor('m1').at(-1);
    assert.ok(d?.type === 'done');
    assert.equal(d.options.blksize, 1468);
  });

  it('atftp gets 0 B, 1 B, one block and 1 MiB intact at blksize 1468, windowsize 1 and 16', async () => {
    for (const windowsize of [1, 16]) {
      for (const name of ['empty', 'one', 'b1468', 'm1']) {
        const to = outFile();
        const r = await atftp(name, to, 1468, windowsize);
        check(to, name, `atftp ws${windowsize} ${name}`, r);
      }
    }
    await eventually(() => doneFor('m1').length >= 5, 'm1 done');
    const d = doneFor('m1').at(-1);
    assert.ok(d?.type === 'done');
    assert.deepEqual([d.options.blksize, d.options.windowsize], [1468, 16]);
  });

  it('100 MiB past block 65535: curl at blksize 512 (204800 blocks), atftp at 1468 windowsize 16 (71429 blocks)', async () => {
    let to = outFile();
    check(to, 'm100', 'curl 512 100 MiB', await curl('m100', to, 512));
    to = outFile();
    check(to, 'm100', 'atftp 1468/16 100 MiB', await atftp('m100', to, 1468, 16));
    await eventually(() => doneFor('m100').length === 2, 'm100 done twice');
    const done = doneFor('m100');
    for (const d of done) assert.ok(d.type === 'done' && d.bytesSent === 100 * MiB);
  });

  it('netascii: tftp-hpa ascii mode gets the text back, curl sees CR LF on the wire', async () => {
    const to = outFile();
    check(to, 'text.cfg', 'tftp-hpa ascii', await hpa('text.cfg', to, 'ascii'));
    const raw = outFile();
    const r = await curl('text.cfg;mode=netascii', raw, 512);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(fs.readFileSync(raw), netasciiEncode(fs.readFileSync(path.join(store, 'text.cfg'))));
    await eventually(() => events.some((e) => e.type === 'done' && e.file === 'text.cfg' && e.mode === 'netascii'), 'netascii done');
  });

  it('serves 50 concurrent curl clients, all intact', async () => {
    const n = 50;
    const targets = Array.from({ length: n }, () => outFile());
    const script = ['pids=""', ...targets.map((t) => `/usr/bin/curl -sS --tftp-blksize 1468 -o ${t} tftp://${SRV}/m1 & pids="$pids $!"`), 'fail=0; for p in $pids; do wait $p || fail=1; done', 'echo "FAIL $fail"'].join('\n');
    const before = doneFor('m1').length;
    const r = await cli.run('/bin/sh', ['-c', script], { timeoutMs: 180_000 });
    assert.match(r.stdout, /FAIL 0/, r.stderr);
    for (const t of targets) check(t, 'm1', 'concurrent curl', r);
    await eventually(() => doneFor('m1').length - before === n, `${n} done`);
  });

  it('refuses traversal with every client, and a write', async () => {
    const secretDir = path.join(tmp, 'secret');
    fs.mkdirSync(secretDir);
    fs.writeFileSync(path.join(secretDir, 'key'), 'do not serve');
    const attempts = ['../secret/key', '../../../../etc/passwd', 'a/../../secret/key', `${tmp}/secret/key`, '/etc/passwd'];
    const before = events.length;
    for (const bad of attempts) {
      for (const run of [(to: string) => hpa(bad, to), (to: string) => curl(bad, to, 512), (to: string) => atftp(bad, to, 1468, 1)]) {
        const to = outFile();
        await run(to);
        const got = fs.existsSync(to) ? fs.readFileSync(to, 'utf8') : '';
        assert.ok(!got.includes('do not serve') && !got.includes('root:'), `${bad} leaked`);
        fs.rmSync(to, { force: true });
      }
    }
    await eventually(() => events.slice(before).filter((e) => e.type === 'error').length === attempts.length * 3, 'one refusal per attempt');
    const refusals = events.slice(before).filter((e) => e.type === 'error');
    // '..' leaving the store is refused (2); absolute paths are looked up inside the store (1).
    assert.ok(refusals.every((e) => e.type === 'error' && (e.code === 2 || (e.code === 1 && e.file.startsWith('/')))), JSON.stringify(refusals.map((e) => e.type === 'error' && [e.file, e.code])));
    assert.equal(events.slice(before).filter((e) => e.type === 'done').length, 0);

    const local = path.join(tmp, 'upload.bin');
    fs.writeFileSync(local, 'upload');
    const w = await cli.run('/usr/bin/tftp', ['-m', 'binary', SRV, '69', '-c', 'put', local, 'uploaded.bin'], { timeoutMs: 20_000 });
    assert.match(w.stdout + w.stderr, /Error code 2/);
    assert.equal(fs.existsSync(path.join(store, 'uploaded.bin')), false);
    await eventually(() => events.some((e) => e.type === 'error' && e.code === 2 && e.file === 'uploaded.bin'), 'write refused');
  });

  it('completes downloads intact through 2% loss and 25% reordering in both directions', async () => {
    const relay = cli.spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test', 'net', 'tftp-relay.ts'), '--listen', `${CLI}:6969`, '--server', `${SRV}:69`, '--loss', '0.02', '--reorder', '0.25', '--delay-ms', '1'], { cwd: root });
    await waitForLine(relay, /"relaying"/, 30_000);
    try {
      let to = outFile();
      check(to, 'm1', 'curl 1468 through loss', await curl('m1', to, 1468, CLI, 6969));
      to = outFile();
      check(to, 'm1', 'atftp 1468/16 through loss', await atftp('m1', to, 1468, 16, CLI, '6969'));
      // tftp-hpa has 512-byte blocks and no window: each loss costs a timeout, so a smaller file.
      to = outFile();
      check(to, 'k256', 'tftp-hpa 256 KiB through loss', await hpa('k256', to, 'binary', CLI, '6969'));
      await eventually(() => events.some((e) => e.type === 'done' && e.client.address === CLI && e.retransmits > 0), 'losses were retransmitted');
    } finally {
      const stats = waitForLine(relay, /"stats"/, 5000).catch(() => null);
      relay.kill('SIGTERM');
      const s = await stats;
      if (s) assert.match(s.input!, /"dropped":[1-9]/);
      // A dropped final ACK leaves the server retransmitting the last block until its retries
      // run out: the next test counts descriptors, so wait for those transfers to end.
      const end = Date.now() + 60_000;
      while (((await ask('stats', /"stats"/)).stats as { active: number }).active > 0) {
        assert.ok(Date.now() < end, 'transfers through the relay never ended');
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  });

  it('with one transfer slot, 8 tftp-hpa clients at once all wait their turn and complete intact, none lost', async () => {
    // tftp-hpa resends its request every 5 s and gives up after 25 s: when a dropped request was
    // the only way to wait, a slot stayed idle until the next resend and the last clients ran out.
    // Room for all 8 to wait (the default, 4 per slot, would refuse 3 of them with an ERROR).
    const second = srv.spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test', 'net', 'tftp-child.ts'), '--root', store, '--address', SRV, '--port', '6969', '--max-transfers', '1', '--max-waiting', '8', '--max-per-client', '64'], { cwd: root });
    const got: TftpEvent[] = [];
    let buf = '';
    second.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      for (const l of parts) {
        const o = JSON.parse(l) as { event?: TftpEvent };
        if (o.event) got.push(o.event);
      }
    });
    try {
      await waitForLine(second, /"listening"/, 30_000);
      const n = 8;
      const targets = Array.from({ length: n }, () => outFile());
      const t0 = Date.now();
      const script = ['pids=""', ...targets.map((t) => `/usr/bin/tftp -m binary ${SRV} 6969 -c get m1 ${t} & pids="$pids $!"`), 'fail=0; for p in $pids; do wait $p || fail=1; done', 'echo "FAIL $fail"'].join('\n');
      const r = await cli.run('/bin/sh', ['-c', script], { timeoutMs: 120_000 });
      const secs = (Date.now() - t0) / 1000;
      assert.match(r.stdout, /FAIL 0/, r.stderr);
      for (const t of targets) check(t, 'm1', 'tftp-hpa behind one slot', r);
      const end = Date.now() + 5000;
      while (got.filter((e) => e.type === 'done').length < n && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
      assert.equal(got.filter((e) => e.type === 'done').length, n, 'every client served');
      assert.deepEqual(got.filter((e) => e.type === 'error'), [], 'none dropped or refused');
      // One after another with no idle slot between them: far from the 25 s a client waits.
      assert.ok(secs < 25, `all done in ${secs.toFixed(1)} s`);
    } finally {
      const closed = waitForLine(second, /"closed"/, 30_000).catch(() => undefined);
      second.stdin!.write('quit\n');
      await closed;
      if (second.exitCode === null) second.kill('SIGKILL');
    }
  });

  it('redeploys 20 times: no EADDRINUSE, no leaked descriptors, still serving', async () => {
    const first = (await ask('stats', /"stats"/)).stats as { fds: number; active: number };
    assert.equal(first.active, 0);
    const r = (await ask('redeploy 20', /"redeployed"|"fatal"/)) as { redeployed?: number; fds?: number[] };
    assert.equal(r.redeployed, 20, JSON.stringify(r));
    // A leak grows with every redeploy. The first count may be higher than the rest: sockets of
    // the transfers before it (closed by worker threads a moment after they end) can still be open.
    const fds = r.fds!;
    assert.ok(fds.every((n, i) => n <= first.fds && (i === 0 || n <= fds[i - 1]!)), `fds ${first.fds} then ${fds.join(' ')}`);
    const to = outFile();
    check(to, 'm1', 'after redeploys', await curl('m1', to, 1468));
  });
});
