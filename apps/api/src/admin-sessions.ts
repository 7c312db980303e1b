import { createHash, randomBytes } from 'node:crypto';
import type { RedisConnection } from '@switchyard/redis';
import type { RedisKeys } from '@switchyard/protocol';
import type { Principal } from './auth.js';

/** Cookie of an admin browser session (Bull Board, whose page requests cannot set headers). */
export const SESSION_COOKIE = 'switchyard_session';
/** The cookie is sent only under /admin: it is never a credential for the job or compat APIs. */
const COOKIE_PATH = '/admin';
const TOKEN_BYTES = 32;

const sha256Hex = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');

/**
 * Admin browser sessions. A visit with `?key=<admin key>` (validated first) gets an opaque
 * random token in an HttpOnly cookie; Redis keeps only the token's SHA-256, with an expiry,
 * so neither the key nor a usable token is ever stored or sent back. Logout deletes it.
 */
export class AdminSessions {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: RedisKeys,
    private readonly ttlSeconds: number,
  ) {}

  /** A new session for an admin principal; returns the token for the cookie. */
  async create(principal: Principal): Promise<string> {
    const token = randomBytes(TOKEN_BYTES).toString('base64url');
    const record = JSON.stringify({ tenant: principal.tenant, key_sha256: principal.keyDigest, created_at: Date.now() });
    await this.redis.set(this.keys.adminSession(sha256Hex(token)), record, 'EX', this.ttlSeconds);
    return token;
  }

  /**
   * The principal of a live session token, or undefined (unknown, expired, logged out,
   * malformed, or made from a key that was revoked or rotated away since: `keyIsLive`).
   */
  async principal(token: string | undefined, keyIsLive: (keyDigest: string) => boolean): Promise<Principal | undefined> {
    if (token === undefined || !/^[A-Za-z0-9_-]{20,100}$/.test(token)) return undefined;
    const raw = await this.redis.get(this.keys.adminSession(sha256Hex(token)));
    if (raw === null) return undefined;
    try {
      const record = JSON.parse(raw) as { tenant?: unknown; key_sha256?: unknown };
      if (typeof record.tenant !== 'string' || typeof record.key_sha256 !== 'string' || !keyIsLive(record.key_sha256)) return undefined;
      return { tenant: record.tenant, admin: true, keyDigest: record.key_sha256 };
    } catch {
      return undefined;
    }
  }

  async revoke(token: string | undefined): Promise<void> {
    if (token === undefined || !/^[A-Za-z0-9_-]{20,100}$/.test(token)) return;
    await this.redis.del(this.keys.adminSession(sha256Hex(token)));
  }

  /** `Set-Cookie` for a new session; `Secure` when the request came over TLS (directly or through a trusted proxy). */
  cookie(token: string, secure: boolean): string {
    return `${SESSION_COOKIE}=${token}; Path=${COOKIE_PATH}; Max-Age=${this.ttlSeconds}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
  }

  /** `Set-Cookie` that clears the session cookie. */
  static clearCookie(secure: boolean): string {
    return `${SESSION_COOKIE}=; Path=${COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
  }
}
