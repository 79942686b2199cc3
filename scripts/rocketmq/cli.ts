// npm run rocketmq:start / rocketmq:stop
//   node dist/scripts/rocketmq/cli.js start [--work-dir DIR] [--namesrv-port N] [--broker-port N] [--version V]
//   node dist/scripts/rocketmq/cli.js stop  [--work-dir DIR]
// Environment: ROCKETMQ_WORK_DIR, ROCKETMQ_NAMESRV_PORT, ROCKETMQ_BROKER_PORT, ROCKETMQ_VERSION.
import * as path from 'node:path';
import { DEFAULT_ROCKETMQ_VERSION, LocalRocketMQError, startLocalRocketMQ, stopLocalRocketMQ } from './local-rocketmq';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function port(value: string | undefined, fallback: number, what: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 3 || n > 65534) throw new LocalRocketMQError(`invalid ${what} port "${value}"`);
  return n;
}

async function main(): Promise<void> {
  const [command, ...args] = process.argv.slice(2);
  const workDir = path.resolve(flag(args, '--work-dir') ?? process.env.ROCKETMQ_WORK_DIR ?? path.join(process.cwd(), '.rocketmq', 'local'));
  if (command === 'start') {
    const namesrvPort = port(flag(args, '--namesrv-port') ?? process.env.ROCKETMQ_NAMESRV_PORT, 19876, 'namesrv');
    const brokerPort = port(flag(args, '--broker-port') ?? process.env.ROCKETMQ_BROKER_PORT, 20911, 'broker');
    const version = flag(args, '--version') ?? process.env.ROCKETMQ_VERSION ?? DEFAULT_ROCKETMQ_VERSION;
    const started = await startLocalRocketMQ({
      workDir,
      namesrvPort,
      brokers: [{ name: 'broker-a', port: brokerPort }],
      version,
      log: (line) => console.error(`rocketmq: ${line}`),
    });
    console.error(`rocketmq: ready; work dir ${started.workDir}; stop with: npm run rocketmq:stop`);
    console.log(`ROCKETMQ_NAMESRV=${started.namesrvAddr}`);
  } else if (command === 'stop') {
    const n = await stopLocalRocketMQ(workDir, (line) => console.error(`rocketmq: ${line}`));
    if (n === 0) console.error(`rocketmq: nothing recorded as running in ${workDir}`);
  } else {
    console.error('usage: cli.js start|stop [--work-dir DIR] [--namesrv-port N] [--broker-port N] [--version V]');
    process.exit(2);
  }
}

main().catch((err: unknown) => {
  console.error(`rocketmq: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
