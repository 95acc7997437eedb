/**
 * Hostile requests against the stores over HTTP (issue 15, items 4, 5 and 7), in the lab: error
 * answers never carry server paths or store messages, special files are refused rather than
 * served empty, and an image with huge directories cannot make the server's memory grow without
 * bound while a normal download goes on.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { labAvailable } from '../lab/netns';
import { craftedName, craftImage, entriesFor } from '../helpers/crafted-iso';
import { rssBytes, rssSampler, withStoreServer } from './hostile-lab';

const skip = labAvailable();
const MiB = 1 << 20;
const CURL = '/usr/bin/curl';

describe('hostile store requests over HTTP', { skip: skip ?? false, timeout: 120_000 }, () => {
  it('answers a symlink loop, an escaping symlink, a FIFO and a device node with generic errors naming no server path', async () => {
    let root = '';
    await withStoreServer(
      '95',
      (tmp) => {
        root = path.join(tmp, 'www');
        fs.mkdirSync(root);
        fs.writeFileSync(path.join(root, 'hello.txt'), 'hello');
        fs.symlinkSync('loop-b', path.join(root, 'loop-a'));
        fs.symlinkSync('loop-a', path.join(root, 'loop-b'));
        fs.symlinkSync('/etc/passwd', path.join(root, 'escape'));
        execFileSync('mkfifo', [path.join(root, 'fifo')]);
        try {
          execFileSync('mknod', [path.join(root, 'null-device'), 'c', '1', '3']);
        } catch {
          // no mknod here: the FIFO stands for special files
        }
        return root;
      },
      async ({ fetch, fails, tmp }) => {
        const cases: Array<[string, number]> = [['/loop-a', 404], ['/loop-b/x', 404], ['/escape', 403], ['/fifo', 403], ['/nope', 404]];
        if (fs.existsSync(path.join(root, 'null-device'))) cases.push(['/null-device', 403]);
        for (const [p, status] of cases) {
          const r = await fetch(p);
          assert.equal(r.status, status, `${p}: ${r.status} ${r.body}`);
          assert.ok(!r.body.includes(tmp) && !r.body.includes('/etc') && !/loop|symlink|regular/.test(r.body), `${p} leaks: ${r.body}`);
        }
        assert.equal((await fetch('/hello.txt')).body, 'hello', 'still serving');
        const listing = (await fetch('/')).body;
        assert.doesNotMatch(listing, /fifo|null-device|loop-a/, 'special files and loops are not listed');
        assert.ok(fails.some((f) => f.path === '/loop-a' && /symlink loop/.test(f.error)), 'the details reach the server side');
      },
    ).finally(() => {
      // On a server that did open it, a reader may be blocked on the FIFO: let it go.
      try {
        fs.closeSync(fs.openSync(path.join(root, 'fifo'), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      } catch {
        // gone with the lab, or nobody blocked
      }
    });
  });

  it('an image of huge directories: every lookup answered, parsed directories kept within their budget (≤ 16 MiB retained), RSS ≤ 96 MiB more, an oversized directory refused, a normal download unharmed', async (t) => {
    const per = entriesFor(0.9 * MiB); // ~24,000 entries: ~2.5 MiB parsed, ~7 MiB before the fix
    const dirs = 24;
    const big = Buffer.alloc(16 * MiB, 0x5a);
    await withStoreServer(
      '96',
      (tmp) => {
        const iso = path.join(tmp, 'crafted.iso');
        fs.writeFileSync(iso, craftImage([...Array.from({ length: dirs }, () => per), entriesFor(3 * MiB)], { BIG: big }));
        return iso;
      },
      async ({ fetch, cli, url, pid, retained }) => {
        // Warm-up (code paths, the read buffers, the page cache) before the baseline.
        assert.equal((await cli.run(CURL, ['-s', '-o', '/dev/null', '-w', '%{http_code}', url('/BIG')], { timeoutMs: 30_000 })).stdout, '200');
        assert.equal((await fetch('/D0/0')).status, 200);
        const base = await retained();
        const before = rssBytes(pid);
        const sampler = rssSampler(pid);
        // Lookups in every directory, 4 at a time, while a normal client downloads.
        const lookups = Array.from({ length: dirs }, (_, i) => url(`/D${i}/${craftedName(per - 1)}`)).join(' ');
        const [walk, download] = await Promise.all([
          cli.run('/bin/sh', ['-c', `printf '%s\\n' ${lookups} | xargs -P 4 -n 1 ${CURL} -s -o /dev/null --max-time 60 -w '%{http_code}\\n'`], { timeoutMs: 90_000 }),
          cli.run(CURL, ['-s', '-o', '/dev/null', '--max-time', '60', '-w', '%{http_code} %{size_download}', url('/BIG')], { timeoutMs: 90_000 }),
        ]);
        const grown = (sampler.stop() - before) / MiB;
        const kept = ((await retained()).heapUsed - base.heapUsed) / MiB;
        t.diagnostic(`RSS +${grown.toFixed(1)} MiB at most, +${kept.toFixed(1)} MiB retained`);
        const codes = walk.stdout.trim().split('\n');
        assert.deepEqual(codes, Array.from({ length: dirs }, () => '200'), walk.stdout + walk.stderr);
        assert.equal(download.stdout.trim(), `200 ${big.length}`);
        // The cache's budget (8 MiB, by a generous estimate) plus the last directory parsed.
        assert.ok(kept <= 16, `${kept.toFixed(1)} MiB retained after ${dirs} directories of ${per} entries`);
        // Above that, what V8 lets its young generation grow to under this allocation rate.
        assert.ok(grown <= 96, `RSS grew by ${grown.toFixed(1)} MiB for ${dirs} directories of ${per} entries`);
        const over = await fetch(`/D${dirs}/0`);
        assert.equal(over.status, 500);
        assert.doesNotMatch(over.body, /crafted|\/tmp|directory|limit/, 'a generic answer');
      },
    );
  });
});
