// `$SYS` topics in Mosquitto's naming, published retained every `sysInterval` seconds, so
// dashboards and scripts written for Mosquitto (`mosquitto_sub -t '$SYS/#'`) work unchanged.
// Load figures are Mosquitto's: exponentially damped per-minute rates over 1, 5 and 15 minutes.
// In cluster mode each node publishes under `$SYS/brokers/<nodeId>/` instead of `$SYS/broker/`,
// as every node shares one topic space.
import type { Broker } from '../broker/broker';
import type { Message } from '../store/types';

export interface SysTopicsOptions {
  /** Seconds between updates; 0: no $SYS topics. */
  intervalSeconds: number;
  version: string;
  /** `$SYS/broker` or `$SYS/brokers/<nodeId>`. */
  root: string;
}

interface Load {
  '1min': number;
  '5min': number;
  '15min': number;
}

export class SysTopics {
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();
  private last = { at: Date.now(), received: 0, sent: 0, connections: 0 };
  private readonly load = { received: zero(), sent: zero(), connections: zero() };

  constructor(
    private readonly broker: Broker,
    private readonly options: SysTopicsOptions,
  ) {}

  start(): void {
    if (this.options.intervalSeconds <= 0) return;
    this.publish();
    this.timer = setInterval(() => this.publish(), this.options.intervalSeconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private publish(): void {
    const s = this.broker.stats;
    const now = Date.now();
    const dtSeconds = Math.max(0.001, (now - this.last.at) / 1000);
    damp(this.load.received, ((s.messagesReceived - this.last.received) / dtSeconds) * 60, dtSeconds);
    damp(this.load.sent, ((s.messagesSent - this.last.sent) / dtSeconds) * 60, dtSeconds);
    damp(this.load.connections, ((s.connectionsTotal - this.last.connections) / dtSeconds) * 60, dtSeconds);
    this.last = { at: now, received: s.messagesReceived, sent: s.messagesSent, connections: s.connectionsTotal };
    const sessions = this.broker.sessions.size;
    const values: [string, string | number][] = [
      ['version', `iot-bridge version ${this.options.version}`],
      ['uptime', `${Math.round((now - this.startedAt) / 1000)} seconds`],
      ['clients/connected', s.connections],
      ['clients/total', sessions],
      ['clients/disconnected', Math.max(0, sessions - s.connections)],
      ['messages/received', s.messagesReceived],
      ['messages/sent', s.messagesSent],
      ['publish/messages/dropped', s.messagesDroppedQueueFull + s.messagesDroppedExpired + s.messagesDroppedTooLarge + s.messagesDroppedOfflineQos0],
      ['subscriptions/count', this.broker.router.size],
      ['retained messages/count', this.broker.retained.size],
    ];
    for (const [kind, load] of [['messages/received', this.load.received], ['messages/sent', this.load.sent], ['connections', this.load.connections]] as const) {
      for (const span of ['1min', '5min', '15min'] as const) values.push([`load/${kind}/${span}`, load[span].toFixed(2)]);
    }
    for (const [name, value] of values) {
      const message: Message = { topic: `${this.options.root}/${name}`, payload: Buffer.from(String(value)), qos: 0, retain: true, publisherId: '', createdAt: now };
      void this.broker.publishSystem(message);
    }
  }
}

function zero(): Load {
  return { '1min': 0, '5min': 0, '15min': 0 };
}

/** Mosquitto's load average: value += (rate - value) * (1 - e^(-dt / span)). */
function damp(load: Load, ratePerMinute: number, dtSeconds: number): void {
  for (const [span, seconds] of [['1min', 60], ['5min', 300], ['15min', 900]] as const) {
    load[span] += (ratePerMinute - load[span]) * (1 - Math.exp(-dtSeconds / seconds));
  }
}
