import pino from 'pino';
import type { Logger } from '../broker/options';

/**
 * JSON lines on stdout. Logs go through process.stdout rather than pino's own fd writer:
 * when whoever reads our stdout goes away (a closed pipe), that writer retries forever and
 * would keep the process from ever shutting down; a stream error is simply dropped here.
 */
export function createLogger(level: string): Logger & { flush(): void } {
  process.stdout.on('error', () => undefined);
  const logger = pino({ level, base: { name: 'iot-bridge' } }, process.stdout);
  return {
    debug: (obj, msg) => logger.debug(obj, msg),
    info: (obj, msg) => logger.info(obj, msg),
    warn: (obj, msg) => logger.warn(obj, msg),
    error: (obj, msg) => logger.error(obj, msg),
    flush: () => logger.flush(),
  };
}
