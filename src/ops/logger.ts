import pino from 'pino';
import type { Logger } from '../broker/options';

export function createLogger(level: string): Logger & { flush(): void } {
  const logger = pino({ level, base: { name: 'iot-bridge' } });
  return {
    debug: (obj, msg) => logger.debug(obj, msg),
    info: (obj, msg) => logger.info(obj, msg),
    warn: (obj, msg) => logger.warn(obj, msg),
    error: (obj, msg) => logger.error(obj, msg),
    flush: () => logger.flush(),
  };
}
