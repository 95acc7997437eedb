/**
 * The benches' paired rounds (bench/lib/pairs.ts, issue 19): median and its confidence interval on
 * known data, the rotation, and the adaptive runner stopping when the watched medians settle or at
 * its limit, driven by a fake measuring function.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { median, medianCi, notSettled, quantile, ratioSummary, rotation, runPairs, settled, spread } from '../../bench/lib/pairs';

describe('bench pairs: statistics', () => {
  it('median of odd and even counts, unsorted input left alone', () => {
    const xs = [3, 1, 2];
    assert.equal(median(xs), 2);
    assert.deepEqual(xs, [3, 1, 2]);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });

  it('quantiles interpolate between order statistics', () => {
    const xs = [1, 2, 3, 4, 5];
    assert.equal(quantile(xs, 0), 1);
    assert.equal(quantile(xs, 1), 5);
    assert.equal(quantile(xs, 0.25), 2);
    assert.equal(quantile([1, 2, 3, 4], 0.25), 1.75);
  });

  it('CI95 of the median: min–max up to 7 values, order statistics n/2 ∓ 0.98·√n above', () => {
    assert.deepEqual(medianCi([5, 1, 3, 2, 4, 7, 6]), [1, 7]);
    // n = 8: k = floor((8 − 5.54) / 2) = 1 → 2nd and 7th smallest.
    assert.deepEqual(medianCi([8, 1, 3, 2, 4, 7, 6, 5]), [2, 7]);
    // n = 9: k = floor((9 − 5.88) / 2) = 1 → 2nd and 8th smallest.
    assert.deepEqual(medianCi([9, 8, 7, 6, 5, 4, 3, 2, 1]), [2, 8]);
    // n = 21: k = floor((21 − 8.98) / 2) = 6 → 7th and 15th smallest.
    const xs = Array.from({ length: 21 }, (_, i) => i + 1);
    assert.deepEqual(medianCi(xs), [7, 15]);
    // n = 100: k = floor((100 − 19.6) / 2) = 40 → 41st and 60th smallest.
    assert.deepEqual(medianCi(Array.from({ length: 100 }, (_, i) => i + 1)), [41, 60]);
  });

  it('spread line names the median, CI95, IQR and count', () => {
    assert.equal(spread([1, 1.1, 0.9, 1.2, 0.8]), 'median 1.00× (CI95 0.80–1.20, IQR 0.90–1.10, 5 pairs)');
    assert.equal(spread([2], 'rounds'), 'median 2.00× (CI95 2.00–2.00, IQR 2.00–2.00, 1 rounds)');
    assert.equal(spread([]), 'skipped');
    assert.match(notSettled(), /not settled within ±2\.5 % at the pair limit/);
    assert.match(notSettled('rounds'), /at the round limit/);
  });

  it('settled: CI95 within ±2.5 % of the median, and at least min values', () => {
    const tight = [1, 1.01, 0.99, 1.02, 0.98, 1.0, 1.01];
    assert.equal(settled(tight, { min: 7 }), true);
    assert.equal(settled(tight, { min: 8 }), false);
    assert.equal(settled([...tight.slice(1), 1.2], { min: 7 }), false, 'min–max CI: one outlier unsettles 7 values');
    assert.equal(settled([...tight, 1.2], { min: 7 }), true, 'from 8 values the CI leaves the extremes out');
    assert.equal(settled([1, 1.04, 0.96], { min: 3 }), false);
    assert.equal(settled([1, 1.04, 0.96], { min: 3, target: 0.05 }), true);
  });
});

describe('bench pairs: rotation', () => {
  it('two contestants alternate, three rotate', () => {
    assert.deepEqual([0, 1, 2, 3].map((i) => rotation(['A', 'B'], i).join('')), ['AB', 'BA', 'AB', 'BA']);
    assert.deepEqual([0, 1, 2, 3].map((i) => rotation(['A', 'B', 'C'], i).join('')), ['ABC', 'BCA', 'CAB', 'ABC']);
  });
});

describe('bench pairs: runner', () => {
  /** A fake bench: `ours` takes 1 s, `ref` takes what `refSecs(round)` says; calls are recorded. */
  const fake = (refSecs: (round: number) => number) => {
    const calls: string[] = [];
    const one = async (who: 'ours' | 'ref', round: number): Promise<number> => {
      calls.push(`${round}${who}`);
      return who === 'ours' ? 1 : refSecs(round);
    };
    return { calls, one };
  };

  it('stops at min when the watched ratio is steady, in rotated order, and logs each round', async () => {
    const { calls, one } = fake(() => 1.5);
    const lines: string[] = [];
    const r = await runPairs({ who: ['ours', 'ref'], one, ratios: { speed: (m) => m.ref / m.ours }, min: 5, max: 20, log: (l) => lines.push(l) });
    assert.equal(r.rounds, 5);
    assert.equal(r.settled, true);
    assert.deepEqual(r.unsettled, []);
    assert.deepEqual(r.ratios.speed, [1.5, 1.5, 1.5, 1.5, 1.5]);
    assert.deepEqual(r.runs.ref, [1.5, 1.5, 1.5, 1.5, 1.5]);
    assert.deepEqual(calls.slice(0, 4), ['0ours', '0ref', '1ref', '1ours']);
    assert.equal(lines.length, 5);
    assert.equal(lines[0], 'round 1: speed 1.50');
  });

  it('runs on past min until noisy ratios settle', async () => {
    // ±20 % for the first 6 rounds, then steady: settles once the CI's order statistics are steady.
    const noise = [1.2, 0.8, 1.2, 0.8, 1.2, 0.8];
    const { one } = fake((i) => noise[i] ?? 1);
    const r = await runPairs({ who: ['ours', 'ref'], one, ratios: { speed: (m) => m.ref / m.ours }, min: 3, max: 40 });
    assert.equal(r.settled, true);
    assert.ok(r.rounds > 6 && r.rounds < 40, `settled after ${r.rounds} rounds`);
    const [lo, hi] = medianCi(r.ratios.speed!);
    assert.ok(lo >= 0.975 && hi <= 1.025);
    // One round fewer was not settled: the runner stopped at the first settled round.
    assert.equal(settled(r.ratios.speed!.slice(0, -1), { min: 3 }), false);
  });

  it('stops at max and says which watched ratio did not settle; unwatched ratios do not hold it', async () => {
    const { one } = fake((i) => (i % 2 ? 1.3 : 0.7));
    const r = await runPairs({
      who: ['ours', 'ref'],
      one,
      ratios: { noisy: (m) => m.ref / m.ours, steady: () => 1, alsoNoisy: (m) => m.ours / m.ref },
      watch: ['noisy', 'steady'],
      min: 3,
      max: 9,
    });
    assert.equal(r.rounds, 9);
    assert.equal(r.settled, false);
    assert.deepEqual(r.unsettled, ['noisy']);
    assert.equal(r.ratios.alsoNoisy!.length, 9);

    const quiet = await runPairs({ who: ['ours', 'ref'], one, ratios: { noisy: (m) => m.ref / m.ours, steady: () => 1 }, watch: ['steady'], min: 3, max: 9 });
    assert.equal(quiet.rounds, 3, 'only the watched ratio decides');
    assert.equal(quiet.settled, true);
  });

  it('min above max runs max rounds; an unknown watched name is an error', async () => {
    const { one } = fake(() => 1);
    const r = await runPairs({ who: ['ours', 'ref'], one, ratios: { r: (m) => m.ref / m.ours }, min: 10, max: 4 });
    assert.equal(r.rounds, 4);
    assert.equal(r.settled, true);
    await assert.rejects(runPairs({ who: ['ours', 'ref'], one, ratios: { r: () => 1 }, watch: ['x'], min: 1, max: 2 }), /no ratio named x/);
  });
});

describe('bench pairs: a ratio\'s line', () => {
  it('the spread, with "not settled" only for a ratio that hit the limit', () => {
    const r = { ratios: { a: [1, 1.1, 0.9, 1.2, 0.8], b: [2] }, unsettled: ['a'] };
    assert.equal(ratioSummary(r, 'a', 'rounds'), spread(r.ratios.a, 'rounds') + notSettled('rounds'));
    assert.equal(ratioSummary(r, 'b'), 'median 2.00× (CI95 2.00–2.00, IQR 2.00–2.00, 1 pairs)');
    assert.equal(ratioSummary(r, 'missing'), 'skipped');
  });
});
