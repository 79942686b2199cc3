import type { QoS } from '../protocol/packets';
import { parseSharedFilter, topicMatches } from '../protocol/topics';
import type { Message, StoredSubscription } from './types';

/** How one message is delivered to one session: merged over every subscription it matches. */
export interface DeliveryTarget {
  /** The highest QoS granted by a matching subscription, at most the message's (MQTT-3.3.5-1). */
  qos: QoS;
  subscriptionIds: number[];
  retainAsPublished: boolean;
  /** Set when only a shared subscription matched: its `$share/{group}/{filter}`. */
  sharedFilter?: string;
}

/**
 * The subscription identifiers of a delivery without any, shared by all of them (most deliveries:
 * an array each was a measurable share of the allocations per message). Frozen, so a write to it
 * fails loudly instead of leaking into every other delivery.
 */
export const NO_SUBSCRIPTION_IDS = Object.freeze([]) as unknown as number[];

/**
 * Adds one matching subscription of session `clientId` to `target`; returns the target, or the
 * unchanged argument when No Local excludes the publisher's own message.
 */
export function mergeMatch(target: DeliveryTarget | undefined, clientId: string, sub: StoredSubscription, message: Message): DeliveryTarget | undefined {
  if (sub.noLocal && clientId === message.publisherId) return target;
  const merged = target ?? { qos: 0, subscriptionIds: NO_SUBSCRIPTION_IDS, retainAsPublished: false };
  merged.qos = Math.max(merged.qos, Math.min(sub.qos, message.qos)) as QoS;
  if (sub.subscriptionId !== undefined) {
    merged.subscriptionIds = merged.subscriptionIds === NO_SUBSCRIPTION_IDS ? [sub.subscriptionId] : [...merged.subscriptionIds, sub.subscriptionId];
  }
  merged.retainAsPublished ||= sub.retainAsPublished;
  return merged;
}

/**
 * The delivery of `message` to a session with these subscriptions, or undefined when none of
 * them matches it. Used where a message reaches a session through a queue that was filled by
 * another node: the session's own subscriptions decide, not the routes it was sent by.
 */
export function deliveryTarget(clientId: string, subscriptions: Iterable<StoredSubscription>, message: Message): DeliveryTarget | undefined {
  let target: DeliveryTarget | undefined;
  let sharedFilter: string | undefined;
  let plain = false;
  for (const sub of subscriptions) {
    const shared = parseSharedFilter(sub.filter);
    const filter = shared && typeof shared !== 'string' ? shared.filter : sub.filter;
    if (!topicMatches(filter, message.topic)) continue;
    target = mergeMatch(target, clientId, sub, message);
    if (shared) sharedFilter ??= sub.filter;
    else plain = true;
  }
  if (target && sharedFilter !== undefined && !plain) target.sharedFilter = sharedFilter;
  return target;
}

/** Packet ids are derived from the delivery sequence, so they are the same after a crash (G4). */
export function packetIdOf(seq: number): number {
  return ((seq - 1) % 65535) + 1;
}
