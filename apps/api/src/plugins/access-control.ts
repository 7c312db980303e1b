import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ApiErrorCode } from '@switchyard/protocol';
import { access, type Access } from '../access.js';
import { AdminSessions, SESSION_COOKIE } from '../admin-sessions.js';
import { cookieValue, presentedKey, type ApiKeyStore, type Principal } from '../auth.js';
import { BULL_BOARD_PATH } from '../bull-board.js';
import { FLEET_PAGE_PATH } from '../routes/admin-fleet.js';
import { ApiError } from '../errors.js';
import { sendWireError, wireOf } from '../wire-errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who the request acts for, set by the access check; null when it presented no valid credential. */
    principal: Principal | null;
  }
}

/** Methods that only read: the only ones an admin session cookie is a credential for (no CSRF surface). */
const READ_METHODS = new Set(['GET', 'HEAD']);

export interface AccessControlOptions {
  keyStore: ApiKeyStore;
  sessions: AdminSessions;
}

/**
 * The access check, on the route the router resolved (its declared level, see access.ts),
 * never on the URL string. Refusals are answered here rather than thrown, so every route —
 * Bull Board's, whose plugin has an error handler of its own, included — refuses in the
 * shape of its wire. Also: `?key=` visits of the browser pages (Bull Board, the fleet page) traded for sessions, and logout.
 */
export const accessControl = fp<AccessControlOptions>(async (app: FastifyInstance, { keyStore, sessions }) => {
  app.decorateRequest('principal', null);

  const fromSession = async (request: FastifyRequest, level: Access): Promise<Principal | undefined> => {
    if (keyStore.open || level !== 'admin' || !READ_METHODS.has(request.method)) return undefined;
    return sessions.principal(cookieValue(request.headers.cookie, SESSION_COOKIE), (digest) => keyStore.isLive(digest));
  };

  app.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions.url;
    // No route matched: the not-found handler answers 404 to anyone.
    if (route === undefined) return;
    try {
      const level = request.routeOptions.config.access ?? 'none';
      if (level === 'public') return;
      if (level === 'none') {
        throw new ApiError(
          ApiErrorCode.methodNotAllowed,
          `${request.method} ${route} is not served: Bull Board is read-only; use Switchyard's own verbs (DELETE /admin/jobs/:id, POST /admin/jobs/:id/resubmit)`,
        );
      }
      const principal = keyStore.authenticate(presentedKey(request)) ?? (await fromSession(request, level));
      request.principal = principal ?? null;
      if (!principal) {
        throw new ApiError(
          ApiErrorCode.unauthorized,
          `${level === 'admin' ? 'this endpoint needs an admin API key' : 'a valid API key is required'}: send Authorization: Bearer <key> (or X-API-Key)`,
        );
      }
      if (level === 'admin' && !principal.admin) throw new ApiError(ApiErrorCode.forbidden, `tenant ${principal.tenant}'s key is not an admin key`);
      if (level === 'admin' && (route.startsWith(BULL_BOARD_PATH) || route === FLEET_PAGE_PATH)) await startBoardSession(request, reply, principal);
    } catch (error) {
      return sendWireError(reply, wireOf(route), error);
    }
  });

  /**
   * A visit of a browser page (Bull Board, the fleet page) that authenticated with `?key=`
   * (already validated as an admin key):
   * the key is traded for an opaque session cookie and the browser sent back to the same page
   * without the key in its address bar, history or Referer.
   */
  const startBoardSession = async (request: FastifyRequest, reply: FastifyReply, principal: Principal) => {
    const url = new URL(request.url, 'http://switchyard.invalid');
    if (keyStore.open || !url.searchParams.has('key')) return;
    const token = await sessions.create(principal);
    url.searchParams.delete('key');
    void reply
      .header('Set-Cookie', sessions.cookie(token, request.protocol === 'https'))
      .header('Cache-Control', 'no-store')
      .redirect(`${url.pathname}${url.search}`, 303);
  };

  // Public so an expired session can still clear its cookie; it ends only the session it names.
  const logout = async (request: FastifyRequest, reply: FastifyReply) => {
    await sessions.revoke(cookieValue(request.headers.cookie, SESSION_COOKIE));
    return reply
      .header('Set-Cookie', AdminSessions.clearCookie(request.protocol === 'https'))
      .header('Cache-Control', 'no-store')
      .send({ logged_out: true });
  };
  app.post('/admin/logout', access('public'), logout);
  app.get('/admin/logout', access('public'), logout);
});

/**
 * The principal of a request for its handler: the one the access check resolved, or (for a
 * route that did not need one) whatever its key says.
 */
export function principalOf(request: FastifyRequest, keyStore: ApiKeyStore): Principal | undefined {
  return request.principal ?? keyStore.authenticate(presentedKey(request));
}
