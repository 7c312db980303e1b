/**
 * The JSON schema sampler: every value it makes validates against its schema (checked with
 * zod's own JSON-schema reader, an independent implementation), over many seeds, and the same
 * seed gives the same value.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { sampleArguments, sampleJson } from './json-schema-sample.js';

type Schema = Record<string, unknown>;

const SEEDS = Array.from({ length: 40 }, (_, i) => `seed ${i}`);

function expectValid(schema: Schema, value: unknown) {
  const result = z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0]).safeParse(value);
  expect(result.success, `${JSON.stringify(value)} against ${JSON.stringify(schema)}: ${result.error?.message ?? ''}`).toBe(true);
}

const SCHEMAS: Record<string, Schema> = {
  'weather tool': {
    type: 'object',
    properties: {
      location: { type: 'string', description: 'City name' },
      unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      days: { type: 'integer', minimum: 1, maximum: 7 },
    },
    required: ['location'],
    additionalProperties: false,
  },
  'every type': {
    type: 'object',
    properties: {
      s: { type: 'string', minLength: 5, maxLength: 8 },
      n: { type: 'number', minimum: -1.5, maximum: -1.25 },
      i: { type: 'integer', exclusiveMinimum: 0, exclusiveMaximum: 3 },
      b: { type: 'boolean' },
      z: { type: 'null' },
      a: { type: 'array', items: { type: 'integer', multipleOf: 5, minimum: 7, maximum: 40 }, minItems: 4, maxItems: 6 },
      o: { type: 'object', properties: { deep: { type: 'object', properties: { deeper: { const: 'x' } }, required: ['deeper'] } }, required: ['deep'] },
      c: { const: 42 },
      e: { enum: [1, 'two', null] },
    },
    required: ['s', 'n', 'i', 'b', 'z', 'a', 'o', 'c', 'e'],
  },
  'nullable union and lists of types': {
    type: 'object',
    properties: { maybe: { type: ['string', 'null'] }, either: { anyOf: [{ type: 'integer', minimum: 10, maximum: 12 }, { type: 'null' }] } },
    required: ['maybe', 'either'],
  },
  'refs and definitions': {
    type: 'object',
    properties: { home: { $ref: '#/$defs/address' }, work: { $ref: '#/$defs/address' } },
    required: ['home'],
    $defs: {
      address: {
        type: 'object',
        properties: { street: { type: 'string' }, zip: { type: 'string', minLength: 5, maxLength: 5 } },
        required: ['street', 'zip'],
      },
    },
  },
  'allOf merged': {
    allOf: [
      { type: 'object', properties: { id: { type: 'integer', minimum: 1 } }, required: ['id'] },
      { properties: { name: { type: 'string' } }, required: ['name'] },
    ],
  },
  'oneOf of objects': {
    type: 'object',
    properties: {
      shape: {
        oneOf: [
          { type: 'object', properties: { kind: { const: 'circle' }, r: { type: 'number', exclusiveMinimum: 0 } }, required: ['kind', 'r'] },
          { type: 'object', properties: { kind: { const: 'square' }, side: { type: 'number', minimum: 1 } }, required: ['kind', 'side'] },
        ],
      },
    },
    required: ['shape'],
  },
  'unique items and tuples': {
    type: 'object',
    properties: {
      tags: { type: 'array', items: { type: 'string', enum: ['a', 'b', 'c'] }, uniqueItems: true, minItems: 3 },
      pair: { type: 'array', prefixItems: [{ type: 'string' }, { type: 'integer' }], items: false },
    },
    required: ['tags', 'pair'],
  },
  formats: {
    type: 'object',
    properties: {
      when: { type: 'string', format: 'date-time' },
      day: { type: 'string', format: 'date' },
      mail: { type: 'string', format: 'email' },
      link: { type: 'string', format: 'uri' },
      id: { type: 'string', format: 'uuid' },
      ip: { type: 'string', format: 'ipv4' },
    },
    required: ['when', 'day', 'mail', 'link', 'id', 'ip'],
  },
  'array at the top': { type: 'array', items: { type: 'object', properties: { x: { type: 'number' } }, required: ['x'] }, minItems: 2 },
  'no type given': { properties: { a: { minimum: 3, maximum: 4 }, b: { items: { type: 'boolean' }, minItems: 1 } }, required: ['a', 'b'] },
  'required names without properties': { type: 'object', required: ['q', 'r'], additionalProperties: { type: 'integer', maximum: -5 } },
};

describe('sampleJson', () => {
  it.each(Object.entries(SCHEMAS))('makes values that validate: %s', (_name, schema) => {
    for (const seed of SEEDS) expectValid(schema, sampleJson(schema, seed));
  });

  it('is deterministic for a seed and varies with it', () => {
    const schema = SCHEMAS['every type'] as Schema;
    expect(sampleJson(schema, 'a')).toEqual(sampleJson(schema, 'a'));
    const distinct = new Set(SEEDS.map((seed) => JSON.stringify(sampleJson(schema, seed))));
    expect(distinct.size).toBeGreaterThan(SEEDS.length / 2);
  });

  it('honours bounds, enums, consts and array lengths exactly', () => {
    for (const seed of SEEDS) {
      const value = sampleJson(SCHEMAS['every type'], seed) as Record<string, unknown>;
      expect((value.s as string).length).toBeGreaterThanOrEqual(5);
      expect((value.s as string).length).toBeLessThanOrEqual(8);
      expect(value.n).toBeGreaterThanOrEqual(-1.5);
      expect(value.n).toBeLessThanOrEqual(-1.25);
      expect([1, 2]).toContain(value.i);
      expect(value.z).toBeNull();
      const list = value.a as number[];
      expect(list.length).toBeGreaterThanOrEqual(4);
      expect(list.length).toBeLessThanOrEqual(6);
      for (const n of list) expect(n % 5 === 0 && n >= 7 && n <= 40).toBe(true);
      expect(value.o).toEqual({ deep: { deeper: 'x' } });
      expect(value.c).toBe(42);
      expect([1, 'two', null]).toContain(value.e);
      const tags = (sampleJson(SCHEMAS['unique items and tuples'], seed) as { tags: string[] }).tags;
      expect(new Set(tags).size).toBe(tags.length);
      expect([...tags].sort()).toEqual(['a', 'b', 'c']);
    }
  });

  it('prefers a non-null branch and fills every declared property', () => {
    const value = sampleJson(SCHEMAS['nullable union and lists of types'], 'x') as Record<string, unknown>;
    expect(typeof value.maybe).toBe('string');
    expect([10, 11, 12]).toContain(value.either);
    const weather = sampleJson(SCHEMAS['weather tool'], 'x') as Record<string, unknown>;
    expect(Object.keys(weather)).toEqual(['location', 'unit', 'days']);
  });

  it('ends recursive schemas', () => {
    const tree: Schema = {
      $ref: '#/$defs/node',
      $defs: { node: { type: 'object', properties: { label: { type: 'string' }, children: { type: 'array', items: { $ref: '#/$defs/node' } } }, required: ['label'] } },
    };
    for (const seed of SEEDS.slice(0, 10)) {
      const value = sampleJson(tree, seed);
      expect(JSON.stringify(value).length).toBeLessThan(1_000_000);
      expect(value).toHaveProperty('label');
    }
  });

  it('reads true, {} and an unknown shape as "anything" (a string)', () => {
    expect(typeof sampleJson(true, 's')).toBe('string');
    expect(typeof sampleJson({}, 's')).toBe('string');
  });
});

describe('sampleArguments', () => {
  it('always gives an object: {} without parameters or for a schema that is not an object', () => {
    expect(sampleArguments(undefined, 's')).toEqual({});
    expect(sampleArguments(null, 's')).toEqual({});
    expect(sampleArguments({ type: 'string' }, 's')).toEqual({});
    expect(sampleArguments({ type: 'object', properties: {} }, 's')).toEqual({});
    const args = sampleArguments(SCHEMAS['weather tool'], 's');
    expectValid(SCHEMAS['weather tool'] as Schema, args);
    expect(typeof args.location).toBe('string');
  });
});
