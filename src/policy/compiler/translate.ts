// TypeScript -> C for the policy subset. Reads the module's source with the TypeScript
// compiler API, finds its definePolicy({...}) call and translates each decision function of
// a known family (hooks.ts) into a C function, statement by statement, with #line
// directives so that clang's diagnostics and the verifier's log name lines of the .ts file.
// Anything outside the subset is an error at its TypeScript line saying what is allowed.
//
// The subset (docs/policies.md): integers (signed 64-bit in C), + - * %, Math.floor(a / b),
// Math.min, Math.max, comparisons, && || !, bit operators, ?:, const/let, assignments,
// if/else, switch, for loops whose bound the verifier can see, return; parameter reads
// through the context argument (p.chunk, p.backings) and === against a choice's names;
// string tests on a path argument (s.startsWith(t), s.endsWith(t), s === t, with t a
// literal or a rule's pattern); for (const r of p.rules) over a rules parameter.
import { createRequire } from 'node:module';
import type * as TS from 'typescript';
import type { HookSignature } from './hooks.ts';
import { ACCESS_OPS, errno } from '../lang/define.ts';

export interface CompileDiagnostic {
  file: string;
  line: number;
  column: number;
  message: string;
}

// The compiler API is loaded on first use: the daemon and the mount path import this
// module's neighbours without paying for TypeScript's 9 MB.
let ts: typeof TS;
function typescript(): typeof TS {
  ts ??= createRequire(import.meta.url)('typescript') as typeof TS;
  return ts;
}

export class PolicyCompileError extends Error {
  constructor(readonly diagnostics: CompileDiagnostic[]) {
    super(diagnostics.map((d) => `${d.file}:${d.line}:${d.column}: ${d.message}`).join('\n'));
    this.name = 'PolicyCompileError';
  }
}

/** A parameter as the translator sees it: its C global and, for a choice, its enum names. */
export interface ParamInfo {
  name: string;
  c: string;
  choices?: { value: string; c: string }[];
  /** A rules parameter: an array of struct policy_rule, and its length in `${c}_len`. */
  rules?: boolean;
  /** An operations parameter: a bit mask of FUSE opcodes, asked with p.x.includes(op). */
  ops?: readonly string[];
  /** A string parameter: bytes in `${c}`, their length in `${c}_len`. */
  string?: boolean;
}

export interface FoundFunction {
  family: string;
  hook: string;
  node: TS.FunctionLikeDeclaration;
}

const SUBSET = 'integers, + - * %, Math.floor(a / b), Math.min/max, comparisons, && || !, bit operators, ?:, const/let, if/else, switch, bounded for loops, for (const r of p.rules), string tests (startsWith, endsWith, ===), return';

/** Bytes a string literal in a policy function may have (the C helpers' loop bound). */
export const LITERAL_MAX = 255;

const C_KEYWORDS = new Set(('auto break case char const continue default do double else enum extern float for goto if inline int long ' +
  'register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while bool true false ' +
  'seg asm typeof').split(' '));

export class Translator {
  readonly diagnostics: CompileDiagnostic[] = [];
  /** The string literals the functions test with (the native check draws paths around them). */
  readonly literals = new Set<string>();
  readonly sf: TS.SourceFile;

  constructor(readonly file: string, text: string, public params: ParamInfo[] = []) {
    typescript();
    this.sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  }

  error(node: TS.Node, message: string): void {
    const { line, character } = this.sf.getLineAndCharacterOfPosition(node.getStart(this.sf));
    this.diagnostics.push({ file: this.file, line: line + 1, column: character + 1, message });
  }

  /** The comments written just before `node`, as lines of text (the module's own words, carried into the C). */
  comments(node: TS.Node): string[] {
    const ranges = ts.getLeadingCommentRanges(this.sf.text, node.getFullStart()) ?? [];
    return ranges.flatMap((r) => {
      const raw = this.sf.text.slice(r.pos, r.end);
      const body = r.kind === ts.SyntaxKind.SingleLineCommentTrivia ? [raw.replace(/^\/\/\s?/, '')]
        : raw.replace(/^\/\*+\s?/, '').replace(/\s*\*+\/$/, '').split('\n').map((l) => l.replace(/^\s*\*\s?/, ''));
      return body.map((l) => l.replace(/\*\//g, '* /').trimEnd());
    });
  }

  line(node: TS.Node): number {
    return this.sf.getLineAndCharacterOfPosition(node.getStart(this.sf)).line + 1;
  }

  /** The object literal passed to definePolicy(), or undefined (with an error). */
  definition(): TS.ObjectLiteralExpression | undefined {
    const calls: TS.CallExpression[] = [];
    const visit = (n: TS.Node): void => {
      if (ts.isCallExpression(n)) {
        const callee = n.expression;
        const name = ts.isIdentifier(callee) ? callee.text : ts.isPropertyAccessExpression(callee) ? callee.name.text : '';
        if (name === 'definePolicy') calls.push(n);
      }
      ts.forEachChild(n, visit);
    };
    visit(this.sf);
    if (calls.length !== 1) {
      this.diagnostics.push({ file: this.file, line: 1, column: 1, message: calls.length ? `${calls.length} definePolicy() calls: a policy module defines one policy` : 'no definePolicy({ ... }) call: a policy module exports one (docs/policies.md)' });
      return undefined;
    }
    const arg = calls[0]!.arguments[0];
    if (!arg || !ts.isObjectLiteralExpression(arg)) {
      this.error(calls[0]!, 'definePolicy() takes the policy as an object literal written in place, so its functions can be compiled');
      return undefined;
    }
    return arg;
  }

  /** The property `name` of the definition, if written. */
  property(def: TS.ObjectLiteralExpression, name: string): TS.ObjectLiteralElementLike | undefined {
    return def.properties.find((p) => p.name && (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name)) && p.name.text === name);
  }

  /**
   * A data field of the definition (name, summary, backings, params) evaluated without
   * running the module: literals, objects, arrays and param.size/int/choice({...}) calls.
   */
  data(e: TS.Expression, what: string): unknown {
    const bad = (n: TS.Node) => {
      this.error(n, `${what}: write it with literal values (strings, numbers, objects, arrays, param.size/int/choice/rules/ops/string({...})), so fuse-kfunc can read it without running the module`);
      return undefined;
    };
    if (ts.isParenthesizedExpression(e) || ts.isAsExpression(e) || ts.isSatisfiesExpression(e)) return this.data(e.expression, what);
    if (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) return e.text;
    if (ts.isNumericLiteral(e)) return Number(e.text);
    if (ts.isPrefixUnaryExpression(e) && e.operator === ts.SyntaxKind.MinusToken && ts.isNumericLiteral(e.operand)) return -Number(e.operand.text);
    if (e.kind === ts.SyntaxKind.TrueKeyword) return true;
    if (e.kind === ts.SyntaxKind.FalseKeyword) return false;
    if (ts.isArrayLiteralExpression(e)) return e.elements.map((x) => this.data(x, what));
    if (ts.isObjectLiteralExpression(e)) {
      const o: Record<string, unknown> = {};
      for (const p of e.properties) {
        if (!ts.isPropertyAssignment(p) || !p.name || !(ts.isIdentifier(p.name) || ts.isStringLiteral(p.name))) return bad(p);
        o[p.name.text] = this.data(p.initializer, `${what}.${p.name.text}`);
      }
      return o;
    }
    if (ts.isCallExpression(e) && ts.isPropertyAccessExpression(e.expression) && ts.isIdentifier(e.expression.expression) &&
      e.expression.expression.text === 'param' && ['size', 'int', 'choice', 'rules', 'ops', 'string'].includes(e.expression.name.text) && e.arguments.length === 1) {
      const o = this.data(e.arguments[0]!, what);
      return o && typeof o === 'object' ? { kind: e.expression.name.text, ...o } : undefined;
    }
    return bad(e);
  }

  /**
   * A family's functions as one JavaScript object expression: the module's own text with
   * the types stripped by TypeScript, which the userspace runtime evaluates. The translation
   * to C has checked that they read nothing outside themselves.
   */
  javascript(prop: TS.ObjectLiteralElementLike): string {
    const init = (prop as TS.PropertyAssignment).initializer;
    const out = ts.transpileModule(`(${init.getText(this.sf)})`, { compilerOptions: { target: ts.ScriptTarget.ES2022, removeComments: false }, reportDiagnostics: false });
    return out.outputText.trim().replace(/;$/, '');
  }

  /** The functions of family `family` in the definition. */
  functionsOf(def: TS.ObjectLiteralExpression, family: string, hooks: Record<string, HookSignature>): FoundFunction[] {
    const prop = this.property(def, family);
    if (!prop) return [];
    const obj = ts.isPropertyAssignment(prop) ? prop.initializer : undefined;
    if (!obj || !ts.isObjectLiteralExpression(obj)) {
      this.error(prop, `${family}: write its functions in place, as an object literal { ${Object.keys(hooks).join(', ')} }`);
      return [];
    }
    const out: FoundFunction[] = [];
    for (const p of obj.properties) {
      const name = p.name && (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name)) ? p.name.text : undefined;
      if (!name || !Object.hasOwn(hooks, name)) {
        this.error(p, `${family} has no function "${name ?? '?'}": its functions are ${Object.keys(hooks).join(', ')}`);
        continue;
      }
      let fn: TS.FunctionLikeDeclaration | undefined;
      if (ts.isMethodDeclaration(p)) fn = p;
      else if (ts.isPropertyAssignment(p) && (ts.isArrowFunction(p.initializer) || ts.isFunctionExpression(p.initializer))) fn = p.initializer;
      if (!fn) {
        this.error(p, `${family}.${name}: write the function here (a method or an arrow function), not a reference to one`);
        continue;
      }
      out.push({ family, hook: name, node: fn });
    }
    for (const h of Object.keys(hooks)) {
      if (!out.some((f) => f.hook === h)) this.error(prop, `${family} needs the function ${h}(${[...hooks[h]!.args, 'p'].join(', ')})`);
    }
    return out;
  }

  /** One decision function as C. */
  translateFunction(f: FoundFunction, sig: HookSignature): string {
    return new FunctionTranslator(this, f, sig).emit();
  }
}

interface Local {
  c: string;
  mutable: boolean;
  /** A string argument: its bytes are `c`, its length `${c}_len`. */
  string?: boolean;
  /** The variable of a for-of over a rules parameter: the index into it, and the parameter. */
  rule?: ParamInfo;
  /** An operation argument: a FUSE opcode, compared with the operations' names. */
  op?: boolean;
}

/** A string operand in C: a pointer and a length in bytes. */
interface CString {
  ptr: string;
  len: string;
}

class FunctionTranslator {
  private scopes: Map<string, Local>[] = [new Map()];
  private ctxName: string | undefined;
  private out: string[] = [];
  private lastLine = -1;
  private loopVars = new Set<string>();
  private readonly what: string;

  constructor(private t: Translator, private f: FoundFunction, private sig: HookSignature) {
    this.what = `${f.family}.${f.hook}`;
  }

  private cName(name: string): string {
    return C_KEYWORDS.has(name) || /^(policy_|param_|__)/.test(name) ? `${name}_` : name;
  }

  private declare(node: TS.Node, name: string, mutable: boolean, extra: Partial<Local> = {}): string {
    for (const s of this.scopes) {
      if (s.has(name)) this.t.error(node, `"${name}" is declared twice in ${this.what}: give it another name`);
    }
    const c = this.cName(name);
    this.scopes[this.scopes.length - 1]!.set(name, { c, mutable, ...extra });
    return c;
  }

  private lookup(name: string): Local | undefined {
    for (let i = this.scopes.length - 1; i >= 0; i--) {
      const l = this.scopes[i]!.get(name);
      if (l) return l;
    }
    return undefined;
  }

  private lineDirective(node: TS.Node): void {
    const l = this.t.line(node);
    if (l === this.lastLine) return;
    this.out.push(`#line ${l} ${JSON.stringify(this.t.file)}`);
    this.lastLine = l;
  }

  private push(depth: number, text: string): void {
    this.out.push(`${'\t'.repeat(depth)}${text}`);
  }

  /** The module's comments before `node`, as a C comment (kernel style when several lines). */
  private comment(node: TS.Node, depth: number): void {
    const lines = this.t.comments(node).filter((l, i, a) => l || (i > 0 && i < a.length - 1));
    if (!lines.length) return;
    const tab = '\t'.repeat(depth);
    if (lines.length === 1) this.out.push(`${tab}/* ${lines[0]} */`);
    else this.out.push(`${tab}/*`, ...lines.map((l) => `${tab} *${l ? ` ${l}` : ''}`), `${tab} */`);
  }

  emit(): string {
    const fn = this.f.node;
    const params = fn.parameters;
    const n = this.sig.args.length;
    if (params.length > n + 1) this.t.error(params[n + 1]!, `${this.what} takes (${[...this.sig.args, 'p'].join(', ')}): ${params.length} parameters is too many`);
    const cArgs: string[] = [];
    params.forEach((p, i) => {
      if (!ts.isIdentifier(p.name)) {
        this.t.error(p, `${this.what}: name the parameter (no destructuring); read the context's fields as p.name`);
        return;
      }
      if (p.initializer || p.dotDotDotToken) this.t.error(p, `${this.what}: parameters take no default values or rest syntax`);
      if (i === n) this.ctxName = p.name.text;
      else if (i < n) cArgs[i] = this.declare(p, p.name.text, !this.isStringArg(i) && !this.isOpArg(i), { string: this.isStringArg(i), op: this.isOpArg(i) });
    });
    for (let i = 0; i < n; i++) cArgs[i] ??= `${this.sig.args[i]}_unused`;
    const cParams = cArgs.map((a, i) => (this.isStringArg(i) ? `const char *${a}, __s64 ${a}_len` : `__s64 ${a}`));
    if (this.sig.returns === 'segment') cParams.push('struct policy_segment *seg');
    const ret = this.sig.returns === 'segment' ? 'int' : '__s64';
    this.comment(ts.isMethodDeclaration(fn) ? fn : fn.parent, 0);
    this.lineDirective(fn);
    this.out.push(`static __always_inline ${this.sig.daemonOnly ? '__attribute__((unused)) ' : ''}${ret} ${this.sig.c}(${cParams.join(', ')})`);
    this.out.push('{');
    const body = fn.body;
    if (!body) {
      this.t.error(fn, `${this.what} has no body`);
    } else if (ts.isBlock(body)) {
      for (const s of body.statements) this.statement(s, 1);
      if (!this.returnsOnEveryPath(body)) this.t.error(fn, `not every path of ${this.what} returns: end it with a return`);
    } else {
      this.lineDirective(body);
      this.ret(body, body, 1);
    }
    this.out.push('}');
    return this.out.join('\n');
  }

  private isOpArg(i: number): boolean {
    return !!this.sig.ops?.includes(this.sig.args[i]!);
  }

  /** The C constant of an operation's name written in place ('write' -> FUSE_OP_WRITE). */
  private opConstant(e: TS.Expression): string {
    const x = skipParens(e);
    if (!ts.isStringLiteral(x) || !(ACCESS_OPS as readonly string[]).includes(x.text)) {
      this.t.error(e, `an operation is one of ${ACCESS_OPS.map((o) => `'${o}'`).join(', ')}`);
      return '0';
    }
    return `FUSE_OP_${x.text.toUpperCase()}`;
  }

  /** Whether `e` is an operation argument. */
  private isOp(e: TS.Expression): boolean {
    const x = skipParens(e);
    return ts.isIdentifier(x) && !!this.lookup(x.text)?.op;
  }

  private isStringArg(i: number): boolean {
    return !!this.sig.strings?.includes(this.sig.args[i]!);
  }

  private returnsOnEveryPath(s: TS.Statement): boolean {
    if (ts.isReturnStatement(s)) return true;
    if (ts.isBlock(s)) return s.statements.length > 0 && this.returnsOnEveryPath(s.statements[s.statements.length - 1]!);
    if (ts.isIfStatement(s)) return !!s.elseStatement && this.returnsOnEveryPath(s.thenStatement) && this.returnsOnEveryPath(s.elseStatement);
    if (ts.isSwitchStatement(s)) {
      const clauses = s.caseBlock.clauses;
      if (!clauses.some((c) => ts.isDefaultClause(c))) return false;
      const last = clauses[clauses.length - 1]!;
      return last.statements.length > 0 && this.returnsOnEveryPath(last.statements[last.statements.length - 1]!) &&
        clauses.every((c) => c.statements.length === 0 || this.returnsOnEveryPath(c.statements[c.statements.length - 1]!));
    }
    return false;
  }

  private block(s: TS.Statement, depth: number): void {
    this.scopes.push(new Map());
    if (ts.isBlock(s)) for (const x of s.statements) this.statement(x, depth);
    else this.statement(s, depth);
    this.scopes.pop();
  }

  private statement(s: TS.Statement, depth: number): void {
    this.comment(s, depth);
    this.lineDirective(s);
    if (ts.isVariableStatement(s)) {
      const flags = s.declarationList.flags;
      if (!(flags & (ts.NodeFlags.Let | ts.NodeFlags.Const))) this.t.error(s, 'declare variables with const or let, not var');
      for (const d of s.declarationList.declarations) {
        if (!ts.isIdentifier(d.name)) {
          this.t.error(d, 'no destructuring in a policy function: declare one variable at a time');
          continue;
        }
        if (!d.initializer) {
          this.t.error(d, `give "${d.name.text}" a value where it is declared`);
          continue;
        }
        const init = this.expr(d.initializer);
        const c = this.declare(d, d.name.text, !!(flags & ts.NodeFlags.Let));
        this.push(depth, `__s64 ${c} = ${init};`);
      }
      return;
    }
    if (ts.isExpressionStatement(s)) {
      this.push(depth, `${this.assignment(s.expression)};`);
      return;
    }
    if (ts.isIfStatement(s)) {
      this.push(depth, `if (${this.expr(s.expression)}) {`);
      this.block(s.thenStatement, depth + 1);
      let e = s.elseStatement;
      while (e && ts.isIfStatement(e)) {
        this.lineDirective(e);
        this.push(depth, `} else if (${this.expr(e.expression)}) {`);
        this.block(e.thenStatement, depth + 1);
        e = e.elseStatement;
      }
      if (e) {
        this.push(depth, '} else {');
        this.block(e, depth + 1);
      }
      this.push(depth, '}');
      return;
    }
    if (ts.isReturnStatement(s)) {
      if (!s.expression) {
        this.t.error(s, `${this.what} returns a value: ${this.sig.returns === 'segment' ? `return { ${this.sig.fields!.join(', ')} }` : 'return a number'}`);
        return;
      }
      this.ret(s.expression, s, depth);
      return;
    }
    if (ts.isBlock(s)) {
      this.push(depth, '{');
      this.block(s, depth + 1);
      this.push(depth, '}');
      return;
    }
    if (ts.isForStatement(s)) {
      this.forLoop(s, depth);
      return;
    }
    if (ts.isSwitchStatement(s)) {
      this.switchStatement(s, depth);
      return;
    }
    if (ts.isBreakStatement(s) || ts.isContinueStatement(s)) {
      if (s.label) this.t.error(s, 'no labels: break and continue leave the innermost loop or switch');
      this.push(depth, ts.isBreakStatement(s) ? 'break;' : 'continue;');
      return;
    }
    if (ts.isWhileStatement(s) || ts.isDoStatement(s)) {
      this.t.error(s, 'no while loops: write for (let i = 0; i < BOUND; i++) with BOUND a number, a parameter or p.backings, so the verifier can see the loop end');
      return;
    }
    if (ts.isForOfStatement(s)) {
      this.forOf(s, depth);
      return;
    }
    if (ts.isForInStatement(s)) {
      this.t.error(s, 'no for-of/for-in: write for (let i = 0; i < BOUND; i++)');
      return;
    }
    if (ts.isFunctionDeclaration(s)) {
      this.t.error(s, 'no nested functions: a policy function is one C function; write the code in place');
      return;
    }
    this.t.error(s, `this statement is outside the policy subset (${SUBSET})`);
  }

  private ret(e: TS.Expression, at: TS.Node, depth: number): void {
    if (this.sig.returns === 'scalar') {
      this.push(depth, `return ${this.expr(e)};`);
      return;
    }
    const lit = skipParens(e);
    if (!ts.isObjectLiteralExpression(lit)) {
      this.t.error(e, `${this.what} returns { ${this.sig.fields!.join(', ')} } written in place`);
      return;
    }
    const fields = new Map<string, string>();
    for (const p of lit.properties) {
      const name = p.name && ts.isIdentifier(p.name) ? p.name.text : undefined;
      if (!name || !this.sig.fields!.includes(name)) {
        this.t.error(p, `${this.what} returns the fields ${this.sig.fields!.join(', ')}; "${name ?? '?'}" is not one of them`);
        continue;
      }
      if (ts.isShorthandPropertyAssignment(p)) fields.set(name, this.identifier(p.name));
      else if (ts.isPropertyAssignment(p)) fields.set(name, this.expr(p.initializer));
      else this.t.error(p, `${this.what}: give ${name} a value`);
    }
    const missing = this.sig.fields!.filter((f) => !fields.has(f));
    if (missing.length) this.t.error(at, `${this.what} returns ${missing.join(' and ')} too`);
    for (const f of this.sig.fields!) if (fields.has(f)) this.push(depth, `seg->${f} = ${fields.get(f)};`);
    this.push(depth, 'return 0;');
  }

  private forLoop(s: TS.ForStatement, depth: number): void {
    const init = s.initializer;
    const bad = () => this.t.error(s, 'a for loop is for (let i = START; i < BOUND; i++) with BOUND a number, a parameter or p.backings, so the verifier can see it end');
    if (!init || !ts.isVariableDeclarationList(init) || init.declarations.length !== 1 || !(init.flags & ts.NodeFlags.Let)) return bad();
    const d = init.declarations[0]!;
    if (!ts.isIdentifier(d.name) || !d.initializer || !s.condition || !s.incrementor) return bad();
    const v = d.name.text;
    const cond = skipParens(s.condition);
    if (!ts.isBinaryExpression(cond) || !ts.isIdentifier(cond.left) || cond.left.text !== v ||
      ![ts.SyntaxKind.LessThanToken, ts.SyntaxKind.LessThanEqualsToken].includes(cond.operatorToken.kind) || !this.isKnownBound(cond.right)) return bad();
    const inc = s.incrementor;
    const incOk = (ts.isPostfixUnaryExpression(inc) || ts.isPrefixUnaryExpression(inc)) && inc.operator === ts.SyntaxKind.PlusPlusToken &&
      ts.isIdentifier(inc.operand) && inc.operand.text === v;
    if (!incOk) return bad();
    const start = this.expr(d.initializer);
    this.scopes.push(new Map());
    const c = this.declare(d, v, false);
    this.loopVars.add(v);
    this.push(depth, `for (__s64 ${c} = ${start}; ${c} ${cond.operatorToken.getText(this.t.sf)} ${this.expr(cond.right)}; ${c}++) {`);
    this.block(s.statement, depth + 1);
    this.push(depth, '}');
    this.loopVars.delete(v);
    this.scopes.pop();
  }

  /** for (const r of p.rules): the rules parameter's entries, at most RULES_MAX of them. */
  private forOf(s: TS.ForOfStatement, depth: number): void {
    const init = s.initializer;
    const rules = this.rulesParam(s.expression);
    if (!rules || !ts.isVariableDeclarationList(init) || init.declarations.length !== 1 || !ts.isIdentifier(init.declarations[0]!.name) || !(init.flags & ts.NodeFlags.Const)) {
      this.t.error(s, `for-of walks a rules parameter: for (const r of ${this.ctxName ?? 'p'}.rules) { ... r.match ... r.to ... }; other loops are for (let i = 0; i < BOUND; i++)`);
      return;
    }
    const d = init.declarations[0]!;
    this.scopes.push(new Map());
    const c = this.declare(d, (d.name as TS.Identifier).text, false, { rule: rules });
    this.push(depth, `for (__s64 ${c} = 0; ${c} < POLICY_RULES_MAX && ${c} < ${rules.c}_len; ${c}++) {`);
    this.block(s.statement, depth + 1);
    this.push(depth, '}');
    this.scopes.pop();
  }

  /** The operations parameter `e` reads (p.deny), if it is one. */
  private opsParam(e: TS.Expression): ParamInfo | undefined {
    const x = skipParens(e);
    if (!ts.isPropertyAccessExpression(x) || !ts.isIdentifier(x.expression) || x.expression.text !== this.ctxName) return undefined;
    const p = this.t.params.find((q) => q.name === x.name.text);
    return p?.ops ? p : undefined;
  }

  /** The rules parameter `e` reads (p.rules), if it is one. */
  private rulesParam(e: TS.Expression): ParamInfo | undefined {
    const x = skipParens(e);
    if (!ts.isPropertyAccessExpression(x) || !ts.isIdentifier(x.expression) || x.expression.text !== this.ctxName) return undefined;
    const p = this.t.params.find((q) => q.name === x.name.text);
    return p?.rules ? p : undefined;
  }

  /** `e` as a string operand, or undefined when it is not a string. */
  private str(e: TS.Expression): CString | undefined {
    const x = skipParens(e);
    if (ts.isStringLiteral(x) || ts.isNoSubstitutionTemplateLiteral(x)) {
      const bytes = Buffer.from(x.text);
      if (bytes.length > LITERAL_MAX) this.t.error(x, `a string in a policy function has at most ${LITERAL_MAX} bytes`);
      this.t.literals.add(x.text);
      return { ptr: cLiteral(bytes), len: String(bytes.length) };
    }
    if (ts.isIdentifier(x)) {
      const l = this.lookup(x.text);
      return l?.string ? { ptr: l.c, len: `${l.c}_len` } : undefined;
    }
    if (ts.isPropertyAccessExpression(x) && ts.isIdentifier(x.expression) && x.expression.text === this.ctxName && !this.lookup(this.ctxName)) {
      const p = this.t.params.find((q) => q.name === x.name.text);
      if (p?.string) return { ptr: p.c, len: `${p.c}_len` };
    }
    if (ts.isPropertyAccessExpression(x) && ts.isIdentifier(x.expression) && x.name.text === 'match') {
      const l = this.lookup(x.expression.text);
      if (l?.rule) return { ptr: `${l.rule.c}[${l.c}].match`, len: `${l.rule.c}[${l.c}].len` };
    }
    return undefined;
  }

  /** A pattern (the second string of a test): a literal or a rule's pattern, never a path. */
  private pattern(e: TS.Expression, what: string): CString {
    const x = skipParens(e);
    const s = this.str(x);
    if (!s || (ts.isIdentifier(x))) {
      this.t.error(e, `${what} compares with a string written here, a rule's pattern (r.match) or a string parameter: '.log', 'logs/', r.match, p.dir`);
      return { ptr: '""', len: '0' };
    }
    return s;
  }

  private isKnownBound(e: TS.Expression): boolean {
    const x = skipParens(e);
    if (ts.isNumericLiteral(x)) return true;
    return ts.isPropertyAccessExpression(x) && ts.isIdentifier(x.expression) && x.expression.text === this.ctxName;
  }

  private switchStatement(s: TS.SwitchStatement, depth: number): void {
    const choice = this.choiceOf(s.expression);
    this.push(depth, `switch (${choice ? choice.c : this.expr(s.expression)}) {`);
    for (const clause of s.caseBlock.clauses) {
      this.lineDirective(clause);
      if (ts.isDefaultClause(clause)) this.push(depth, 'default:');
      else this.push(depth, `case ${this.caseValue(clause.expression, choice)}:`);
      this.scopes.push(new Map());
      for (const x of clause.statements) this.statement(x, depth + 1);
      this.scopes.pop();
    }
    this.push(depth, '}');
  }

  private caseValue(e: TS.Expression, choice: ParamInfo | undefined): string {
    if (ts.isStringLiteral(e)) {
      if (!choice) {
        this.t.error(e, 'a string case needs a switch on a choice parameter (switch (p.mode) { case \'fast\': ... })');
        return '0';
      }
      return this.choiceConstant(e, choice);
    }
    if (ts.isNumericLiteral(e) || (ts.isPrefixUnaryExpression(e) && e.operator === ts.SyntaxKind.MinusToken && ts.isNumericLiteral(e.operand))) return this.expr(e);
    this.t.error(e, 'a case is a number or, in a switch on a choice parameter, one of its names');
    return '0';
  }

  private choiceConstant(e: TS.StringLiteral, choice: ParamInfo): string {
    const c = choice.choices!.find((x) => x.value === e.text);
    if (!c) {
      this.t.error(e, `"${e.text}" is not one of ${choice.name}'s choices (${choice.choices!.map((x) => x.value).join(', ')})`);
      return '0';
    }
    return c.c;
  }

  /** The choice parameter `e` reads, if it is one. */
  private choiceOf(e: TS.Expression): ParamInfo | undefined {
    const x = skipParens(e);
    if (!ts.isPropertyAccessExpression(x) || !ts.isIdentifier(x.expression) || x.expression.text !== this.ctxName) return undefined;
    const p = this.t.params.find((q) => q.name === x.name.text);
    return p?.choices ? p : undefined;
  }

  private assignment(e: TS.Expression): string {
    if ((ts.isPostfixUnaryExpression(e) || ts.isPrefixUnaryExpression(e)) &&
      (e.operator === ts.SyntaxKind.PlusPlusToken || e.operator === ts.SyntaxKind.MinusMinusToken)) {
      const target = this.target(e.operand);
      return `${target}${e.operator === ts.SyntaxKind.PlusPlusToken ? '++' : '--'}`;
    }
    if (ts.isBinaryExpression(e)) {
      const op = e.operatorToken.kind;
      const simple: Partial<Record<TS.SyntaxKind, string>> = {
        [ts.SyntaxKind.EqualsToken]: '=', [ts.SyntaxKind.PlusEqualsToken]: '+=', [ts.SyntaxKind.MinusEqualsToken]: '-=',
        [ts.SyntaxKind.AsteriskEqualsToken]: '*=',
      };
      const bitAssign: Partial<Record<TS.SyntaxKind, string>> = {
        [ts.SyntaxKind.AmpersandEqualsToken]: 'and', [ts.SyntaxKind.BarEqualsToken]: 'or', [ts.SyntaxKind.CaretEqualsToken]: 'xor',
        [ts.SyntaxKind.LessThanLessThanEqualsToken]: 'shl', [ts.SyntaxKind.GreaterThanGreaterThanEqualsToken]: 'shr',
      };
      if (bitAssign[op]) {
        const t = this.target(e.left);
        return `${t} = policy_${bitAssign[op]}(${t}, ${this.expr(e.right)})`;
      }
      if (simple[op]) return `${this.target(e.left)} ${simple[op]} ${this.expr(e.right)}`;
      if (op === ts.SyntaxKind.PercentEqualsToken) {
        const t = this.target(e.left);
        return `${t} = policy_mod(${t}, ${this.expr(e.right)})`;
      }
      if (op === ts.SyntaxKind.SlashEqualsToken) {
        this.t.error(e, '/= divides to a fraction in TypeScript: write x = Math.floor(x / y)');
        return '0';
      }
    }
    this.t.error(e, 'an expression statement is an assignment (x = ..., x += ..., x++); anything else does nothing');
    return '0';
  }

  private target(e: TS.Expression): string {
    if (!ts.isIdentifier(e)) {
      this.t.error(e, 'only local variables can be assigned (the context and parameters are read-only)');
      return '0';
    }
    const l = this.lookup(e.text);
    if (!l) {
      this.t.error(e, `"${e.text}" is not declared in ${this.what}`);
      return e.text;
    }
    if (!l.mutable) this.t.error(e, `"${e.text}" is ${this.loopVars.has(e.text) ? 'the loop variable: the for statement alone steps it' : 'const: declare it with let to assign it'}`);
    return l.c;
  }

  private identifier(e: TS.Identifier): string {
    const l = this.lookup(e.text);
    if (l?.string) this.t.error(e, `${e.text} is a string: test it with startsWith, endsWith or ===`);
    else if (l?.op) this.t.error(e, `${e.text} is an operation: compare it (${e.text} === 'write') or ask a set (p.deny.includes(${e.text}))`);
    else if (l?.rule) this.t.error(e, `${e.text} is a rule: read ${e.text}.match (test it) and ${e.text}.to (a backing)`);
    if (l) return l.c;
    if (e.text === this.ctxName) this.t.error(e, `read the context's fields (${this.ctxName}.backings, ${this.ctxName}.<parameter>), not the context itself`);
    else if (e.text === 'undefined' || e.text === 'NaN' || e.text === 'Infinity') this.t.error(e, `${e.text} is not an integer: policy functions compute with integers only`);
    else this.t.error(e, `"${e.text}" is not declared in ${this.what}: a policy function reads its arguments, its locals and ${this.ctxName ?? 'p'}.<parameter>, nothing outside`);
    return e.text;
  }

  private expr(e: TS.Expression): string {
    if (ts.isParenthesizedExpression(e)) return `(${this.expr(e.expression)})`;
    if (ts.isAsExpression(e) || ts.isNonNullExpression(e) || ts.isTypeAssertionExpression(e) || ts.isSatisfiesExpression(e)) return this.expr(e.expression);
    if (ts.isNumericLiteral(e)) return this.number(e);
    if (e.kind === ts.SyntaxKind.TrueKeyword) return '1';
    if (e.kind === ts.SyntaxKind.FalseKeyword) return '0';
    if (ts.isIdentifier(e)) return this.identifier(e);
    if (ts.isPropertyAccessExpression(e)) return this.property(e);
    if (ts.isCallExpression(e)) return this.call(e);
    if (ts.isConditionalExpression(e)) return `${this.expr(e.condition)} ? ${this.expr(e.whenTrue)} : ${this.expr(e.whenFalse)}`;
    if (ts.isPrefixUnaryExpression(e)) {
      if (e.operator === ts.SyntaxKind.TildeToken) return `policy_not(${this.expr(e.operand)})`;
      const ops: Partial<Record<TS.SyntaxKind, string>> = { [ts.SyntaxKind.MinusToken]: '-', [ts.SyntaxKind.ExclamationToken]: '!', [ts.SyntaxKind.PlusToken]: '' };
      const op = ops[e.operator];
      if (op === undefined) {
        this.t.error(e, '++ and -- are statements here (x++;), not parts of an expression');
        return '0';
      }
      return `${op}${this.expr(e.operand)}`;
    }
    if (ts.isBinaryExpression(e)) return this.binary(e);
    if (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) {
      this.t.error(e, 'a string is only compared: with a choice parameter (p.mode === \'fast\'), an operation (op === \'write\') or tested against a path (path.endsWith(\'.log\'))');
      return '0';
    }
    this.t.error(e, `this expression is outside the policy subset (${SUBSET})`);
    return '0';
  }

  private number(e: TS.NumericLiteral): string {
    const v = Number(e.text);
    if (!Number.isSafeInteger(v)) {
      this.t.error(e, `${e.getText(this.t.sf)} is not an integer a policy can use exactly (whole numbers up to 2^53)`);
      return '0';
    }
    const text = /^0[xX]/.test(e.getText(this.t.sf)) ? e.getText(this.t.sf).replace(/_/g, '') : String(v);
    return v > 0x7fffffff ? `${text}LL` : text;
  }

  private property(e: TS.PropertyAccessExpression): string {
    if (ts.isIdentifier(e.expression) && e.expression.text === 'errno' && !this.lookup('errno')) {
      const v = (errno as Record<string, number>)[e.name.text];
      if (v === undefined) this.t.error(e.name, `errno has no ${e.name.text} (it has ${Object.keys(errno).join(', ')})`);
      return v === undefined ? '0' : `${v} /* ${e.name.text} */`;
    }
    if (ts.isIdentifier(e.expression) && this.lookup(e.expression.text)?.rule) {
      const l = this.lookup(e.expression.text)!;
      if (e.name.text === 'to') return `(__s64)${l.rule!.c}[${l.c}].to`;
      this.t.error(e, e.name.text === 'match' ? `${e.expression.text}.match is a string: test it (${e.expression.text}.match.endsWith('/')) or test a path with it (path.endsWith(${e.expression.text}.match))`
        : `a rule has match (a string) and to (a backing), not "${e.name.text}"`);
      return '0';
    }
    if (ts.isIdentifier(e.expression) && this.lookup(e.expression.text)?.string) {
      this.t.error(e, `${e.expression.text} is a string: a policy tests it with startsWith, endsWith or ===, nothing else (its length in TypeScript counts UTF-16 units, not the bytes the kernel sees)`);
      return '0';
    }
    if (ts.isIdentifier(e.expression) && e.expression.text === this.ctxName && !this.lookup(this.ctxName)) {
      const name = e.name.text;
      if (name === 'backings') return 'policy_backings';
      const p = this.t.params.find((q) => q.name === name);
      if (p) {
        if (p.choices) this.t.error(e, `${name} is a choice: compare it with one of its names (${this.ctxName}.${name} === '${p.choices[0]!.value}')`);
        if (p.rules) this.t.error(e, `${name} is a list of rules: walk it with for (const r of ${this.ctxName}.${name})`);
        if (p.ops) this.t.error(e, `${name} is a set of operations: ask it ${this.ctxName}.${name}.includes(op)`);
        if (p.string) this.t.error(e, `${name} is a string: test a path with it (path.startsWith(${this.ctxName}.${name}))`);
        return p.c;
      }
      this.t.error(e.name, `the policy has no parameter "${name}" (it has ${[...this.t.params.map((q) => q.name), 'backings'].join(', ')})`);
      return '0';
    }
    this.t.error(e, `only the context's fields can be read (${this.ctxName ?? 'p'}.backings, ${this.ctxName ?? 'p'}.<parameter>)`);
    return '0';
  }

  private call(e: TS.CallExpression): string {
    const callee = e.expression;
    const math = ts.isPropertyAccessExpression(callee) && ts.isIdentifier(callee.expression) && callee.expression.text === 'Math' ? callee.name.text : undefined;
    if (math === 'floor') {
      const arg = e.arguments.length === 1 ? skipParens(e.arguments[0]!) : undefined;
      if (arg && ts.isBinaryExpression(arg) && arg.operatorToken.kind === ts.SyntaxKind.SlashToken) {
        return `policy_div(${this.expr(skipParens(arg.left))}, ${this.expr(skipParens(arg.right))})`;
      }
      this.t.error(e, 'Math.floor takes one division, Math.floor(a / b): the integer quotient');
      return '0';
    }
    if (math === 'min' || math === 'max') {
      if (e.arguments.length < 2) {
        this.t.error(e, `Math.${math} takes two or more numbers`);
        return '0';
      }
      const args = e.arguments.map((a) => this.expr(a));
      return args.slice(1).reduce((acc, a) => `policy_${math}(${acc}, ${a})`, args[0]!);
    }
    if (ts.isPropertyAccessExpression(callee) && callee.name.text === 'includes') {
      const ops = this.opsParam(callee.expression);
      if (ops && e.arguments.length === 1) {
        const arg = e.arguments[0]!;
        const op = this.isOp(arg) ? this.lookup((skipParens(arg) as TS.Identifier).text)!.c : this.opConstant(arg);
        return `policy_op_in(${ops.c}, ${op})`;
      }
      this.t.error(e, this.str(callee.expression) ? 'a string is tested with startsWith, endsWith or ===: includes is not in the subset (on strings, startsWith and endsWith)'
        : `includes asks an operations parameter about one operation: ${this.ctxName ?? 'p'}.deny.includes(op)`);
      return '0';
    }
    if (ts.isPropertyAccessExpression(callee) && (callee.name.text === 'startsWith' || callee.name.text === 'endsWith')) {
      const subject = this.str(callee.expression);
      if (!subject) {
        this.t.error(callee.expression, `${callee.name.text} tests a string: a path argument, a rule's pattern (r.match) or a string parameter`);
        return '0';
      }
      if (e.arguments.length !== 1) {
        this.t.error(e, `${callee.name.text} takes one string here (no position argument)`);
        return '0';
      }
      const t = this.pattern(e.arguments[0]!, callee.name.text);
      return `policy_str_${callee.name.text === 'startsWith' ? 'prefix' : 'suffix'}(${subject.ptr}, ${subject.len}, ${t.ptr}, ${t.len})`;
    }
    this.t.error(e, 'a policy function calls only Math.floor(a / b), Math.min, Math.max and, on strings, startsWith and endsWith: write other code in place');
    return '0';
  }

  private binary(e: TS.BinaryExpression): string {
    const k = ts.SyntaxKind;
    const op = e.operatorToken.kind;
    if (op === k.EqualsEqualsEqualsToken || op === k.ExclamationEqualsEqualsToken || op === k.EqualsEqualsToken || op === k.ExclamationEqualsToken) {
      const c = op === k.EqualsEqualsEqualsToken || op === k.EqualsEqualsToken ? '==' : '!=';
      const choice = this.choiceOf(e.left) ?? this.choiceOf(e.right);
      if (choice) {
        const [param, str] = this.choiceOf(e.left) ? [e.left, e.right] : [e.right, e.left];
        if (!ts.isStringLiteral(str)) {
          this.t.error(str, `compare ${choice.name} with one of its names (${choice.choices!.map((x) => `'${x.value}'`).join(', ')})`);
          return '0';
        }
        return `${choice.c} ${c} ${this.choiceConstant(str, choice)}`;
      }
      if (this.isOp(e.left) || this.isOp(e.right)) {
        const [opSide, other] = this.isOp(e.left) ? [e.left, e.right] : [e.right, e.left];
        return `${this.lookup((skipParens(opSide) as TS.Identifier).text)!.c} ${c} ${this.opConstant(other)}`;
      }
      const ls = this.str(e.left);
      const rs = this.str(e.right);
      if (ls || rs) {
        if (!ls || !rs) {
          this.t.error(e, 'a string is compared with a string (path === \'README\'), and a number with a number');
          return '0';
        }
        const leftLiteral = ts.isStringLiteral(skipParens(e.left)) || ts.isNoSubstitutionTemplateLiteral(skipParens(e.left));
        const [subject, pat] = leftLiteral ? [rs, e.left] : [ls, e.right];
        const t = this.pattern(pat, '===');
        return `${c === '==' ? '' : '!'}policy_str_eq(${subject.ptr}, ${subject.len}, ${t.ptr}, ${t.len})`;
      }
      return `${this.expr(e.left)} ${c} ${this.expr(e.right)}`;
    }
    if (op === k.SlashToken) {
      this.t.error(e, '/ divides to a fraction in TypeScript: write Math.floor(a / b) for the integer quotient');
      return '0';
    }
    if (op === k.PercentToken) return `policy_mod(${this.expr(skipParens(e.left))}, ${this.expr(skipParens(e.right))})`;
    const ops: Partial<Record<TS.SyntaxKind, string>> = {
      [k.PlusToken]: '+', [k.MinusToken]: '-', [k.AsteriskToken]: '*', [k.LessThanToken]: '<', [k.LessThanEqualsToken]: '<=',
      [k.GreaterThanToken]: '>', [k.GreaterThanEqualsToken]: '>=', [k.AmpersandAmpersandToken]: '&&', [k.BarBarToken]: '||',
    };
    // Bit operators with TypeScript's 32-bit semantics (policy_math.h).
    const bits: Partial<Record<TS.SyntaxKind, string>> = {
      [k.AmpersandToken]: 'and', [k.BarToken]: 'or', [k.CaretToken]: 'xor', [k.LessThanLessThanToken]: 'shl', [k.GreaterThanGreaterThanToken]: 'shr',
    };
    if (bits[op]) return `policy_${bits[op]}(${this.expr(skipParens(e.left))}, ${this.expr(skipParens(e.right))})`;
    const c = ops[op];
    if (!c) {
      const why = op === k.AsteriskAsteriskToken ? '** is not in the subset: multiply' : op === k.GreaterThanGreaterThanGreaterThanToken
        ? '>>> works on 32 bits in TypeScript: use >> on non-negative numbers' : `"${e.operatorToken.getText(this.t.sf)}" is not in the policy subset`;
      if (op >= k.FirstAssignment && op <= k.LastAssignment) this.t.error(e, 'an assignment is a statement of its own, not part of an expression');
      else this.t.error(e.operatorToken, why);
      return '0';
    }
    return `${this.expr(e.left)} ${c} ${this.expr(e.right)}`;
  }
}

/** Bytes as a C string literal: printable ASCII as it is, the rest as octal escapes. */
export function cLiteral(bytes: Buffer): string {
  let out = '"';
  for (const b of bytes) {
    if (b === 0x22 || b === 0x5c) out += `\\${String.fromCharCode(b)}`;
    else if (b >= 0x20 && b < 0x7f && b !== 0x3f) out += String.fromCharCode(b); // no '?': trigraphs
    else out += `\\${b.toString(8).padStart(3, '0')}`;
  }
  return `${out}"`;
}

function skipParens(e: TS.Expression): TS.Expression {
  while (ts.isParenthesizedExpression(e)) e = e.expression;
  return e;
}
