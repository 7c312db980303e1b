import type { FastifyInstance, FastifyRequest } from 'fastify';
import secureJson from 'secure-json-parse';
import { ApiErrorCode } from '@switchyard/protocol';
import { ApiError, quoteInput } from './errors.js';

/** Methods whose requests carry no body by meaning: an empty one is fine whatever Content-Type says. */
const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);

interface Level {
  kind: 'object' | 'array';
  key?: string;
  index: number;
  expectingKey: boolean;
}

/**
 * Where a JSON text nests deeper than `maxDepth`, as a parameter path (`format.properties.a[0]`),
 * or undefined when it does not. One pass over the text, before `JSON.parse`: parsing a
 * 4 MB body of `[[[[…` costs a second of CPU, and deep values later overflow the stack of
 * every recursive reader (BullMQ's `JSON.stringify` among them).
 */
export function excessiveNesting(text: string, maxDepth: number): string | undefined {
  const stack: Level[] = [];
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (char === 0x22 /* " */) {
      const start = i;
      for (i++; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c === 0x5c /* \ */) i++;
        else if (c === 0x22) break;
      }
      const top = stack.at(-1);
      if (top?.kind === 'object' && top.expectingKey) {
        top.key = keyText(text.slice(start, i + 1));
        top.expectingKey = false;
      }
    } else if (char === 0x7b /* { */ || char === 0x5b /* [ */) {
      if (stack.length === maxDepth) return pathOf(stack) || '(root)';
      stack.push({ kind: char === 0x7b ? 'object' : 'array', index: 0, expectingKey: char === 0x7b });
    } else if (char === 0x7d /* } */ || char === 0x5d /* ] */) {
      stack.pop();
    } else if (char === 0x2c /* , */) {
      const top = stack.at(-1);
      if (top?.kind === 'array') top.index++;
      else if (top) top.expectingKey = true;
    }
  }
  return undefined;
}

function keyText(literal: string): string {
  try {
    return String(JSON.parse(literal));
  } catch {
    return literal.slice(1, -1);
  }
}

function pathOf(stack: Level[]): string {
  let path = '';
  for (const level of stack) {
    if (level.kind === 'array') path += `[${level.index}]`;
    else if (level.key !== undefined) path += path === '' ? level.key : `.${level.key}`;
  }
  return path;
}

/**
 * A request body as JSON: empty is `undefined` on bodyless methods and a 400 otherwise;
 * nesting beyond `maxDepth` is a 400 naming where; `__proto__` and `constructor.prototype`
 * keys are refused (secure-json-parse, as Fastify's own parser does).
 */
export function parseJsonBody(text: string, request: FastifyRequest, maxDepth: number): unknown {
  if (text.trim() === '') {
    if (BODYLESS_METHODS.has(request.method)) return undefined;
    throw new ApiError(ApiErrorCode.invalidJson, 'request body is empty; send a JSON object');
  }
  const deep = excessiveNesting(text, maxDepth);
  if (deep !== undefined) {
    throw new ApiError(ApiErrorCode.invalidRequest, `invalid request body: ${quoteInput(deep)}: nested deeper than ${maxDepth} levels`);
  }
  try {
    return secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (error) {
    const message = (error as Error).message;
    if (/forbidden (prototype|constructor) property/.test(message)) {
      throw new ApiError(ApiErrorCode.invalidRequest, 'invalid request body: keys named "__proto__" (or "constructor" holding "prototype") are not accepted');
    }
    throw new ApiError(ApiErrorCode.invalidJson, `request body is not valid JSON: ${quoteInput(message, 200)}`);
  }
}

/**
 * Replaces Fastify's JSON parser on `scope` with `parseJsonBody`, for `contentType`
 * (`application/json`, or `*` on the Ollama wire, whose documented `curl -d` calls send
 * `application/x-www-form-urlencoded`).
 */
export function useJsonBodyParser(scope: FastifyInstance, contentType: 'application/json' | '*', maxDepth: number): void {
  if (contentType === '*') scope.removeAllContentTypeParsers();
  else scope.removeContentTypeParser('application/json');
  scope.addContentTypeParser(contentType, { parseAs: 'string' }, (request, body, done) => {
    try {
      done(null, parseJsonBody(typeof body === 'string' ? body : body.toString('utf8'), request, maxDepth));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
}

/**
 * Any other content type: fine when the body is empty on a bodyless method (a generic client
 * sending `DELETE` with `Content-Type: text/plain`), otherwise a 415 naming the type.
 */
export function refuseOtherMediaTypes(scope: FastifyInstance): void {
  scope.addContentTypeParser('*', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text === '' && BODYLESS_METHODS.has(request.method)) {
      done(null, undefined);
      return;
    }
    done(
      new ApiError(ApiErrorCode.unsupportedMediaType, `content type ${quoteInput(request.headers['content-type'] ?? '')} is not supported; send application/json`),
      undefined,
    );
  });
}
