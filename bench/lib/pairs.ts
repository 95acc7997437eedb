/**
 * Paired runs for the benches (issue 19): on a shared machine a ratio near 1.0× moves ±15 % from
 * one run of a bench to the next, because the load drifts between a run of ours and a run of the
 * reference. So every bench runs its contestants in rounds, one run each, the order rotated every
 * round (A B, B A / A B C, B C A, C A B), takes each figure's ratio within every round, and reports
 * the median of those per-round ratios with its spread: a distribution-free 95 % confidence
 * interval of the median (order statistics) and the interquartile range. Rounds go on until every
 * watched ratio's median is "settled" — its CI95 within ±2.5 % of it, so two runs of the bench
 * agree within about 5 % — at least `min` and at most `max` rounds.
 *
 * Pure: no I/O. The measuring function and the log are the caller's.
 */

/** Half-width of the CI95 of a median, relative to it, at which the median counts as settled. */
export const CI_TARGET = 0.025;

export const fmt = (x: number, d = 2): string => x.toFixed(d);

export function median(xs: readonly number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The q-quantile (0..1) of `xs`, linear between order statistics. */
export function quantile(xs: readonly number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (at - lo);
}

/**
 * Distribution-free ~95 % confidence interval of the median: the order statistics n/2 ∓ 0.98·√n
 * (from the binomial(n, ½) count of values below the median). Up to 7 values it is min–max.
 */
export function medianCi(xs: readonly number[]): [number, number] {
  if (!xs.length) return [NaN, NaN];
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const k = Math.max(0, Math.floor((n - 1.96 * Math.sqrt(n)) / 2));
  return [s[k]!, s[n - 1 - k]!];
}

/** "median 1.05× (CI95 1.01–1.08, IQR 0.98–1.12, 9 pairs)"; `noun` names what was counted. */
export function spread(xs: readonly number[], noun = 'pairs', digits = 2): string {
  if (!xs.length) return 'skipped';
  const [lo, hi] = medianCi(xs);
  const f = (x: number): string => fmt(x, digits);
  return `median ${f(median(xs))}× (CI95 ${f(lo)}–${f(hi)}, IQR ${f(quantile(xs, 0.25))}–${f(quantile(xs, 0.75))}, ${xs.length} ${noun})`;
}

export interface SettleOptions {
  /** Fewer values than this are never settled. */
  min: number;
  /** Relative half-width of the CI95; CI_TARGET unless given. */
  target?: number;
}

/** Whether the median of `xs` is known to ±target (relative): its CI95 lies within that of it. */
export function settled(xs: readonly number[], { min, target = CI_TARGET }: SettleOptions): boolean {
  if (xs.length < Math.max(1, min)) return false;
  const [lo, hi] = medianCi(xs);
  const m = median(xs);
  return hi - m <= target * Math.abs(m) && m - lo <= target * Math.abs(m);
}

/** Round i's order: the contestants rotated by i, so none is always first (A B, B A / A B C, B C A, C A B). */
export function rotation<T>(who: readonly T[], i: number): T[] {
  return who.map((_, k) => who[(i + k) % who.length]!);
}

/** What the bench prints after a figure that hit the round limit unsettled. */
export const notSettled = (noun = 'pairs'): string => ` — not settled within ±${CI_TARGET * 100} % at the ${noun.replace(/s$/, '')} limit (uneven load)`;

export interface PairsOptions<W extends string, M> {
  /** The contestants, in round 0's order. */
  who: readonly W[];
  /** One measured run of one contestant (round counts from 0). */
  one: (who: W, round: number) => Promise<M>;
  /** Per-round ratios by name, from that round's measures. */
  ratios: Record<string, (m: Record<W, M>) => number>;
  /** Names of the ratios whose medians must settle; every ratio unless given. */
  watch?: readonly string[];
  /** At least this many rounds (a floor for the CI to mean something) … */
  min: number;
  /** … and at most this many: what bounds a bench's time on a loaded machine. */
  max: number;
  target?: number;
  /** Each round's line goes here (the bench's console). */
  log?: (line: string) => void;
  /** That line, from the round's measures and ratios; a default lists the ratios. */
  describe?: (m: Record<W, M>, round: number, ratios: Record<string, number>) => string;
}

export interface PairsResult<W extends string, M> {
  /** Every contestant's measures, by round. */
  runs: Record<W, M[]>;
  /** Every ratio, by round. */
  ratios: Record<string, number[]>;
  rounds: number;
  /** True when every watched ratio settled; false when the max was hit first. */
  settled: boolean;
  /** The watched ratios that did not settle. */
  unsettled: string[];
}

/** Rotated rounds of `one` until every watched ratio's median is settled, or `max` rounds. */
export async function runPairs<W extends string, M>(o: PairsOptions<W, M>): Promise<PairsResult<W, M>> {
  const names = Object.keys(o.ratios);
  const watch = o.watch ?? names;
  for (const w of watch) if (!names.includes(w)) throw new Error(`runPairs: no ratio named ${w}`);
  const max = Math.max(1, o.max);
  const min = Math.min(Math.max(1, o.min), max);
  const runs = Object.fromEntries(o.who.map((w) => [w, [] as M[]])) as unknown as Record<W, M[]>;
  const ratios: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, [] as number[]]));
  const open = (): string[] => watch.filter((w) => !settled(ratios[w]!, { min, target: o.target }));
  let rounds = 0;
  while (rounds < max) {
    const m = {} as Record<W, M>;
    for (const w of rotation(o.who, rounds)) m[w] = await o.one(w, rounds);
    for (const w of o.who) runs[w].push(m[w]);
    const now: Record<string, number> = {};
    for (const n of names) ratios[n]!.push((now[n] = o.ratios[n]!(m)));
    o.log?.(o.describe ? o.describe(m, rounds, now) : `round ${rounds + 1}: ${names.map((n) => `${n} ${fmt(now[n]!)}`).join(', ')}`);
    rounds++;
    if (!open().length) break;
  }
  const unsettled = open();
  return { runs, ratios, rounds, settled: !unsettled.length, unsettled };
}

/** A ratio's line: its spread, and "not settled" when `r` hit its limit before that ratio settled. */
export function ratioSummary(r: Pick<PairsResult<string, unknown>, 'ratios' | 'unsettled'>, name: string, noun = 'pairs', digits = 2): string {
  return `${spread(r.ratios[name] ?? [], noun, digits)}${r.unsettled.includes(name) ? notSettled(noun) : ''}`;
}
