// Connection pool: one RemotingConnection per address, created on first use.
import { RemotingCommand } from './codec';
import { ConnectionOptions, DEFAULT_CONNECTION_OPTIONS, RemotingConnection, RequestSpec } from './connection';
import { ClientClosedError, ResponseCode, errorForResponse } from './errors';

export class RemotingClient {
  private readonly connections = new Map<string, RemotingConnection>();
  private readonly options: ConnectionOptions;
  private closed = false;

  constructor(options: Partial<ConnectionOptions> = {}) {
    this.options = { ...DEFAULT_CONNECTION_OPTIONS, ...options };
  }

  get requestTimeoutMs(): number {
    return this.options.requestTimeoutMs;
  }

  connection(address: string): RemotingConnection {
    if (this.closed) throw new ClientClosedError('RemotingClient is closed');
    let conn = this.connections.get(address);
    if (!conn) {
      conn = new RemotingConnection(address, this.options);
      this.connections.set(address, conn);
    }
    return conn;
  }

  request(address: string, spec: RequestSpec, timeoutMs?: number): Promise<RemotingCommand> {
    return this.connection(address).request(spec, timeoutMs);
  }

  /** Like request, but a response code outside `okCodes` becomes a typed BrokerResponseError. */
  async requestOk(address: string, spec: RequestSpec, timeoutMs?: number, okCodes: readonly number[] = [ResponseCode.SUCCESS]): Promise<RemotingCommand> {
    const response = await this.request(address, spec, timeoutMs);
    if (!okCodes.includes(response.code)) throw errorForResponse(response.code, response.remark, address, spec.code);
    return response;
  }

  oneway(address: string, spec: RequestSpec, timeoutMs?: number): Promise<void> {
    return this.connection(address).oneway(spec, timeoutMs);
  }

  close(): void {
    this.closed = true;
    for (const conn of this.connections.values()) conn.close();
    this.connections.clear();
  }
}
