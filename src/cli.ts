#!/usr/bin/env node
import { ConfigError, loadConfig } from './ops/config';
import { createLogger } from './ops/logger';
import { startBroker } from './index';

const USAGE = `usage: iot-bridge start [--port N] [--data-dir DIR] [--config FILE] [--durability strict|relaxed] [...]
Every option is listed in docs/configuration.md; each is also an IOT_BRIDGE_* environment variable.`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command !== 'start') {
    console.error(USAGE);
    process.exit(command === undefined || command === '--help' ? 0 : 2);
  }
  let config;
  try {
    config = loadConfig(rest);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`iot-bridge: ${e.message}\n${USAGE}`);
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger(config.logLevel);
  let running;
  try {
    running = await startBroker(config, log);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const hint =
      err.code === 'EADDRINUSE' ? `port already in use: pick another with --port` :
      err.code === 'EACCES' ? `permission denied: ${err.message}` : err.message;
    log.error({ err: err.message }, `iot-bridge could not start: ${hint}`);
    log.flush();
    process.exit(1);
  }
  log.info(
    { pid: process.pid, port: running.port, wsPort: running.wsPort || undefined, tlsPort: running.tlsPort || undefined, adminPort: running.adminPort || undefined, ...(config.cluster ? { store: 'rocketmq', namesrv: config.namesrv, cluster: config.clusterName } : { store: config.store, dataDir: config.store === 'lmdb' ? config.dataDir : undefined, durability: config.durability }) },
    `iot-bridge listening on ${config.host}:${running.port}`,
  );
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      log.error({}, 'shutdown took longer than 10 s, exiting');
      process.exit(1);
    }, 10_000);
    running.stop().then(
      () => {
        clearTimeout(force);
        log.info({}, 'stopped');
        log.flush();
        process.exit(0);
      },
      (e: Error) => {
        log.error({ err: e.message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

void main(process.argv.slice(2));
