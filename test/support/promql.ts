/**
 * PromQL checked without a Prometheus (promtool is not on these machines): the grammar is
 * Prometheus's own (`@prometheus-io/lezer-promql`, the parser of its web UI) run strictly, so
 * a syntax error throws instead of being recovered from, and the types and argument counts are
 * checked by the UI's linter (`@prometheus-io/codemirror-promql`'s Parser: `rate()` of an
 * instant vector, a function given too many arguments…).
 *
 * Both are loaded through `require`, from their CommonJS builds: the linter's ES build imports
 * paths without extensions, which Node does not resolve, and the grammar, the linter and the
 * editor state must be one copy each (the linter finds the tree through the state's language).
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface SyntaxNode {
  name: string;
  from: number;
  to: number;
  getChild(name: string): SyntaxNode | null;
  getChildren(name: string): SyntaxNode[];
}
interface Tree {
  iterate(spec: { enter(node: { name: string; from: number; to: number; node: SyntaxNode }): boolean | void }): void;
}
interface LrParser {
  configure(config: { strict: boolean }): LrParser;
  parse(input: string): Tree;
}

const { parser } = require('@prometheus-io/lezer-promql') as { parser: LrParser };
const { Parser: Linter } = require('@prometheus-io/codemirror-promql/dist/cjs/parser/parser.js') as {
  Parser: new (state: unknown) => { analyze(): void; getDiagnostics(): Array<{ from: number; to: number; message: string }> };
};
interface EditorState {
  update(spec: object): { state: EditorState };
}
const { EditorState } = require('@codemirror/state') as { EditorState: { create(config: { doc: string; extensions: unknown }): EditorState } };
const { LRLanguage, ensureSyntaxTree, syntaxTreeAvailable } = require('@codemirror/language') as {
  LRLanguage: { define(spec: { parser: LrParser }): unknown };
  ensureSyntaxTree(state: EditorState, upto: number, timeout?: number): unknown;
  syntaxTreeAvailable(state: EditorState, upto: number): boolean;
};

const strictParser = parser.configure({ strict: true });
const promql = LRLanguage.define({ parser });

export class PromQLError extends Error {}

/** One series selector of an expression: the metric and its label matchers. */
export interface Selector {
  metric: string;
  matchers: Array<{ label: string; op: string; value: string }>;
}

export interface ParsedPromQL {
  selectors: Selector[];
  /** Labels named in `by (…)`, `without (…)`, `on (…)`, `ignoring (…)` and `group_left (…)`. */
  grouping: string[];
}

/**
 * Parses `expr` and returns its series selectors and grouping labels; throws a `PromQLError` naming where and why
 * when the expression does not parse or does not type-check.
 */
export function parsePromQL(expr: string): ParsedPromQL {
  let tree: Tree;
  try {
    tree = strictParser.parse(expr);
  } catch (error) {
    const at = /at (\d+)/.exec((error as Error).message);
    const position = at ? Number(at[1]) : 0;
    throw new PromQLError(`syntax error at ${position} (${JSON.stringify(expr.slice(position, position + 20))}) in ${quoted(expr)}`);
  }
  // An editor state parses its document within a time budget (about 20 ms), so on a busy
  // machine its tree can stop short and the linter would see half an expression: finish the
  // parse, and take it into the state with a transaction (the state's tree is fixed otherwise).
  let state = EditorState.create({ doc: expr, extensions: promql });
  if (!ensureSyntaxTree(state, expr.length, 10_000)) throw new PromQLError(`parse did not finish: ${quoted(expr)}`);
  state = state.update({}).state;
  if (!syntaxTreeAvailable(state, expr.length)) throw new PromQLError(`parse did not finish: ${quoted(expr)}`);
  const linter = new Linter(state);
  linter.analyze();
  const problems = linter.getDiagnostics();
  if (problems.length > 0) {
    throw new PromQLError(`${problems.map((problem) => `${problem.message} at ${problem.from}`).join('; ')} in ${quoted(expr)}`);
  }

  const selectors: Selector[] = [];
  const grouping = new Set<string>();
  tree.iterate({
    enter({ name, node }) {
      if (name === 'GroupingLabels') for (const label of node.getChildren('LabelName')) grouping.add(text(expr, label));
      if (name !== 'VectorSelector') return;
      const identifier = node.getChild('Identifier');
      const matchers: Selector['matchers'] = [];
      const list = node.getChild('LabelMatchers');
      for (const matcher of list?.getChildren('UnquotedLabelMatcher') ?? []) {
        const label = text(expr, matcher.getChild('LabelName'));
        const op = text(expr, matcher.getChild('MatchOp'));
        const value = JSON.parse(text(expr, matcher.getChild('StringLiteral')).replace(/^'|'$/g, '"')) as string;
        matchers.push({ label, op, value });
      }
      const byName = matchers.find((matcher) => matcher.label === '__name__' && matcher.op === '=');
      const metric = identifier ? text(expr, identifier) : byName?.value;
      if (metric === undefined) throw new PromQLError(`a selector without a metric name in ${quoted(expr)}`);
      selectors.push({ metric, matchers: matchers.filter((matcher) => matcher.label !== '__name__') });
    },
  });
  return { selectors, grouping: [...grouping] };
}

/** An expression in an error message, cut short: a message must stay readable. */
function quoted(expr: string): string {
  return JSON.stringify(expr.length > 400 ? `${expr.slice(0, 400)}…` : expr);
}

function text(expr: string, node: SyntaxNode | null): string {
  if (!node) throw new PromQLError(`unexpected tree shape in ${quoted(expr)}`);
  return expr.slice(node.from, node.to);
}

/** What a Prometheus text page says it has: each metric's type and the labels its samples carry. */
export interface Exposition {
  /** Metric family → type, as `# TYPE` says (present even when a family has no sample yet). */
  types: Map<string, string>;
  /** Series name (with `_bucket`, `_sum`, `_count`) → label names seen on its samples. */
  labels: Map<string, Set<string>>;
}

export function readExposition(pages: string[]): Exposition {
  const types = new Map<string, string>();
  const labels = new Map<string, Set<string>>();
  for (const page of pages) {
    for (const line of page.split('\n')) {
      const type = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (type) {
        types.set(type[1]!, type[2]!);
        continue;
      }
      const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+/.exec(line);
      if (!sample) continue;
      const seen = labels.get(sample[1]!) ?? new Set<string>();
      for (const pair of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) seen.add(pair[1]!);
      labels.set(sample[1]!, seen);
    }
  }
  return { types, labels };
}

/** The series names a family exposes: a histogram's `_bucket`, `_sum` and `_count`, a summary's quantiles, `_sum` and `_count`. */
export function exposedSeries(exposition: Exposition): Set<string> {
  const names = new Set<string>(exposition.labels.keys());
  for (const [name, type] of exposition.types) {
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(name + suffix);
  }
  return names;
}
