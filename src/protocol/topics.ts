/**
 * Topic names and filters (MQTT 5.0 §4.7, MQTT 3.1.1 §4.7).
 * Validation returns a reason text, or null when valid, so callers choose the reason code.
 */

const MAX_TOPIC_BYTES = 65535;

export function topicNameError(topic: string): string | null {
  if (topic.length === 0) return 'topic name is empty';
  if (Buffer.byteLength(topic) > MAX_TOPIC_BYTES) return 'topic name is longer than 65535 bytes';
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    if (c === 0x2b /* + */ || c === 0x23 /* # */) return 'topic name contains a wildcard';
    if (c === 0) return 'topic name contains U+0000';
  }
  return null;
}

export function topicFilterError(filter: string): string | null {
  if (filter.length === 0) return 'topic filter is empty';
  if (Buffer.byteLength(filter) > MAX_TOPIC_BYTES) return 'topic filter is longer than 65535 bytes';
  if (filter.includes('\u0000')) return 'topic filter contains U+0000';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) {
      return "'#' must be a whole level and the last one";
    }
    if (level.includes('+') && level !== '+') return "'+' must be a whole level";
  }
  return null;
}

export interface SharedFilter {
  group: string;
  filter: string;
}

/** Splits `$share/group/filter`. Returns null for a plain filter, or a string error. */
export function parseSharedFilter(filter: string): SharedFilter | null | string {
  if (!filter.startsWith('$share/')) return null;
  const rest = filter.slice('$share/'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return 'shared subscription needs $share/{group}/{filter}';
  const group = rest.slice(0, slash);
  if (group.includes('+') || group.includes('#')) return 'share name must not contain wildcards';
  const inner = rest.slice(slash + 1);
  const innerError = topicFilterError(inner);
  if (innerError) return innerError;
  return { group, filter: inner };
}

/** True when `topic` matches `filter`; a leading wildcard does not match a `$` topic. */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
