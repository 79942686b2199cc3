#!/usr/bin/env node
import cluster from 'node:cluster';
import fs from 'node:fs';
import { PasswordFileError, updatePasswordFile } from './auth/password-file';
import { ConfigError, loadConfig } from './ops/config';
import { createLogger } from './ops/logger';
import { runPrimary, workerCount, workerSlot, type WorkerReady } from './machine/primary';
import { startBroker } from './index';

const USAGE = `usage: iot-bridge start [--port N] [--data-dir DIR] [--config FILE] [--durability strict|relaxed] [...]
       iot-bridge passwd FILE USER [--password PASSWORD] [--scram] | --delete
Every option is listed in docs/configuration.md; each is also an IOT_BRIDGE_* environment variable.
passwd adds or replaces USER in the password file FILE (created if missing), asking for the password
(or reading it from stdin when that is not a terminal) unless --password gives it; --delete removes USER.
--scram stores SCRAM-SHA-256 and SCRAM-SHA-512 keys instead of a scrypt hash: the user can then log in
with MQTT 5 enhanced authentication (SCRAM) as well as with the plain password.`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'passwd') return passwd(rest);
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
  if (workerCount(config) > 1 && cluster.isPrimary) return runPrimary(config, log);
  const slot = workerSlot();
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
  if (slot !== undefined) {
    const ready: WorkerReady = { ready: true, port: running.port, wsPort: running.wsPort, tlsPort: running.tlsPort, adminPort: running.adminPort };
    process.send?.(ready);
    log.info({ pid: process.pid, slot, adminPort: running.adminPort || undefined }, `worker ${slot} serving`);
  } else {
    log.info(
      { pid: process.pid, port: running.port, wsPort: running.wsPort || undefined, tlsPort: running.tlsPort || undefined, adminPort: running.adminPort || undefined, ...(config.cluster ? { store: 'rocketmq', namesrv: config.namesrv, cluster: config.clusterName } : { store: config.store, dataDir: config.store === 'lmdb' ? config.dataDir : undefined, durability: config.durability }) },
      `iot-bridge listening on ${config.host}:${running.port}`,
    );
  }
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
  process.on('SIGHUP', () => running.reload());
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // A worker whose primary is gone (killed with -9 too) must not go on alone.
  if (slot !== undefined) process.on('disconnect', () => shutdown('primary gone'));
}

/** `iot-bridge passwd FILE USER [--password P] [--scram] | --delete`: the file is rewritten whole, then renamed over the old one. */
async function passwd(args: string[]): Promise<void> {
  const flags = args.filter((a) => a.startsWith('--'));
  const [file, user, ...extra] = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--password');
  const at = args.indexOf('--password');
  const given = at >= 0 ? args[at + 1] : undefined;
  const remove = flags.includes('--delete');
  const scram = flags.includes('--scram');
  const known = ['--password', '--delete', '--scram'];
  if (!file || !user || extra.length > 0 || flags.some((f) => !known.includes(f)) || (at >= 0 && given === undefined) || (remove && (at >= 0 || scram))) {
    console.error(USAGE);
    process.exit(2);
  }
  try {
    const before = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    const password = remove ? null : given ?? (await askPassword());
    if (password === '') throw new PasswordFileError('the password may not be empty');
    const after = updatePasswordFile(before, user, password, { scram });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, after, { mode: 0o600 });
    fs.renameSync(tmp, file);
  } catch (e) {
    console.error(`iot-bridge passwd: ${(e as Error).message}`);
    process.exit(1);
  }
}

/** Reads the password: from a terminal without echo, twice; otherwise the first line of stdin. */
async function askPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    let text = '';
    for await (const chunk of process.stdin) text += String(chunk);
    return text.split(/\r?\n/)[0] ?? '';
  }
  const read = (prompt: string): Promise<string> =>
    new Promise((resolve) => {
      process.stdout.write(prompt);
      const stdin = process.stdin;
      stdin.setRawMode(true);
      stdin.resume();
      let text = '';
      const onData = (d: Buffer): void => {
        for (const ch of d.toString('utf8')) {
          if (ch === '\r' || ch === '\n') {
            stdin.off('data', onData);
            stdin.setRawMode(false);
            stdin.pause();
            process.stdout.write('\n');
            resolve(text);
            return;
          }
          if (ch === '\u0003') process.exit(130); // Ctrl-C
          if (ch === '\u007f') text = text.slice(0, -1);
          else text += ch;
        }
      };
      stdin.on('data', onData);
    });
  const first = await read('Password: ');
  const again = await read('Reenter password: ');
  if (first !== again) throw new PasswordFileError('the passwords do not match');
  return first;
}

void main(process.argv.slice(2));
