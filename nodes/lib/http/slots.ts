/**
 * Admission for body transfers: at most `max` at once over the process, and at most
 * `maxPerClient` from one client address, so that no address can take every slot (each transfer
 * holds an open file, a socket and up to a chunk of memory until its client reads or is cut off).
 * Over a limit the request is refused at once (503 with Retry-After), never queued: a queue would
 * grow with what clients send.
 */
export class TransferSlots {
  private readonly perClient = new Map<string, number>();
  private count = 0;

  constructor(
    readonly max: number,
    readonly maxPerClient: number,
  ) {}

  /** Transfers holding a slot. */
  get active(): number {
    return this.count;
  }

  heldBy(client: string): number {
    return this.perClient.get(client) ?? 0;
  }

  /** Takes a slot for `client`; false when the process or the client is at its limit. */
  tryTake(client: string): boolean {
    if (this.count >= this.max || this.heldBy(client) >= this.maxPerClient) return false;
    this.count++;
    this.perClient.set(client, this.heldBy(client) + 1);
    return true;
  }

  give(client: string): void {
    const n = this.heldBy(client);
    if (n <= 0) return;
    this.count--;
    if (n > 1) this.perClient.set(client, n - 1);
    else this.perClient.delete(client);
  }
}
