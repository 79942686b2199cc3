// Shared by the authentication tests: a broker with authentication options and a logger that
// keeps every line (to check that no secret is written), and the CONNACK code of one CONNECT.
import type { Clock } from '../../src/broker/clock';
import type { Logger } from '../../src/broker/options';
import { startBroker } from '../../src/index';
import { defaultConfig, type Config } from '../../src/ops/config';
import { RawClient } from '../mqtt-helpers';
import { tempDir } from '../helpers';

/** A logger that keeps every line, to check that no secret is ever written. */
export function recordingLogger(lines: string[]): Logger {
  const rec = (o: object, m?: string): void => void lines.push(JSON.stringify({ ...o, m }));
  return { debug: rec, info: rec, warn: rec, error: rec };
}

export async function withAuthBroker(
  overrides: Partial<Config>,
  fn: (port: number, running: Awaited<ReturnType<typeof startBroker>>) => Promise<void>,
  log?: Logger,
  clock?: Clock,
): Promise<void> {
  const config: Config = { ...defaultConfig, host: '127.0.0.1', port: 0, dataDir: tempDir(), durability: 'relaxed', logLevel: 'silent', ...overrides };
  const running = await startBroker(config, log ?? recordingLogger([]), { clock });
  try {
    await fn(running.port, running);
  } finally {
    await running.stop();
  }
}

export async function connackOf(port: number, version: 4 | 5, connect: { clientId: string; username?: string; password?: Buffer; will?: { topic: string; payload: Buffer; qos: 0; retain: false } }): Promise<number> {
  const client = await RawClient.open(port, version);
  try {
    const connack = await client.sendConnect(connect);
    return version === 5 ? (connack.reasonCode ?? 0) : (connack.returnCode ?? 0);
  } finally {
    await client.destroy();
  }
}
