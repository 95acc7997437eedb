/**
 * The life of one node's NAT rules: enable (idempotent, adopting leftovers of a killed run),
 * disable, and net.ipv4.ip_forward set while enabled and restored afterwards. Operations run one
 * at a time; a failure rolls back what that operation applied.
 *
 * Every enable and disable also removes the tables/chains of ours whose owner is gone — a
 * Node-RED killed with -9, whatever its node ids were — and gives back the ip_forward value
 * recorded on them, unless a live owner still needs forwarding. Owners are told apart by the mark
 * on their rules (owner.ts): another live process, or a node of this runtime whose controller is
 * open, keeps its rules.
 */
import type { Found, NatBackend } from './backend';
import { markOf, processLiveness, sameMark, type Liveness, type OwnerMark } from './owner';
import type { BackendKind, ForwardValue, NatPlan } from './plan';
import { describePlan } from './plan';
import type { ForwardingControl } from './sysctl';

export interface NatState {
  active: boolean;
  backend: BackendKind | null;
  /** What the plan does, in words (empty when inactive). */
  summary: string[];
  /** Our rules as the firewall tool shows them now. */
  rules: string[];
  /** net.ipv4.ip_forward now, and the value we will restore (null when we did not change it). */
  ipForward: ForwardValue | null;
  ipForwardBefore: ForwardValue | null;
}

/**
 * ip_forward is one value per network namespace, shared by every node that wants forwarding: the
 * value from before the first of them is restored when the last one lets go.
 */
class ForwardingShare {
  private readonly holders = new Set<string>();
  private original: ForwardValue | null = null;
  get size(): number {
    return this.holders.size;
  }
  originalValue(): ForwardValue | null {
    return this.holders.size ? this.original : null;
  }
  holds(owner: string): boolean {
    return this.holders.has(owner);
  }
  acquire(owner: string, original: ForwardValue): void {
    if (this.holders.size === 0) this.original = original;
    else this.lower(original);
    this.holders.add(owner);
  }
  /**
   * A 0 learnt later wins: a 1 can only have been read after one of us (maybe a killed one, whose
   * rules told us) had turned forwarding on.
   */
  lower(value: ForwardValue): void {
    if (this.holders.size && value === '0') this.original = '0';
  }
  /** The value to restore if `owner` was the last holder, else null. */
  release(owner: string): ForwardValue | null {
    if (!this.holders.delete(owner) || this.holders.size > 0) return null;
    return this.original;
  }
}

const shares = new Map<string, ForwardingShare>();
function shareFor(key: string): ForwardingShare {
  let s = shares.get(key);
  if (!s) shares.set(key, (s = new ForwardingShare()));
  return s;
}

/** Owners with an open controller in this process: the live NAT nodes of this runtime. */
const openOwners = new Map<string, number>();

let selfMark: OwnerMark | null | undefined;
function ownMark(): OwnerMark | null {
  if (selfMark === undefined) selfMark = markOf('self');
  return selfMark;
}

/** The value to restore from several records: a 0 wins (see ForwardingShare.lower), else a 1, else none. */
function preferOff(values: (ForwardValue | null)[]): ForwardValue | null {
  if (values.includes('0')) return '0';
  return values.includes('1') ? '1' : null;
}

/** Rules of a stopped owner that were removed. */
export interface RemovedLeftover {
  owner: string | null;
  /** ip_forward from before that owner changed it, as recorded on its rules (null: it did not). */
  priorForward: ForwardValue | null;
  rules: string[];
}

export interface ControllerOptions {
  owner: string;
  /** Resolved lazily so that a missing tool is reported as an operation error, not at construction. */
  backend: () => Promise<NatBackend>;
  forwarding: ForwardingControl;
  /** Identifies the network namespace (e.g. the command prefix); nodes with the same key share ip_forward. */
  namespaceKey: string;
  /** This process's mark, written on its rules (default: from /proc; null: none, and no other owner's rules are judged). */
  self?: OwnerMark | null;
  /** Whether the process of a mark (not this one) still runs (default: from /proc). */
  liveness?: (mark: OwnerMark, self: OwnerMark) => Liveness;
  /** Told which leftovers of stopped owners were removed. */
  onLeftovers?: (removed: RemovedLeftover[]) => void;
}

export class NatController {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly share: ForwardingShare;
  private plan: NatPlan | null = null;
  private readonly self: OwnerMark | null;
  private open = true;

  constructor(private readonly opts: ControllerOptions) {
    this.share = shareFor(opts.namespaceKey);
    this.self = opts.self === undefined ? ownMark() : opts.self;
    openOwners.set(opts.owner, (openOwners.get(opts.owner) ?? 0) + 1);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  enable(plan: NatPlan): Promise<NatState> {
    if (plan.owner !== this.opts.owner) throw new Error(`plan of ${plan.owner} given to the controller of ${this.opts.owner}`);
    return this.serial(() => this.doEnable(plan));
  }

  disable(): Promise<NatState> {
    return this.serial(() => this.doDisable());
  }

  /** Disables, and ends this controller: from now on its owner's rules count as leftovers (the node closes). */
  close(): Promise<NatState> {
    return this.serial(async () => {
      try {
        return await this.doDisable();
      } finally {
        if (this.open) {
          this.open = false;
          const n = (openOwners.get(this.opts.owner) ?? 1) - 1;
          if (n > 0) openOwners.set(this.opts.owner, n);
          else openOwners.delete(this.opts.owner);
        }
      }
    });
  }

  state(): Promise<NatState> {
    return this.serial(() => this.describe());
  }

  /** Alive, dead or unknown (kept): the owner of rules that are not this controller's. */
  private judge(f: Found): Liveness {
    const self = this.self;
    // Without our own mark we cannot tell our rules from anyone's: nothing is judged.
    if (!self) return 'unknown';
    // Unmarked rules are an older version's; every live runtime of this one marks its rules.
    if (!f.mark || !f.owner) return 'dead';
    if (sameMark(f.mark, self)) return openOwners.has(f.owner) ? 'alive' : 'dead';
    return (this.opts.liveness ?? processLiveness)(f.mark, self);
  }

  /**
   * Everything of ours: this owner's rules (adopted, not removed), the live others', and the
   * leftovers of stopped owners, which are removed here.
   */
  private async survey(backend: NatBackend): Promise<{ mine: Found | null; live: Found[]; removed: Found[] }> {
    const key = backend.keyOf(this.opts.owner);
    const found = await backend.list();
    const mine = found.find((f) => f.key === key) ?? null;
    const live: Found[] = [];
    const removed: Found[] = [];
    for (const f of found) {
      if (f === mine) continue;
      if (this.judge(f) !== 'dead') {
        live.push(f);
        continue;
      }
      try {
        await backend.removeKey(f.key);
      } catch (err) {
        // Another node of this runtime may have removed it first.
        if ((await backend.list()).some((g) => g.key === f.key)) throw err;
      }
      removed.push(f);
      if (f.priorForward) this.share.lower(f.priorForward);
    }
    if (removed.length) this.opts.onLeftovers?.(removed.map((f) => ({ owner: f.owner, priorForward: f.priorForward, rules: f.rules })));
    return { mine, live, removed };
  }

  private async doEnable(plan: NatPlan): Promise<NatState> {
    const backend = await this.opts.backend();
    const fwd = this.opts.forwarding;
    const { mine, live, removed } = await this.survey(backend);
    // The value from before any of us changed it: shared with other nodes, else recorded on our
    // rules (our own leftover, a stopped owner's, a live owner's), else the current one.
    const recorded = preferOff([this.share.originalValue(), mine?.priorForward ?? null, ...removed.map((f) => f.priorForward), ...live.map((f) => f.priorForward)]);
    const othersNeedForwarding = live.some((f) => f.priorForward !== null);
    let prior: ForwardValue | null = null;
    if (plan.forward) prior = recorded ?? (await fwd.read());
    await backend.apply(plan, prior, this.self);
    try {
      if (plan.forward) {
        this.share.acquire(plan.owner, prior!);
        if ((await fwd.read()) !== '1') await fwd.write('1');
      } else {
        await this.giveBackForwarding(recorded, othersNeedForwarding);
      }
    } catch (err) {
      // Roll back: the rules without forwarding would be half of what was asked.
      await backend.remove(plan.owner).catch(() => undefined);
      await this.giveBackForwarding(prior ?? recorded, othersNeedForwarding).catch(() => undefined);
      this.plan = null;
      throw err;
    }
    this.plan = plan;
    return this.describe(backend);
  }

  private async doDisable(): Promise<NatState> {
    const backend = await this.opts.backend();
    const { mine, live, removed } = await this.survey(backend);
    await backend.remove(this.opts.owner);
    this.plan = null;
    const recorded = preferOff([mine?.priorForward ?? null, ...removed.map((f) => f.priorForward)]);
    await this.giveBackForwarding(recorded, live.some((f) => f.priorForward !== null));
    return this.describe(backend);
  }

  /**
   * Restores ip_forward if we were the last to want it on. `recorded` is the value found on our
   * rules or a stopped owner's, used when this process did not set forwarding itself (adopted
   * leftovers). A live owner elsewhere that still needs forwarding restores it when it lets go.
   */
  private async giveBackForwarding(recorded: ForwardValue | null, othersNeedForwarding: boolean): Promise<void> {
    let target: ForwardValue | null;
    if (this.share.holds(this.opts.owner)) target = this.share.release(this.opts.owner);
    else target = this.share.size === 0 ? recorded : null;
    if (target === null || othersNeedForwarding) return;
    const fwd = this.opts.forwarding;
    if ((await fwd.read()) !== target) await fwd.write(target);
  }

  private async describe(known?: NatBackend): Promise<NatState> {
    const backend = known ?? (await this.opts.backend());
    const installed = await backend.inspect(this.opts.owner);
    const ipForward = await this.opts.forwarding.read();
    return {
      active: installed !== null,
      backend: backend.kind,
      summary: installed && this.plan ? describePlan(this.plan) : [],
      rules: installed?.rules ?? [],
      ipForward,
      ipForwardBefore: this.share.holds(this.opts.owner) ? this.share.originalValue() : null,
    };
  }
}
