/**
 * The life of one node's NAT rules: enable (idempotent, adopting leftovers of a killed run),
 * disable, and net.ipv4.ip_forward set while enabled and restored afterwards. Operations run one
 * at a time; a failure rolls back what that operation applied.
 */
import type { NatBackend } from './backend';
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
    this.holders.add(owner);
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

export interface ControllerOptions {
  owner: string;
  /** Resolved lazily so that a missing tool is reported as an operation error, not at construction. */
  backend: () => Promise<NatBackend>;
  forwarding: ForwardingControl;
  /** Identifies the network namespace (e.g. the command prefix); nodes with the same key share ip_forward. */
  namespaceKey: string;
}

export class NatController {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly share: ForwardingShare;
  private plan: NatPlan | null = null;

  constructor(private readonly opts: ControllerOptions) {
    this.share = shareFor(opts.namespaceKey);
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

  state(): Promise<NatState> {
    return this.serial(() => this.describe());
  }

  private async doEnable(plan: NatPlan): Promise<NatState> {
    const backend = await this.opts.backend();
    const fwd = this.opts.forwarding;
    const leftover = await backend.inspect(plan.owner);
    let prior: ForwardValue | null = null;
    if (plan.forward) {
      // The value from before any of us changed it: shared with other nodes, else recorded on our
      // leftover rules (a killed run), else the current one.
      prior = this.share.originalValue() ?? leftover?.priorForward ?? (await fwd.read());
    }
    await backend.apply(plan, prior);
    try {
      if (plan.forward) {
        this.share.acquire(plan.owner, prior!);
        if ((await fwd.read()) !== '1') await fwd.write('1');
      } else {
        await this.giveBackForwarding(leftover?.priorForward ?? null);
      }
    } catch (err) {
      // Roll back: the rules without forwarding would be half of what was asked.
      await backend.remove(plan.owner).catch(() => undefined);
      await this.giveBackForwarding(prior).catch(() => undefined);
      this.plan = null;
      throw err;
    }
    this.plan = plan;
    return this.describe(backend);
  }

  private async doDisable(): Promise<NatState> {
    const backend = await this.opts.backend();
    const leftover = await backend.inspect(this.opts.owner);
    await backend.remove(this.opts.owner);
    this.plan = null;
    await this.giveBackForwarding(leftover?.priorForward ?? null);
    return this.describe(backend);
  }

  /**
   * Restores ip_forward if we were the last to want it on. `recorded` is the value found on our
   * rules, used when this process did not set forwarding itself (adopted leftovers).
   */
  private async giveBackForwarding(recorded: ForwardValue | null): Promise<void> {
    let target: ForwardValue | null;
    if (this.share.holds(this.opts.owner)) target = this.share.release(this.opts.owner);
    else target = this.share.size === 0 ? recorded : null;
    if (target === null) return;
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
