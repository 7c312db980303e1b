/**
 * A deterministic value that satisfies a JSON schema: what the simulated model answers with
 * `format: <schema>` and what it puts in a tool call's `arguments` (the tool's `parameters`).
 *
 * The same schema and seed give the same value on every run and machine (a sha256-seeded
 * PRNG, as the text generator's). Understood: `type` (one or a list; `null` only when nothing
 * else is allowed), `const`, `enum`, `properties` (all of them are filled in; `required` names
 * without a property schema too), `additionalProperties` (for required names it does not
 * describe, and for `minProperties`), `items`, `prefixItems` (and draft-07 array `items`),
 * `contains`, `minItems`/`maxItems`, `uniqueItems`, `minimum`/`maximum`, `exclusiveMinimum`/
 * `exclusiveMaximum` (numbers, or draft-04 booleans), `multipleOf`, `minLength`/`maxLength`,
 * common `format`s (date-time, date, time, email, uri, hostname, ipv4, ipv6, uuid), `anyOf`/
 * `oneOf` (one branch, merged with the keywords beside it), `allOf` (merged), and local
 * `$ref`s (`#/$defs/…`, `#/definitions/…`, `#`). Not understood, so not guaranteed: `pattern`,
 * `not`, `if`/`then`/`else`, `patternProperties`, `dependentRequired`/`dependentSchemas`.
 * A type absent is inferred from the keywords present (properties → object, items → array,
 * bounds → number), else a string.
 *
 * Below depth 6 only required properties and `minItems` items are generated, so recursive
 * schemas end; a schema that requires infinite depth gets `null` at depth 32.
 */
import { seededRandom, VOCABULARY } from './token-generator.js';

type Schema = Record<string, unknown>;
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const OPTIONAL_DEPTH = 6;
const MAX_DEPTH = 32;

const CITIES = ['Paris', 'Tokyo', 'Lisbon', 'Nairobi', 'Toronto', 'Oslo', 'Santiago', 'Hanoi'] as const;

function isSchema(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function finite(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function count(value: unknown): number | undefined {
  const n = finite(value);
  return n !== undefined && n >= 0 ? Math.floor(n) : undefined;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

class Sampler {
  constructor(
    private readonly random: () => number,
    private readonly root: unknown,
  ) {}

  private int(lo: number, hi: number): number {
    return lo + Math.floor(this.random() * (hi - lo + 1));
  }

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)] as T;
  }

  private word(): string {
    return this.pick(VOCABULARY);
  }

  /** A local JSON pointer (`#`, `#/$defs/x`, `#/properties/a~1b`); undefined when it leads nowhere. */
  private resolve(ref: string): unknown {
    if (!ref.startsWith('#')) return undefined;
    let node: unknown = this.root;
    const pointer = ref.slice(1);
    if (pointer === '') return node;
    if (!pointer.startsWith('/')) return undefined;
    for (const raw of pointer.slice(1).split('/')) {
      const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
      if (Array.isArray(node)) node = node[Number(key)];
      else if (isSchema(node)) node = node[key];
      else return undefined;
    }
    return node;
  }

  /** The schema with its `$ref` followed and its `allOf` folded in (boolean schemas stay as they are). */
  private flatten(schema: unknown, depth: number): unknown {
    let current = schema;
    for (let hops = 0; isSchema(current) && typeof current.$ref === 'string' && hops < MAX_DEPTH; hops++) {
      const { $ref, ...rest } = current;
      const target = this.resolve($ref as string);
      current = isSchema(target) ? merge(target, rest) : target === undefined ? rest : target;
    }
    if (isSchema(current) && Array.isArray(current.allOf)) {
      const { allOf, ...rest } = current;
      let merged: Schema = rest;
      for (const part of allOf) {
        const flat = this.flatten(part, depth);
        if (isSchema(flat)) merged = merge(merged, flat);
      }
      current = merged;
    }
    return current;
  }

  sample(input: unknown, depth: number, name?: string): Json {
    if (depth > MAX_DEPTH) return null;
    const schema = this.flatten(input, depth);
    if (schema === false) return null;
    if (!isSchema(schema)) return this.word();
    if ('const' in schema) return schema.const as Json;
    if (Array.isArray(schema.enum) && schema.enum.length > 0) return this.pick(schema.enum) as Json;
    for (const key of ['anyOf', 'oneOf'] as const) {
      const branches = schema[key];
      if (Array.isArray(branches) && branches.length > 0) {
        const { [key]: _ignored, ...rest } = schema;
        const flat = branches.map((branch) => this.flatten(branch, depth));
        const nonNull = flat.filter((branch) => !(isSchema(branch) && branch.type === 'null'));
        const chosen = this.pick(nonNull.length > 0 ? nonNull : flat);
        return this.sample(isSchema(chosen) ? merge(rest, chosen) : chosen, depth + 1, name);
      }
    }
    switch (this.typeOf(schema)) {
      case 'null':
        return null;
      case 'boolean':
        return this.random() < 0.5;
      case 'integer':
        return this.number(schema, true);
      case 'number':
        return this.number(schema, false);
      case 'array':
        return this.array(schema, depth);
      case 'object':
        return this.object(schema, depth);
      default:
        return this.string(schema, name);
    }
  }

  private typeOf(schema: Schema): string {
    const type = schema.type;
    if (typeof type === 'string') return type;
    if (Array.isArray(type) && type.length > 0) {
      const named = type.filter((entry): entry is string => typeof entry === 'string');
      const nonNull = named.filter((entry) => entry !== 'null');
      if (nonNull.length > 0) return this.pick(nonNull);
      if (named.length > 0) return 'null';
    }
    if (isSchema(schema.properties) || Array.isArray(schema.required) || 'additionalProperties' in schema || 'minProperties' in schema) return 'object';
    if ('items' in schema || 'prefixItems' in schema || 'minItems' in schema || 'contains' in schema) return 'array';
    if (['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf'].some((key) => key in schema)) return 'number';
    return 'string';
  }

  private number(schema: Schema, integer: boolean): number {
    let lo = finite(schema.minimum);
    let hi = finite(schema.maximum);
    let loOpen = false;
    let hiOpen = false;
    // draft-04: booleans that make minimum/maximum exclusive; later drafts: the bound itself.
    if (schema.exclusiveMinimum === true) loOpen = lo !== undefined;
    else if (finite(schema.exclusiveMinimum) !== undefined && (lo === undefined || (schema.exclusiveMinimum as number) >= lo)) {
      lo = schema.exclusiveMinimum as number;
      loOpen = true;
    }
    if (schema.exclusiveMaximum === true) hiOpen = hi !== undefined;
    else if (finite(schema.exclusiveMaximum) !== undefined && (hi === undefined || (schema.exclusiveMaximum as number) <= hi)) {
      hi = schema.exclusiveMaximum as number;
      hiOpen = true;
    }
    if (lo === undefined) lo = hi === undefined || hi > 0 ? 0 : hi - 100;
    if (hi === undefined) hi = lo + 100;
    const step = finite(schema.multipleOf);
    if (integer || (step !== undefined && step > 0)) {
      const unit = step !== undefined && step > 0 ? (integer && !Number.isInteger(step) ? undefined : step) : 1;
      if (unit === undefined) return Math.ceil(lo);
      let first = Math.ceil(lo / unit);
      let last = Math.floor(hi / unit);
      if (loOpen && first * unit <= lo) first++;
      if (hiOpen && last * unit >= hi) last--;
      if (first > last) return Math.round(lo);
      const value = this.int(first, last) * unit;
      return Number.isInteger(unit) ? value : Number(value.toPrecision(12));
    }
    const raw = lo + (0.1 + 0.8 * this.random()) * (hi - lo);
    const rounded = Math.round(raw * 100) / 100;
    const inside = (value: number) => (loOpen ? value > lo : value >= lo) && (hiOpen ? value < hi : value <= hi);
    if (inside(rounded)) return rounded;
    if (inside(raw)) return raw;
    return (lo + hi) / 2;
  }

  private array(schema: Schema, depth: number): Json[] {
    // draft 2020-12 prefixItems + items; draft-07 items as an array + additionalItems.
    const prefix = Array.isArray(schema.prefixItems) ? schema.prefixItems : Array.isArray(schema.items) ? schema.items : [];
    const rest = Array.isArray(schema.items) ? schema.additionalItems : schema.items;
    const min = count(schema.minItems) ?? 0;
    const max = count(schema.maxItems) ?? Number.POSITIVE_INFINITY;
    const restAllowed = rest !== false;
    let length = depth >= OPTIONAL_DEPTH ? min : Math.max(min, Math.min(prefix.length + (restAllowed ? this.int(1, 3) : 0), max));
    if (!restAllowed) length = Math.min(length, prefix.length);
    length = Math.min(length, max);
    const items: Json[] = [];
    const unique = schema.uniqueItems === true;
    const seen = new Set<string>();
    const hasContains = schema.contains !== undefined && schema.contains !== false;
    for (let i = 0; i < length || (hasContains && i === 0 && items.length === 0); i++) {
      const itemSchema = i < prefix.length ? prefix[i] : hasContains && i === 0 ? schema.contains : rest;
      let item: Json = this.sample(itemSchema, depth + 1);
      for (let attempt = 0; unique && seen.has(JSON.stringify(item)) && attempt < 20; attempt++) item = this.sample(itemSchema, depth + 1);
      if (unique && seen.has(JSON.stringify(item))) {
        if (items.length >= min) break;
        if (typeof item === 'string') item = `${item} ${i}`;
        else if (typeof item === 'number') item += i;
      }
      seen.add(JSON.stringify(item));
      items.push(item);
    }
    return items;
  }

  private object(schema: Schema, depth: number): { [key: string]: Json } {
    const properties = isSchema(schema.properties) ? schema.properties : {};
    const required = new Set(Array.isArray(schema.required) ? schema.required.filter((key): key is string => typeof key === 'string') : []);
    const extra = schema.additionalProperties;
    const result: { [key: string]: Json } = {};
    for (const [key, propertySchema] of Object.entries(properties)) {
      if (propertySchema === false) continue;
      if (depth >= OPTIONAL_DEPTH && !required.has(key)) continue;
      result[key] = this.sample(propertySchema, depth + 1, key);
    }
    for (const key of required) {
      if (!(key in result)) result[key] = this.sample(isSchema(extra) ? extra : true, depth + 1, key);
    }
    const minProperties = count(schema.minProperties) ?? 0;
    for (let i = 1; Object.keys(result).length < minProperties && extra !== false; i++) {
      const key = `${this.word()}_${i}`;
      if (!(key in result)) result[key] = this.sample(isSchema(extra) ? extra : true, depth + 1, key);
    }
    return result;
  }

  private string(schema: Schema, name: string | undefined): string {
    const formatted = this.formatted(typeof schema.format === 'string' ? schema.format : undefined);
    if (formatted !== undefined) return formatted;
    const min = count(schema.minLength) ?? 0;
    const max = count(schema.maxLength) ?? Number.POSITIVE_INFINITY;
    let text = name !== undefined && /^(location|city|place|destination)$/i.test(name) ? this.pick(CITIES) : this.words(this.int(1, 4));
    while (text.length < min) text += ` ${this.word()}`;
    if (text.length > max) text = text.slice(0, max).trimEnd();
    while (text.length < min) text += 'x';
    return text;
  }

  private words(n: number): string {
    return Array.from({ length: n }, () => this.word()).join(' ');
  }

  private formatted(format: string | undefined): string | undefined {
    switch (format) {
      case 'date-time':
      case 'date':
      case 'time': {
        const at = new Date(Date.UTC(2024, 0, 1) + this.int(0, 729) * 86_400_000 + this.int(0, 86_399) * 1_000);
        const date = `${at.getUTCFullYear()}-${pad(at.getUTCMonth() + 1)}-${pad(at.getUTCDate())}`;
        const time = `${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())}:${pad(at.getUTCSeconds())}Z`;
        return format === 'date' ? date : format === 'time' ? time : `${date}T${time}`;
      }
      case 'email':
      case 'idn-email':
        return `${this.word()}.${this.word()}@example.com`;
      case 'uri':
      case 'url':
      case 'iri':
      case 'uri-reference':
      case 'iri-reference':
        return `https://example.com/${this.word()}/${this.word()}`;
      case 'hostname':
      case 'idn-hostname':
        return `${this.word()}.example.com`;
      case 'ipv4':
        return `192.0.2.${this.int(1, 254)}`;
      case 'ipv6':
        return `2001:db8::${this.int(1, 0xffff).toString(16)}`;
      case 'uuid': {
        const hex = Array.from({ length: 32 }, () => this.int(0, 15).toString(16));
        hex[12] = '4';
        hex[16] = (8 + this.int(0, 3)).toString(16);
        const s = hex.join('');
        return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
      }
      default:
        return undefined;
    }
  }
}

/** Two schemas as one (allOf, a chosen anyOf branch with its siblings): properties merged, required joined, the rest from `b`. */
function merge(a: Schema, b: Schema): Schema {
  const merged: Schema = { ...a, ...b };
  if (isSchema(a.properties) && isSchema(b.properties)) merged.properties = { ...a.properties, ...b.properties };
  if (Array.isArray(a.required) && Array.isArray(b.required)) merged.required = [...new Set([...a.required, ...b.required])];
  if (a.type !== undefined && b.type === undefined) merged.type = a.type;
  return merged;
}

/** A value satisfying `schema` (see the module comment for what is understood), the same for the same seed. */
export function sampleJson(schema: unknown, seed: string): unknown {
  return new Sampler(seededRandom('json-schema', seed), schema).sample(schema, 0);
}

/** Tool-call arguments for a tool's `parameters`: always an object (`{}` when the schema gives none). */
export function sampleArguments(parameters: unknown, seed: string): Record<string, unknown> {
  if (parameters === undefined || parameters === null) return {};
  const value = sampleJson(parameters, seed);
  return isSchema(value) ? value : {};
}
