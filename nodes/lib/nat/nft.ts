/**
 * nftables backend: a table of our own per node (`ip pxe_flow_nat_<tag>`), so our rules never mix
 * with the user's, and replacing or removing them is one atomic `nft -f -` transaction.
 */
import type { Installed, NatBackend } from './backend';
import { failure, runChecked, type Runner } from './exec';
import { NatError } from './errors';
import { ownerTag, parseRuleComment, ruleComment, type ForwardValue, type NatPlan } from './plan';

export function nftTableName(owner: string): string {
  return `pxe_flow_nat_${ownerTag(owner)}`;
}

/** The chain priorities of srcnat/dstnat, numeric so that older nft versions accept them. */
const SRCNAT = 100;
const DSTNAT = -100;

/** The rule lines of the plan (as written in a chain body). */
export function nftRules(plan: NatPlan, priorForward: ForwardValue | null): { postrouting: string[]; prerouting: string[] } {
  const c = `comment "${ruleComment(plan.owner, priorForward)}"`;
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
export function nftApplyScript(plan: NatPlan, priorForward: ForwardValue | null): string {
  const t = nftTableName(plan.owner);
  const { postrouting, prerouting } = nftRules(plan, priorForward);
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
  const t = nftTableName(owner);
  return `add table ip ${t}\ndelete table ip ${t}\n`;
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

/** The rules and our recorded ip_forward from `nft list table ip <ours>` text. */
export function parseNftTable(text: string, owner: string): Installed {
  const rules: string[] = [];
  let priorForward: ForwardValue | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line === '}' || /^(table|chain) /.test(line) || /^type /.test(line) || line.startsWith('#')) continue;
    rules.push(line);
    const m = /comment "([^"]*)"/.exec(line);
    const c = m ? parseRuleComment(m[1]!) : null;
    if (c && c.owner === owner && c.priorForward) priorForward = c.priorForward;
  }
  return { rules, priorForward };
}

export class NftBackend implements NatBackend {
  readonly kind = 'nftables' as const;
  constructor(
    private readonly runner: Runner,
    private readonly nft: string,
  ) {}

  async inspect(owner: string): Promise<Installed | null> {
    const name = nftTableName(owner);
    const tables = parseNftTables(await runChecked(this.runner, 'nft list tables', this.nft, ['-j', 'list', 'tables', 'ip']));
    if (!tables.includes(name)) return null;
    const r = await this.runner.run(this.nft, ['list', 'table', 'ip', name]);
    if (r.code !== 0) {
      // Removed between the two calls.
      if (/No such file or directory/.test(r.stderr)) return null;
      throw failure(`nft list table ${name}`, r);
    }
    return parseNftTable(r.stdout, owner);
  }

  async apply(plan: NatPlan, priorForward: ForwardValue | null): Promise<void> {
    await runChecked(this.runner, 'nft (applying the NAT table)', this.nft, ['-f', '-'], { input: nftApplyScript(plan, priorForward) });
  }

  async remove(owner: string): Promise<boolean> {
    const had = (await this.inspect(owner)) !== null;
    if (had) await runChecked(this.runner, 'nft (removing the NAT table)', this.nft, ['-f', '-'], { input: nftRemoveScript(owner) });
    return had;
  }
}
