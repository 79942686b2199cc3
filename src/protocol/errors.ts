import { ReasonCodeValue } from './reason-codes';

/** A protocol violation or refusal, carrying the MQTT 5 reason code the peer should see. */
export class MqttError extends Error {
  constructor(
    readonly reasonCode: ReasonCodeValue,
    message: string,
  ) {
    super(message);
    this.name = 'MqttError';
  }
}
