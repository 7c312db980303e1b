import type { ApiKeyInfo, CreatedApiKey, CreateKeyRequest, SwitchyardClient } from '@switchyard/sdk';
import { EXIT } from '../exit-codes.js';
import { ago, formatDuration, table } from '../format.js';
import type { CliIo } from '../io.js';

export type KeysArgs =
  | { action: 'list'; json: boolean }
  | { action: 'create'; json: boolean; request: CreateKeyRequest }
  | { action: 'rotate'; json: boolean; id: string; graceS?: number }
  | { action: 'revoke'; json: boolean; id: string };

/**
 * `switchyard keys list|create|rotate|revoke` (admin key). A new key goes to stdout alone,
 * so `KEY=$(switchyard keys create acme)` captures exactly it; what it is goes to stderr.
 */
export async function keysCommand(io: CliIo, client: SwitchyardClient, args: KeysArgs): Promise<number> {
  switch (args.action) {
    case 'list': {
      const keys = await client.listKeys();
      if (args.json) io.stdout.write(`${JSON.stringify({ keys }, null, 2)}\n`);
      else io.stdout.write(`${renderKeys(keys)}\n`);
      return EXIT.ok;
    }
    case 'create': {
      const created = await client.createKey(args.request);
      if (args.json) io.stdout.write(`${JSON.stringify(created, null, 2)}\n`);
      else printNewKey(io, created, `created key ${describe(created)}`);
      return EXIT.ok;
    }
    case 'rotate': {
      const rotated = await client.rotateKey(args.id, args.graceS !== undefined ? { graceS: args.graceS } : {});
      if (args.json) io.stdout.write(`${JSON.stringify(rotated, null, 2)}\n`);
      else {
        const old = rotated.previous ? `the old key (${rotated.previous.prefix}…) stays valid until ${rotated.previous.expires_at}` : 'the old key no longer works';
        printNewKey(io, rotated, `rotated key ${describe(rotated)}; ${old}`);
      }
      return EXIT.ok;
    }
    case 'revoke': {
      const revoked = await client.revokeKey(args.id);
      if (args.json) io.stdout.write(`${JSON.stringify(revoked, null, 2)}\n`);
      else io.stdout.write(`revoked key ${describe(revoked)}\n`);
      return EXIT.ok;
    }
  }
}

function describe(key: ApiKeyInfo): string {
  return `${key.id} (${key.prefix ?? 'configured'}…) of tenant ${key.tenant}${key.admin ? ', admin' : ''}${key.name ? `, "${key.name}"` : ''}`;
}

function printNewKey(io: CliIo, key: CreatedApiKey, what: string): void {
  io.stdout.write(`${key.key}\n`);
  io.stderr.write(`switchyard: ${what}. Store the key now: it is not shown again.\n`);
}

function limitsText(limits: ApiKeyInfo['limits']): string {
  const parts = [
    ...(limits.in_flight !== null ? [`in_flight=${limits.in_flight}`] : []),
    ...(limits.model_in_flight !== null ? [`model_in_flight=${limits.model_in_flight}`] : []),
  ];
  return parts.length > 0 ? parts.join(' ') : '-';
}

export function renderKeys(keys: ApiKeyInfo[], now = Date.now()): string {
  if (keys.length === 0) return 'no API keys (the API runs open)';
  const time = (value: string | null) => (value === null ? '-' : ago(Date.parse(value), now));
  return table([
    ['ID', 'PREFIX', 'TENANT', 'ADMIN', 'NAME', 'SOURCE', 'CREATED', 'ROTATED', 'LIMITS'],
    ...keys.map((key) => [
      key.id,
      key.prefix ?? '-',
      key.tenant,
      key.admin ? 'yes' : 'no',
      key.name ?? '-',
      key.source,
      time(key.created_at),
      key.previous ? `${time(key.rotated_at)}, old key ${formatDuration(Math.max(0, (Date.parse(key.previous.expires_at) - now) / 1000))} more` : time(key.rotated_at),
      limitsText(key.limits),
    ]),
  ]);
}
