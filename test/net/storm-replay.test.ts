/**
 * The boot-storm simulator (bench/storm/client.ts) replays the recorded boot faithfully: against
 * the seed's stack (dnsmasq DHCP + TFTP with the wiki's configuration, nginx), two simulated
 * clients complete with every file intact, and what the servers logged for each client — TFTP
 * files sent, not found and aborted (dnsmasq's log), HTTP requests with their Range and status
 * (nginx's access log) — is the recorded sequence, in the recorded order.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lab, labAvailable } from '../lab/netns';
import { prepareFiles } from '../../bench/storm/files';
import { startStack, type Running } from '../../bench/storm/servers';
import { normalisePath, type Recording } from '../../bench/storm/script';
import type { ClientConfig, ClientResult } from '../../bench/storm/client';

const root = path.resolve(__dirname, '..', '..');
const skip = labAvailable() ?? (['/usr/sbin/dnsmasq', '/usr/sbin/nginx', '/usr/bin/xorriso'].find((b) => !fs.existsSync(b)) ?? null);
const recording = JSON.parse(fs.readFileSync(path.join(root, 'bench', 'storm', 'recorded-boot.json'), 'utf8')) as Recording;
const SERVER = '10.93.0.1';

describe('boot-storm replay against dnsmasq + nginx', { skip: skip ?? false }, () => {
  let work: string;
  let lab: Lab;
  let stack: Running | undefined;
  let results: ClientResult[] = [];
  let tree = '';

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-storm-test-'));
    fs.chmodSync(work, 0o755);
    const files = prepareFiles(work, recording.iso, 1 / 256);
    tree = files.tree;
    lab = Lab.create();
    const srv = lab.netns('srv');
    const cli = lab.netns('cli');
    const { a, b } = lab.veth(srv, `${SERVER}/16`, cli, '10.93.255.254/16', { mtu: 1500 });
    cli.ip('route', 'add', 'default', 'dev', b);
    const l = files.layout;
    stack = await startStack(srv, { tree, work, iface: a, address: SERVER, pool: { start: '10.93.1.1', end: '10.93.1.254', mask: '255.255.0.0' }, bootFile: l.dhcp.bootFile, option209: l.dhcp.option209, option210: l.dhcp.option210, cpu: 0 });
    const firstTftp = recording.steps.find((s) => s.proto === 'tftp')!;
    const cfg: ClientConfig = { iface: b, server: SERVER, clients: 2, round: 1, spreadMs: 200, steps: recording.steps, expect: files.expect, bootFile: firstTftp.proto === 'tftp' ? firstTftp.file : '', clientTimeoutMs: 60_000 };
    const cfgFile = path.join(work, 'client.json');
    fs.writeFileSync(cfgFile, JSON.stringify(cfg));
    const r = await cli.run(process.execPath, ['--import', 'tsx', path.join(root, 'bench', 'storm', 'client.ts'), cfgFile], { cwd: root, timeoutMs: 120_000 });
    results = (JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { results?: ClientResult[] }).results ?? [];
    assert.ok(results.length, `simulator output: ${r.stdout} ${r.stderr}`);
    await stack.stop();
    stack = undefined;
  });
  after(async () => {
    await stack?.stop();
    await lab?.destroy();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('every client completes with every file intact', (t) => {
    t.diagnostic(`per-client boot ${results.map((c) => `${(c.ms / 1000).toFixed(2)} s (DHCP ${(c.phases.dhcp / 1000).toFixed(2)}, TFTP ${(c.phases.tftp / 1000).toFixed(2)}, HTTP ${(c.phases.http / 1000).toFixed(2)})`).join(', ')}`);
    for (const c of results) assert.deepEqual(c.errors, [], `client ${c.i}`);
    assert.equal(results.filter((c) => c.ok && c.corrupt === 0).length, 2);
  });

  it("dnsmasq's TFTP log shows each client's recorded files and outcomes, in order (per outcome)", () => {
    const log = fs.readFileSync(path.join(work, 'dnsmasq.log'), 'utf8');
    // dnsmasq names the file of a transfer the client ended (tsize query, aborted ldlinux.c32) only
    // in "failed sending"; "error 0 … received from" carries no file name and is not compared.
    const want = recording.steps.flatMap((s) => (s.proto !== 'tftp' ? [] : [`${s.outcome === 'done' ? 'sent' : s.outcome === 'not-found' ? 'missing' : 'ended'} ${normalisePath(s.file)}`]));
    const rel = (f: string): string => normalisePath(path.relative(tree, f));
    for (const c of results) {
      const got: string[] = [];
      for (const line of log.split('\n')) {
        let m = /dnsmasq-tftp\[\d+\]: sent (\S+) to (\S+)$/.exec(line);
        if (m && m[2] === c.ip) got.push(`sent ${rel(m[1]!)}`);
        m = /dnsmasq-tftp\[\d+\]: file (\S+) not found for (\S+)$/.exec(line);
        if (m && m[2] === c.ip) got.push(`missing ${rel(m[1]!)}`);
        m = /dnsmasq-tftp\[\d+\]: failed sending (\S+) to (\S+)$/.exec(line);
        if (m && m[2] === c.ip) got.push(`ended ${rel(m[1]!)}`);
      }
      // dnsmasq logs "sent" when the last ACK arrives and "not found" when the request does, so a
      // client's next request can be logged before the end of the transfer it has just finished:
      // each kind is compared in order on its own.
      for (const kind of ['sent', 'missing', 'ended']) {
        const only = (l: string[]): string[] => l.filter((x) => x.startsWith(`${kind} `));
        assert.deepEqual(only(got), only(want), `client ${c.ip}: ${kind}`);
      }
    }
  });

  it("nginx's access log shows each client's recorded HTTP requests (path, Range, status), in order", () => {
    const log = fs.readFileSync(path.join(work, 'nginx-access.log'), 'utf8');
    const want = recording.steps.flatMap((s) => (s.proto === 'http' ? [`GET ${s.path} ${s.status} "${s.range ?? '-'}"`] : []));
    for (const c of results) {
      const got = log
        .split('\n')
        .filter((l) => l.startsWith(`${c.ip} `))
        .map((l) => l.slice(c.ip!.length + 1));
      assert.deepEqual(got, want, `client ${c.ip}`);
    }
  });
});
