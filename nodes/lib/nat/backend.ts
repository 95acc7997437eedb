import type { BackendKind, ForwardValue, NatPlan } from './plan';

/** What of ours a backend finds installed. */
export interface Installed {
  /** Our rules as the firewall tool prints them now. */
  rules: string[];
  /** ip_forward before we changed it, as recorded in our rules' comments (null: we did not). */
  priorForward: ForwardValue | null;
}

/**
 * One firewall backend. Every method touches only the table/chains named after the owner; apply
 * and remove are single atomic transactions (nft -f, iptables-restore), so a failure leaves the
 * previous state, never half of the new one.
 */
export interface NatBackend {
  readonly kind: BackendKind;
  inspect(owner: string): Promise<Installed | null>;
  /** Installs the plan, replacing whatever of ours is there (adopting leftovers of a killed run). */
  apply(plan: NatPlan, priorForward: ForwardValue | null): Promise<void>;
  /** Removes what of ours is there; true if there was something. */
  remove(owner: string): Promise<boolean>;
}
