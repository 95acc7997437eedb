/**
 * nftables backend: a table of our own per node (`ip pxe_flow_nat_<tag>`), so our rules never mix
 * with the user's, and replacing or removing them is one atomic `nft -f -` transaction.
 */
import type { Found, Installed, NatBackend } from './backend';
import { failure, runChecked, type Runner } from './exec';
import { NatError } from './errors';
import type { OwnerMark } from './owner';
import { ownerTag, parseRuleComment, ruleComment, type ForwardValue, type NatPlan } from './plan';

export function nftTableName(owner: string): string {
  return `pxe_flow_nat_${ownerTag(owner)}`;
}

/** Our table names, whoever owns them (the tag is 8 hex digits). */
export const NFT_TABLE_RE = /^pxe_flow_nat_[0-9a-f]{8}$/;

/** The chain priorities of srcnat/dstnat, numeric so that older nft versions accept them. */
const SRCNAT = 100;
const DSTNAT = -100;

/** The rule lines of the plan (as written in a chain body). */
export function nftRules(plan: NatPlan, priorForward: ForwardValue | null, mark: OwnerMark | null = null): { postrouting: string[]; prerouting: string[] } {
  const c = `comment "${ruleComment(plan.owner, priorForward, mark)}"`;
  const s = plan.subnet.cidr;
  const oif = plan.outInterface ? ` oifname "${plan.outInterface}"` : '';
  const postrouting = [`ip saddr ${s} ip daddr != ${s}${oif} masquerade ${c}`];
  const prerouting = plan.redirect
    ? // Only connections to this machine's own addresses: clients' downloads from port-80 mirrors pass.
      [`ip saddr ${s} fib daddr type local tcp dport ${plan.redirect.fromPort} redirect to :${plan.redirect.toPort} ${c}`]
    : [];
  return { postrouting, prerouting };
}

/**
 * Replaces our table in one transaction: "add table" makes the delete valid whether or not the
 * table exists, then the table is created afresh with only the plan's rules.
 */
export function nftApplyScript(plan: NatPlan, priorForward: ForwardValue | null, mark: OwnerMark | null = null): string {
  const t = nftTableName(plan.owner);
  const { postrouting, prerouting } = nftRules(plan, priorForward, mark);
  const lines = [`add table ip ${t}`, `delete table ip ${t}`, `table ip ${t} {`];
  lines.push('  chain postrouting {', `    type nat hook postrouting priority ${SRCNAT}; policy accept;`);
  for (const r of postrouting) lines.push(`    ${r}`);
  lines.push('  }');
  if (prerouting.length) {
    lines.push('  chain prerouting {', `    type nat hook prerouting priority ${DSTNAT}; policy accept;`);
    for (const r of prerouting) lines.push(`    ${r}`);
    lines.push('  }');
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

export function nftRemoveScript(owner: string): string {
  return nftRemoveTableScript(nftTableName(owner));
}

export function nftRemoveTableScript(table: string): string {
  if (!NFT_TABLE_RE.test(table)) throw new NatError('EINVAL', `${table} is not a table of ours`);
  return `add table ip ${table}\ndelete table ip ${table}\n`;
}

/** Table names in `nft -j list tables ip` output. */
export function parseNftTables(json: string): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    throw new NatError('EFAIL', 'nft -j list tables printed something that is not JSON');
  }
  const items = (doc as { nftables?: unknown[] }).nftables ?? [];
  const out: string[] = [];
  for (const it of items) {
    const t = (it as { table?: { family?: string; name?: string } }).table;
    if (t && t.family === 'ip' && typeof t.name === 'string') out.push(t.name);
  }
  return out;
}

/**
 * The rules, recorded ip_forward and owner from `nft list table ip <ours>` text. With `owner`,
 * only comments naming it count (a table is one owner's); without, the first comment of ours does.
 */
export function parseNftTable(text: string, owner?: string): Installed & { owner: string | null; mark: Found['mark'] } {
  const rules: string[] = [];
  let priorForward: ForwardValue | null = null;
  let found: { owner: string; mark: Found['mark'] } | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line === '}' || /^(table|chain) /.test(line) || /^type /.test(line) || line.startsWith('#')) continue;
    rules.push(line);
    const m = /comment "([^"]*)"/.exec(line);
    const c = m ? parseRuleComment(m[1]!) : null;
    if (!c || (owner !== undefined && c.owner !== owner) || (found && c.owner !== found.owner)) continue;
    found ??= { owner: c.owner, mark: c.mark };
    if (c.priorForward) priorForward = c.priorForward;
  }
  return { rules, priorForward, owner: found?.owner ?? null, mark: found?.mark ?? null };
}

export class NftBackend implements NatBackend {
  readonly kind = 'nftables' as const;
  constructor(
    private readonly runner: Runner,
    private readonly nft: string,
  ) {}

  keyOf(owner: string): string {
    return nftTableName(owner);
  }

  private async tables(): Promise<string[]> {
    return parseNftTables(await runChecked(this.runner, 'nft list tables', this.nft, ['-j', 'list', 'tables', 'ip']));
  }

  /** The text of one table, or null if it is gone. */
  private async table(name: string): Promise<string | null> {
    const r = await this.runner.run(this.nft, ['list', 'table', 'ip', name]);
    if (r.code !== 0) {
      // Removed between the two calls.
      if (/No such file or directory/.test(r.stderr)) return null;
      throw failure(`nft list table ${name}`, r);
    }
    return r.stdout;
  }

  async inspect(owner: string): Promise<Installed | null> {
    const name = nftTableName(owner);
    if (!(await this.tables()).includes(name)) return null;
    const text = await this.table(name);
    if (text === null) return null;
    const { rules, priorForward } = parseNftTable(text, owner);
    return { rules, priorForward };
  }

  async list(): Promise<Found[]> {
    const out: Found[] = [];
    for (const name of (await this.tables()).filter((t) => NFT_TABLE_RE.test(t))) {
      const text = await this.table(name);
      if (text !== null) out.push({ key: name, ...parseNftTable(text) });
    }
    return out;
  }

  async apply(plan: NatPlan, priorForward: ForwardValue | null, mark: OwnerMark | null = null): Promise<void> {
    await runChecked(this.runner, 'nft (applying the NAT table)', this.nft, ['-f', '-'], { input: nftApplyScript(plan, priorForward, mark) });
  }

  async remove(owner: string): Promise<boolean> {
    return this.removeKey(nftTableName(owner));
  }

  async removeKey(table: string): Promise<boolean> {
    const had = (await this.tables()).includes(table);
    if (had) await runChecked(this.runner, 'nft (removing the NAT table)', this.nft, ['-f', '-'], { input: nftRemoveTableScript(table) });
    return had;
  }
}
