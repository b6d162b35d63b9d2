/**
 * Spots SQL that changes session-level settings (`set`, `reset`, `discard`,
 * `set_config(..., false)`), so the wire server knows which settings of a
 * connection to save and put back when the one PGlite session passes between
 * connections. `set local` and `set_config(..., true)` end with their
 * transaction, and every transaction runs on one connection, so they need nothing.
 *
 * Limits, by design: a setting changed inside a function or DO block by a
 * statement that names it only at run time is not seen; where a statement names
 * the setting through a parameter (`set_config($1, ...)`), every setting
 * Postgres reports as session-sourced is saved instead.
 */

export interface SettingChanges {
  /** Setting names (lower case) whose session value may have changed. */
  names: Set<string>;
  /** `reset all` / `discard all`: every saved setting is gone. */
  resetAll: boolean;
  /** A change to a setting whose name is only known at run time. */
  unknownNames: boolean;
}

export function emptyChanges(): SettingChanges {
  return { names: new Set(), resetAll: false, unknownNames: false };
}

export function hasChanges(changes: SettingChanges): boolean {
  return changes.resetAll || changes.unknownNames || changes.names.size > 0;
}

/** Statements, split at top-level semicolons outside quotes and comments. */
function statements(sql: string): string[] {
  const result: string[] = [];
  let start = 0;
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i];
    if (ch === "'" || ch === '"') {
      const close = sql.indexOf(ch, i + 1);
      i = close === -1 ? sql.length : close + 1;
    } else if (ch === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end + 1;
    } else if (ch === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end === -1 ? sql.length : end + 2;
    } else if (ch === '$') {
      const tag = /^\$[A-Za-z_]*\$/.exec(sql.slice(i));
      if (tag) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        i = close === -1 ? sql.length : close + tag[0].length;
      } else i += 1;
    } else if (ch === ';') {
      result.push(sql.slice(start, i));
      start = i + 1;
      i += 1;
    } else i += 1;
  }
  result.push(sql.slice(start));
  return result.map((s) => s.replace(/^(\s|--[^\n]*\n|\/\*[\s\S]*?\*\/)+/, '')).filter((s) => s.length > 0);
}

function unquote(name: string): string {
  return name.startsWith('"') ? name.slice(1, -1) : name.toLowerCase();
}

function settingNameOfSet(rest: string): string | null {
  if (/^role\b/i.test(rest)) return 'role';
  if (/^authorization\b/i.test(rest)) return 'session_authorization';
  if (/^time\s+zone\b/i.test(rest)) return 'timezone';
  if (/^(transaction|characteristics|constraints|names)\b/i.test(rest)) return null;
  const match = /^("[^"]+"|[A-Za-z_][\w.$]*)/.exec(rest);
  return match ? unquote(match[1]) : null;
}

/** The top-level arguments of the call whose `(` is at `open`. */
function callArguments(sql: string, open: number): string[] {
  const args: string[] = [];
  let depth = 0;
  let start = open + 1;
  for (let i = open; i < sql.length; i += 1) {
    const ch = sql[i];
    if (ch === "'") {
      const close = sql.indexOf("'", i + 1);
      i = close === -1 ? sql.length : close;
    } else if (ch === '(') depth += 1;
    else if (ch === ')') {
      depth -= 1;
      if (depth === 0) {
        args.push(sql.slice(start, i).trim());
        return args;
      }
    } else if (ch === ',' && depth === 1) {
      args.push(sql.slice(start, i).trim());
      start = i + 1;
    }
  }
  return args;
}

function addSetConfigCalls(sql: string, changes: SettingChanges): void {
  const pattern = /set_config\s*\(/gi;
  for (let match = pattern.exec(sql); match; match = pattern.exec(sql)) {
    const [name, , isLocal] = callArguments(sql, match.index + match[0].length - 1);
    if (isLocal?.toLowerCase() === 'true') continue;
    const literal = /^'((?:[^']|'')*)'$/.exec(name ?? '');
    if (literal) changes.names.add(literal[1].replace(/''/g, "'").toLowerCase());
    else changes.unknownNames = true;
  }
}

export function settingChangesIn(sql: string, into: SettingChanges = emptyChanges()): SettingChanges {
  if (!/\b(set|reset|discard)\b|set_config/i.test(sql)) return into;
  for (const statement of statements(sql)) {
    const set = /^set\s+(?:session\s+(?!authorization\b|characteristics\b))?(?!local\b)([\s\S]*)$/i.exec(statement);
    if (set) {
      const rest = /^session\s+authorization\b/i.test(statement.slice(4).trim()) ? 'authorization' : set[1];
      const name = settingNameOfSet(rest);
      if (name) into.names.add(name);
      continue;
    }
    const reset = /^reset\s+(all\b|session\s+authorization\b|("[^"]+"|[A-Za-z_][\w.$]*))/i.exec(statement);
    if (reset) {
      if (/^all$/i.test(reset[1])) into.resetAll = true;
      else into.names.add(/^session/i.test(reset[1]) ? 'session_authorization' : unquote(reset[2]));
      continue;
    }
    if (/^discard\s+all\b/i.test(statement)) into.resetAll = true;
  }
  addSetConfigCalls(sql, into);
  return into;
}
