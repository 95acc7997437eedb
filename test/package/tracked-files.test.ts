import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { it } from 'node:test';

const root = path.resolve(__dirname, '..', '..');

// Profiler output and logs are made by runs, not written by people: none may be committed.
const generated = [/(^|\/)isolate-[^/]*\.log$/, /\.log$/, /\.(cpu|heap)profile$/, /\.heapsnapshot$/, /(^|\/)perf\.data/];

it('git tracks no logs, profiles or other generated files', (t) => {
  const r = spawnSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) return t.skip('not a git checkout');
  const bad = r.stdout.split('\0').filter((f) => f && generated.some((re) => re.test(f)));
  assert.deepEqual(bad, []);
});
