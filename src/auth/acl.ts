// Topic access rules in Mosquitto's acl_file format, so a Mosquitto ACL file works as it is:
//
//   # rules before the first `user` line are for clients without a user name
//   topic read public/#
//   user alice
//   topic readwrite alice/#          (access omitted: readwrite)
//   topic deny alice/secret
//   pattern write devices/%c/up      (every client: %c its client id, %u its user name)
//
// Nothing is allowed unless a rule grants it; a matching `deny` wins over any grant. PUBLISH
// needs a write rule whose filter matches the topic; SUBSCRIBE a read rule whose filter covers
// the whole subscribed filter (`a/#` covers `a/b` and `a/+`, `a/+` does not cover `a/#`).
import { parseSharedFilter, topicMatches } from '../protocol/topics';

export class AclFileError extends Error {
  readonly reason = 'invalid-acl-file';
}

type Access = 'read' | 'write' | 'readwrite' | 'deny';

interface Rule {
  access: Access;
  filter: string;
}

export interface Identity {
  clientId: string;
  username?: string;
}

export class Acl {
  private constructor(
    private readonly anonymous: Rule[],
    private readonly byUser: Map<string, Rule[]>,
    private readonly patterns: Rule[],
  ) {}

  static parse(text: string, name = 'ACL file'): Acl {
    const anonymous: Rule[] = [];
    const byUser = new Map<string, Rule[]>();
    const patterns: Rule[] = [];
    let current = anonymous;
    text.split(/\r?\n/).forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const [word, ...rest] = line.split(/\s+/);
      const where = `${name}, line ${i + 1}`;
      if (word === 'user') {
        const user = line.slice(4).trim();
        if (user === '') throw new AclFileError(`${where}: "user" needs a name`);
        current = byUser.get(user) ?? [];
        byUser.set(user, current);
        return;
      }
      if (word !== 'topic' && word !== 'pattern') throw new AclFileError(`${where}: expected "user", "topic" or "pattern", not ${JSON.stringify(word)}`);
      let access: Access = 'readwrite';
      if (rest.length > 1 && ['read', 'write', 'readwrite', 'deny'].includes(rest[0]!)) access = rest.shift() as Access;
      const filter = rest.join(' ');
      if (filter === '') throw new AclFileError(`${where}: "${word}" needs a topic`);
      (word === 'pattern' ? patterns : current).push({ access, filter });
    });
    return new Acl(anonymous, byUser, patterns);
  }

  /** These rules and `other`'s, as if read from two files: a grant in either allows, a deny in either wins. */
  with(other: Acl): Acl {
    const byUser = new Map(this.byUser);
    for (const [user, rules] of other.byUser) byUser.set(user, [...(byUser.get(user) ?? []), ...rules]);
    return new Acl([...this.anonymous, ...other.anonymous], byUser, [...this.patterns, ...other.patterns]);
  }

  canPublish(who: Identity, topic: string): boolean {
    return this.decide(who, 'write', (filter) => topicMatches(filter, topic));
  }

  /** Whether a message on `topic` may be sent to the client: a read rule matches it and no deny rule does. */
  canRead(who: Identity, topic: string): boolean {
    return this.decide(who, 'read', (filter) => topicMatches(filter, topic));
  }

  /** `$share/{group}/{filter}` is checked as its filter. */
  canSubscribe(who: Identity, filter: string): boolean {
    const plain = unsharedFilter(filter);
    return this.decide(who, 'read', (rule) => filterCovers(rule, plain));
  }

  private decide(who: Identity, need: 'read' | 'write', applies: (filter: string) => boolean): boolean {
    const rules = [...(who.username === undefined ? this.anonymous : (this.byUser.get(who.username) ?? [])), ...this.patternsFor(who)];
    let granted = false;
    for (const rule of rules) {
      if (!applies(rule.filter)) continue;
      if (rule.access === 'deny') return false;
      if (rule.access === 'readwrite' || rule.access === need) granted = true;
    }
    return granted;
  }

  private patternsFor(who: Identity): Rule[] {
    const out: Rule[] = [];
    for (const p of this.patterns) {
      let filter = p.filter;
      if (filter.includes('%c')) {
        // A client id with a wildcard or separator would widen the rule: such a pattern does not apply.
        if (/[+#/]/.test(who.clientId)) continue;
        filter = filter.replaceAll('%c', who.clientId);
      }
      if (filter.includes('%u')) {
        if (who.username === undefined || /[+#/]/.test(who.username)) continue;
        filter = filter.replaceAll('%u', who.username);
      }
      out.push({ access: p.access, filter });
    }
    return out;
  }
}

/** Whether every topic that `sub` matches is matched by `rule`. */
export function filterCovers(rule: string, sub: string): boolean {
  const r = rule.split('/');
  const s = sub.split('/');
  for (let i = 0; i < r.length; i++) {
    const level = r[i];
    if (level === '#') return true;
    if (i >= s.length) return false;
    const want = s[i];
    if (level === '+') {
      if (want === '#') return false;
      continue;
    }
    if (want !== level) return false;
  }
  return s.length === r.length;
}

/** `$share/{group}/{filter}` → `{filter}`: access to a shared subscription is access to its filter. */
export function unsharedFilter(filter: string): string {
  const shared = parseSharedFilter(filter);
  return shared && typeof shared !== 'string' ? shared.filter : filter;
}
