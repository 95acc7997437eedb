import type { OwnerMark } from './owner';
import type { BackendKind, ForwardValue, NatPlan } from './plan';

/** What of ours a backend finds installed. */
export interface Installed {
  /** Our rules as the firewall tool prints them now. */
  rules: string[];
  /** ip_forward before we changed it, as recorded in our rules' comments (null: we did not). */
  priorForward: ForwardValue | null;
}

/** One owner's table (nftables) or chains (iptables) of ours, whoever the owner is. */
export interface Found extends Installed {
  /** The table name or chain tag: what removeKey() takes. */
  key: string;
  /** The owner and its process, from the rules' comments; null when they say nothing (older versions). */
  owner: string | null;
  mark: OwnerMark | null;
}

/**
 * One firewall backend. Every method touches only tables/chains of ours (named pxe_flow_nat_* or
 * PXEFLOW-*); apply and remove are single atomic transactions (nft -f, iptables-restore), so a
 * failure leaves the previous state, never half of the new one.
 */
export interface NatBackend {
  readonly kind: BackendKind;
  /** The key of an owner's table/chains. */
  keyOf(owner: string): string;
  inspect(owner: string): Promise<Installed | null>;
  /** Every table/chain set of ours, of any owner. */
  list(): Promise<Found[]>;
  /** Installs the plan, replacing whatever of ours is there (adopting leftovers of a killed run). */
  apply(plan: NatPlan, priorForward: ForwardValue | null, mark: OwnerMark | null): Promise<void>;
  /** Removes what of ours is there; true if there was something. */
  remove(owner: string): Promise<boolean>;
  /** Removes the table/chains of a key found by list(); true if there was something. */
  removeKey(key: string): Promise<boolean>;
}
