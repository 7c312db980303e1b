import type { FastifyInstance, RouteOptions } from 'fastify';

/**
 * Who may call a route, declared on the route itself (`{ config: { access: 'tenant' } }`)
 * and checked after routing, on what the router resolved — never on the URL string, which
 * can spell one route in many ways (`/v1/%61gents`, absolute-form targets, `//`, `;params`).
 *
 * - `public`: anyone (health, readiness).
 * - `tenant`: any valid key; the handler then sees only that tenant's jobs.
 * - `admin`: an admin key (fleet endpoints, /metrics, /admin/*, Bull Board).
 * - `none`: registered by a dependency but never served (Bull Board's write API): 405.
 */
export const ACCESS_LEVELS = ['public', 'tenant', 'admin', 'none'] as const;
export type Access = (typeof ACCESS_LEVELS)[number];

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
}

/** Route options declaring an access level: `app.get(path, access('admin'), handler)`. */
export function access(level: Access): { config: { access: Access } } {
  return { config: { access: level } };
}

/**
 * Records every route registered without an access level. Added before any route, so it
 * sees all of them (Fastify passes `onRoute` hooks down to plugins registered later).
 * `assertDeclared` is called once routes are in: start-up refuses to serve if a route would
 * be open by omission.
 */
export interface DeclaredRoute {
  method: string;
  url: string;
  access: Access | undefined;
}

export function trackAccessDeclarations(app: FastifyInstance): { assertDeclared(): void; routes(): DeclaredRoute[] } {
  // Kept by reference and read at the end: a plugin's own onRoute hook (which runs after
  // this one) may still declare the level.
  const routes: RouteOptions[] = [];
  app.addHook('onRoute', (route: RouteOptions) => void routes.push(route));
  const declared = (route: RouteOptions) => (route.config as { access?: unknown } | undefined)?.access as Access | undefined;
  return {
    /** Every route with its declared level (the route table the access tests walk). */
    routes: () => routes.flatMap((route) => [route.method].flat().map((method) => ({ method, url: route.url, access: declared(route) }))),
    assertDeclared() {
      const undeclared = routes
        .filter((route) => !ACCESS_LEVELS.includes(declared(route) as Access))
        .flatMap((route) => [route.method].flat().map((method) => `${method} ${route.url}`));
      if (undeclared.length > 0) {
        throw new Error(`routes without a declared access level (public, tenant, admin or none) would be served open: ${undeclared.join(', ')}`);
      }
    },
  };
}

/** Sets the access level of every route a plugin registers (a dependency's routes: Bull Board). */
export function declareAccessOfPluginRoutes(scope: FastifyInstance, levelOf: (route: RouteOptions) => Access): void {
  scope.addHook('onRoute', (route: RouteOptions) => {
    route.config = { ...(route.config as object | undefined), access: levelOf(route) } as RouteOptions['config'];
  });
}
