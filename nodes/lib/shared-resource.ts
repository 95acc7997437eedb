/**
 * A resource (a store, a socket) that several nodes use at once. It is opened by the first user
 * and closed, and waited for, when the last user leaves — the pattern of Node-RED's own MQTT
 * broker node, so that redeploying one node neither leaks nor closes what others still use.
 */
export class SharedResource<T> {
  private users = new Set<string>();
  private opening: Promise<T> | undefined;

  constructor(
    private readonly openFn: () => Promise<T>,
    private readonly closeFn: (value: T) => Promise<void>,
  ) {}

  get userCount(): number {
    return this.users.size;
  }

  acquire(userId: string): Promise<T> {
    this.users.add(userId);
    if (!this.opening) {
      const p = this.openFn();
      this.opening = p;
      // A failed open is forgotten so the next acquire retries (e.g. the ISO appears later).
      p.catch(() => {
        if (this.opening === p) this.opening = undefined;
      });
    }
    return this.opening;
  }

  async release(userId: string): Promise<void> {
    if (!this.users.delete(userId) || this.users.size > 0) return;
    await this.closeNow();
  }

  /** Closes whatever is open, whoever still holds it (the owner itself is being removed). */
  async closeNow(): Promise<void> {
    this.users.clear();
    const p = this.opening;
    this.opening = undefined;
    if (!p) return;
    let value: T;
    try {
      value = await p;
    } catch {
      return;
    }
    await this.closeFn(value);
  }
}
