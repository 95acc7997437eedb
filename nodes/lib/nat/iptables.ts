/**
 * iptables backend (legacy or nft flavour): chains of our own in the nat table, jumped to from
 * POSTROUTING/PREROUTING by rules carrying our comment. Changes go through one
 * `iptables-restore --noflush` transaction, built from what `iptables-save` shows, so that only
 * the lines naming our chains are ever deleted.
 */
import type { Found, Installed, NatBackend } from './backend';
import { runChecked, type Runner } from './exec';
import { NatError } from './errors';
import type { OwnerMark } from './owner';
import { ownerTag, parseRuleComment, ruleComment, type BackendKind, type ForwardValue, type NatPlan } from './plan';

export interface IptablesTools {
  save: string;
  restore: string;
}

export function iptablesChains(owner: string): { post: string; pre: string } {
  const tag = ownerTag(owner);
  return { post: `PXEFLOW-${tag}-POST`, pre: `PXEFLOW-${tag}-PRE` };
}

/** Our chain names, whoever owns them: the tag is 8 hex digits. */
const CHAIN_RE = /^PXEFLOW-([0-9a-f]{8})-(POST|PRE)$/;

/** Our part of `iptables-save -t nat` output. */
export interface IptablesState {
  chains: string[];
  /** Our rules, as `-A CHAIN ...` lines (jumps included). */
  rules: string[];
  /** The `-A POSTROUTING/PREROUTING ... -j OURS` lines. */
  jumps: string[];
  priorForward: ForwardValue | null;
  /** The owner and its process, from the first comment of ours (null: none found). */
  owner: string | null;
  mark: OwnerMark | null;
}

/** Splits an iptables-save rule line into words, honouring its double quotes. */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!);
  return out;
}

export function parseIptablesSave(text: string, owner: string): IptablesState {
  return parseIptablesSaveAll(text, owner).get(ownerTag(owner)) ?? { chains: [], rules: [], jumps: [], priorForward: null, owner: null, mark: null };
}

/**
 * Our part of `iptables-save -t nat` output, per chain tag. With `owner`, only comments naming it
 * count as its record (a tag is one owner's); without, the first comment of ours in a tag does.
 */
export function parseIptablesSaveAll(text: string, owner?: string): Map<string, IptablesState> {
  const tags = new Map<string, IptablesState>();
  const stateOf = (tag: string): IptablesState => {
    let st = tags.get(tag);
    if (!st) tags.set(tag, (st = { chains: [], rules: [], jumps: [], priorForward: null, owner: null, mark: null }));
    return st;
  };
  const tagOf = (chain: string | undefined): string | null => (chain ? (CHAIN_RE.exec(chain)?.[1] ?? null) : null);
  let inNat = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) inNat = line === '*nat';
    if (!inNat) continue;
    if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0]!;
      const tag = tagOf(name);
      if (tag) stateOf(tag).chains.push(name);
      continue;
    }
    if (!line.startsWith('-A ')) continue;
    const w = words(line);
    const chain = w[1]!;
    const jIdx = w.indexOf('-j');
    const target = jIdx >= 0 ? w[jIdx + 1] : undefined;
    const inOurs = tagOf(chain);
    const jumpTo = inOurs ? null : tagOf(target);
    const tag = inOurs ?? jumpTo;
    if (!tag) continue;
    const state = stateOf(tag);
    state.rules.push(line);
    if (jumpTo) state.jumps.push(line);
    const cIdx = w.indexOf('--comment');
    const c = cIdx >= 0 ? parseRuleComment(w[cIdx + 1] ?? '') : null;
    if (!c || (owner !== undefined && c.owner !== owner) || (state.owner !== null && c.owner !== state.owner)) continue;
    if (state.owner === null) {
      state.owner = c.owner;
      state.mark = c.mark;
    }
    if (c.priorForward) state.priorForward = c.priorForward;
  }
  return tags;
}

/** The rule specs (after `-A CHAIN`) of the plan. */
export function iptablesRules(plan: NatPlan, priorForward: ForwardValue | null, mark: OwnerMark | null = null): { post: string[]; pre: string[]; comment: string } {
  const comment = ruleComment(plan.owner, priorForward, mark);
  const s = plan.subnet.cidr;
  const oif = plan.outInterface ? ` -o ${plan.outInterface}` : '';
  const post = [`-s ${s} ! -d ${s}${oif} -m comment --comment ${comment} -j MASQUERADE`];
  const pre = plan.redirect
    ? [
        // Only connections to this machine's own addresses: clients' downloads from port-80 mirrors pass.
        `-s ${s} -p tcp -m addrtype --dst-type LOCAL -m tcp --dport ${plan.redirect.fromPort} -m comment --comment ${comment} -j REDIRECT --to-ports ${plan.redirect.toPort}`,
      ]
    : [];
  return { post, pre, comment };
}

/** `-A X ...` → `-D X ...`: deletes exactly the rule iptables-save printed. */
function deleteLine(addLine: string): string {
  return `-D ${addLine.slice(3)}`;
}

/** One restore transaction that replaces whatever of ours exists with the plan. */
export function iptablesApplyScript(plan: NatPlan, priorForward: ForwardValue | null, existing: IptablesState, mark: OwnerMark | null = null): string {
  const { post, pre } = iptablesChains(plan.owner);
  const r = iptablesRules(plan, priorForward, mark);
  const lines = ['*nat', `:${post} - [0:0]`]; // a ':' line creates the chain, or flushes it if it exists
  if (r.pre.length) lines.push(`:${pre} - [0:0]`);
  for (const j of existing.jumps) lines.push(deleteLine(j));
  if (!r.pre.length && existing.chains.includes(pre)) lines.push(`-F ${pre}`, `-X ${pre}`);
  for (const spec of r.post) lines.push(`-A ${post} ${spec}`);
  for (const spec of r.pre) lines.push(`-A ${pre} ${spec}`);
  lines.push(`-A POSTROUTING -m comment --comment ${r.comment} -j ${post}`);
  if (r.pre.length) lines.push(`-A PREROUTING -m comment --comment ${r.comment} -j ${pre}`);
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}

export function iptablesRemoveScript(existing: IptablesState): string | null {
  if (!existing.chains.length && !existing.jumps.length) return null;
  const lines = ['*nat'];
  for (const j of existing.jumps) lines.push(deleteLine(j));
  for (const c of existing.chains) lines.push(`-F ${c}`, `-X ${c}`);
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}

export class IptablesBackend implements NatBackend {
  constructor(
    readonly kind: Extract<BackendKind, 'iptables-nft' | 'iptables-legacy'>,
    private readonly runner: Runner,
    private readonly tools: IptablesTools,
  ) {}

  keyOf(owner: string): string {
    return ownerTag(owner);
  }

  private async save(): Promise<string> {
    return runChecked(this.runner, `${this.kind}-save`, this.tools.save, ['-t', 'nat']);
  }

  private async state(owner: string): Promise<IptablesState> {
    return parseIptablesSave(await this.save(), owner);
  }

  private async restore(script: string, what: string): Promise<void> {
    // -w: wait for the xtables lock rather than fail when another tool holds it.
    await runChecked(this.runner, `${this.kind}-restore (${what})`, this.tools.restore, ['-w', '5', '--noflush'], { input: script });
  }

  async inspect(owner: string): Promise<Installed | null> {
    const s = await this.state(owner);
    if (!s.chains.length && !s.jumps.length) return null;
    return { rules: s.rules, priorForward: s.priorForward };
  }

  async list(): Promise<Found[]> {
    const out: Found[] = [];
    for (const [tag, s] of parseIptablesSaveAll(await this.save())) {
      if (s.chains.length || s.jumps.length) out.push({ key: tag, rules: s.rules, priorForward: s.priorForward, owner: s.owner, mark: s.mark });
    }
    return out;
  }

  async apply(plan: NatPlan, priorForward: ForwardValue | null, mark: OwnerMark | null = null): Promise<void> {
    await this.restore(iptablesApplyScript(plan, priorForward, await this.state(plan.owner), mark), 'applying the NAT chains');
  }

  async remove(owner: string): Promise<boolean> {
    return this.removeKey(ownerTag(owner));
  }

  async removeKey(tag: string): Promise<boolean> {
    if (!/^[0-9a-f]{8}$/.test(tag)) throw new NatError('EINVAL', `${tag} is not a chain tag of ours`);
    const script = iptablesRemoveScript(parseIptablesSaveAll(await this.save()).get(tag) ?? { chains: [], rules: [], jumps: [], priorForward: null, owner: null, mark: null });
    if (script) await this.restore(script, 'removing the NAT chains');
    return script !== null;
  }
}
