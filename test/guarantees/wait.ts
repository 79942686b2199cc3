/** Polls `cond` until it holds; fails with `what` after `timeoutMs`. A bounded wait, not a timing assertion. */
export async function waitUntil(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The first occurrence of each value, in arrival order (QoS 1 may deliver duplicates). */
export function firstAppearances<T>(values: T[]): T[] {
  const seen = new Set<T>();
  return values.filter((v) => (seen.has(v) ? false : (seen.add(v), true)));
}

export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

/**
 * Like helpers.connect, but `setup` attaches listeners before CONNACK: messages a resumed
 * session re-sends in the same read as CONNACK are emitted before connect() resolves.
 */
export function connectListening(port: number, options: IClientOptions, setup: (client: MqttClient) => void): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({ host: '127.0.0.1', port, reconnectPeriod: 0, connectTimeout: 5000, ...options });
    setup(client);
    const onError = (e: Error) => {
      client.end(true);
      reject(e);
    };
    client.once('error', onError);
    client.once('connect', () => {
      client.off('error', onError);
      resolve(client);
    });
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
}
