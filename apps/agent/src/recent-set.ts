/**
 * A set whose members are forgotten after `ttlMs`: remembers cancellations heard before
 * the job they name reached this agent, without growing forever.
 */
export class RecentSet {
  private readonly entries = new Map<string, number>();

  constructor(private readonly ttlMs: number) {}

  add(value: string): void {
    const now = Date.now();
    this.entries.set(value, now + this.ttlMs);
    if (this.entries.size > 1000) {
      for (const [key, expiresAt] of this.entries) if (expiresAt <= now) this.entries.delete(key);
    }
  }

  has(value: string): boolean {
    const expiresAt = this.entries.get(value);
    if (expiresAt === undefined) return false;
    if (expiresAt <= Date.now()) {
      this.entries.delete(value);
      return false;
    }
    return true;
  }
}
