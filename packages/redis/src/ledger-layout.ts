/**
 * How the admission ledger lays out what it stores: the reservation entry, the in-flight
 * and drain scopes, the wait samples, limit names and refusal codes. TypeScript owns these;
 * the loader (`scripts.ts`) generates them into the Lua scripts as the `ts:ledger-layout`
 * include, so a field added or moved here reaches both sides at once instead of being
 * spelled again in Lua.
 */
import { JobErrorCode } from '@switchyard/protocol';

/** Separator of every joined value below (reservation, scopes with two parts, samples, outcome fields). */
export const SEPARATOR = '|';

/** A reservation entry (hash `jobs`, field = job id) is these fields, in this order, joined by {@link SEPARATOR}. */
export const RESERVATION_FIELDS = ['state', 'model', 'tenant', 'submitted', 'detach', 'deadline', 'est', 'class', 'score'] as const;
export type ReservationField = (typeof RESERVATION_FIELDS)[number];

/** Values of a reservation's `state`. */
export const RESERVATION_STATE = { queued: 'q', running: 'r' } as const;

/**
 * Scopes of the in-flight counters (hash `inflight`), the drain rates (`drain(<scope>)`) and
 * the Retry-After slots: a fixed name for the fleet, a prefix and the name for the others,
 * `tm:<tenant>|<model>` for a tenant on one model.
 */
export const SCOPE = { global: 'g', tenant: 't:', tenantModel: 'tm:', model: 'm:' } as const;

/** A wait sample (list `waitSamples`) is these fields joined by {@link SEPARATOR}: queue key, estimate at admission (ms, -1 without one), actual wait (ms). */
export const WAIT_SAMPLE_FIELDS = ['model', 'estimated', 'actual'] as const;

/**
 * Names in the limits hash: `<name>` is the fleet-wide default, `<name>:<scope>` the value for
 * one model (queue depth) or one tenant (the in-flight limits). `global_in_flight` has no scope.
 */
export const LIMIT_NAMES = {
  queueDepth: 'queue_depth',
  tenantInFlight: 'tenant_in_flight',
  tenantModelInFlight: 'tenant_model_in_flight',
  globalInFlight: 'global_in_flight',
} as const;
export type LimitName = (typeof LIMIT_NAMES)[keyof typeof LIMIT_NAMES];

/** The field of a limit in the limits hash: its default, or its value for one model or tenant. */
export function limitField(name: LimitName, scope?: string): string {
  return scope === undefined ? name : `${name}:${scope}`;
}

/** Why admission refused, as the admission script answers it. */
export const REFUSAL_CODES = ['queue_full', 'tenant_limit', 'tenant_model_limit', 'global_limit', 'deadline_unreachable'] as const;
export type RefusalCode = (typeof REFUSAL_CODES)[number];

/**
 * The status a job ends in when it ends with this error code. The API's job records and the
 * ledger's outcome counts (`outcomes`: `<outcome>|<model>`) both use it, so they never
 * disagree on a cancel or an expiry.
 */
export function statusOfFailure(code: string): 'cancelled' | 'expired' | 'failed' {
  return code === JobErrorCode.cancelled ? 'cancelled' : code === JobErrorCode.deadlineExceeded ? 'expired' : 'failed';
}

export const scope = {
  model: (model: string) => `${SCOPE.model}${model}` as const,
  tenant: (tenant: string) => `${SCOPE.tenant}${tenant}` as const,
  tenantModel: (tenant: string, model: string) => `${SCOPE.tenantModel}${tenant}${SEPARATOR}${model}` as const,
};

export interface ParsedReservation {
  state: 'q' | 'r';
  model: string;
  tenant: string;
  submittedAt: number;
}

/** Reads a reservation entry; undefined when it lacks a model or tenant (not written by the ledger). */
export function parseReservation(entry: string): ParsedReservation | undefined {
  const parts = entry.split(SEPARATOR);
  const field = (name: ReservationField) => parts[RESERVATION_FIELDS.indexOf(name)];
  const model = field('model');
  const tenant = field('tenant');
  if (!model || !tenant) return undefined;
  return { state: field('state') === RESERVATION_STATE.queued ? 'q' : 'r', model, tenant, submittedAt: Number(field('submitted')) };
}

export interface WaitSample {
  model: string;
  /** The estimate admission gave (ms); undefined when it had none. */
  estimatedMs?: number;
  actualMs: number;
}

/** Reads a wait sample; undefined when it is not one. */
export function parseWaitSample(sample: string): WaitSample | undefined {
  const parts = sample.split(SEPARATOR);
  const field = (name: (typeof WAIT_SAMPLE_FIELDS)[number]) => parts[WAIT_SAMPLE_FIELDS.indexOf(name)];
  const model = field('model');
  const actual = field('actual');
  if (!model || actual === undefined) return undefined;
  const estimated = field('estimated');
  const estimatedMs = Number(estimated);
  return { model, ...(estimated !== '' && estimatedMs >= 0 && { estimatedMs }), actualMs: Number(actual) };
}

/** The layout as the Lua scripts see it (1-based field positions), generated into them by the loader. */
export function luaLedgerLayout(): Record<string, unknown> {
  const positions = (fields: readonly string[]) => Object.fromEntries(fields.map((name, index) => [name, index + 1]));
  return {
    sep: SEPARATOR,
    reservation: positions(RESERVATION_FIELDS),
    reservationSize: RESERVATION_FIELDS.length,
    state: RESERVATION_STATE,
    scope: SCOPE,
    waitSample: positions(WAIT_SAMPLE_FIELDS),
    refusal: Object.fromEntries(REFUSAL_CODES.map((code) => [code, code])),
  };
}
