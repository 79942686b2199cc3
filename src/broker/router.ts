import type { StoredSubscription } from '../store/types';

/** A `$share/{group}/{filter}` subscription: each message goes to one member. */
export class SharedGroup {
  readonly members = new Map<string, StoredSubscription>();
  private cursor = 0;

  constructor(
    readonly name: string,
    readonly filter: string,
  ) {}

  /** Round-robin over members, preferring those `isEligible` accepts (e.g. online ones). */
  pick(isEligible: (clientId: string) => boolean, exclude?: string): [string, StoredSubscription] | undefined {
    const ids = [...this.members.keys()].filter((id) => id !== exclude);
    if (ids.length === 0) return undefined;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[(this.cursor + i) % ids.length];
      if (isEligible(id)) {
        this.cursor = (this.cursor + i + 1) % ids.length;
        return [id, this.members.get(id)!];
      }
    }
    const id = ids[this.cursor++ % ids.length];
    return [id, this.members.get(id)!];
  }
}

class TrieNode {
  readonly children = new Map<string, TrieNode>();
  readonly subscribers = new Map<string, StoredSubscription>();
  readonly shared = new Map<string, SharedGroup>();

  get empty(): boolean {
    return this.children.size === 0 && this.subscribers.size === 0 && this.shared.size === 0;
  }
}

export interface MatchVisitor {
  subscriber(clientId: string, sub: StoredSubscription): void;
  shared(group: SharedGroup): void;
}

/**
 * The subscription trie. Matching walks one branch per level plus the `+` and `#`
 * branches, so its cost grows with the topic depth, not with the subscription count.
 */
export class Router {
  private readonly root = new TrieNode();
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(clientId: string, filter: string, sub: StoredSubscription, shareGroup?: string): void {
    const node = this.nodeFor(filter, true)!;
    if (shareGroup === undefined) {
      if (!node.subscribers.has(clientId)) this.count++;
      node.subscribers.set(clientId, sub);
      return;
    }
    let group = node.shared.get(shareGroup);
    if (!group) {
      group = new SharedGroup(shareGroup, filter);
      node.shared.set(shareGroup, group);
    }
    if (!group.members.has(clientId)) this.count++;
    group.members.set(clientId, sub);
  }

  remove(clientId: string, filter: string, shareGroup?: string): boolean {
    const path: TrieNode[] = [];
    const levels = filter.split('/');
    let node: TrieNode | undefined = this.root;
    for (const level of levels) {
      path.push(node);
      node = node.children.get(level);
      if (!node) return false;
    }
    let removed: boolean;
    if (shareGroup === undefined) {
      removed = node.subscribers.delete(clientId);
    } else {
      const group = node.shared.get(shareGroup);
      removed = group?.members.delete(clientId) ?? false;
      if (group && group.members.size === 0) node.shared.delete(shareGroup);
    }
    if (removed) this.count--;
    // Prune empty branches so the trie does not grow with churn.
    for (let i = levels.length - 1; i >= 0 && node.empty; i--) {
      path[i].children.delete(levels[i]);
      node = path[i];
    }
    return removed;
  }

  sharedGroup(filter: string, group: string): SharedGroup | undefined {
    return this.nodeFor(filter, false)?.shared.get(group);
  }

  match(topic: string, visitor: MatchVisitor): void {
    const levels = topic.split('/');
    // A topic starting with '$' is not matched by a leading wildcard (MQTT-4.7.2-1).
    this.walk(this.root, levels, 0, visitor, topic.charCodeAt(0) === 0x24);
  }

  private walk(node: TrieNode, levels: string[], depth: number, visitor: MatchVisitor, dollar: boolean): void {
    if (!dollar) {
      const hash = node.children.get('#');
      if (hash) emit(hash, visitor);
    }
    if (depth === levels.length) {
      emit(node, visitor);
      return;
    }
    const exact = node.children.get(levels[depth]);
    if (exact) this.walk(exact, levels, depth + 1, visitor, false);
    if (!dollar) {
      const plus = node.children.get('+');
      if (plus) this.walk(plus, levels, depth + 1, visitor, false);
    }
  }

  private nodeFor(filter: string, create: boolean): TrieNode | undefined {
    let node = this.root;
    for (const level of filter.split('/')) {
      let next = node.children.get(level);
      if (!next) {
        if (!create) return undefined;
        next = new TrieNode();
        node.children.set(level, next);
      }
      node = next;
    }
    return node;
  }
}

function emit(node: TrieNode, visitor: MatchVisitor): void {
  // Most nodes on a match path hold no subscribers or no groups: skip making their iterators.
  if (node.subscribers.size > 0) for (const [clientId, sub] of node.subscribers) visitor.subscriber(clientId, sub);
  if (node.shared.size > 0) for (const group of node.shared.values()) visitor.shared(group);
}
