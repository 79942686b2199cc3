// The admin REST API (/api/v1 on the same origin), the dashboard's only source of data. The token
// lives in sessionStorage: it is gone when the tab closes, and other tabs do not see it.
const TOKEN_KEY = 'iot-bridge.adminToken';

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) ?? '',
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** The API answered with an error status; `message` is its `error` field. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function request(method, path, query) {
  const search = query ? `?${new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== ''))}` : '';
  const res = await fetch(`/api/v1${path}${search}`, {
    method,
    headers: { authorization: `Bearer ${token.get()}` },
    cache: 'no-store',
  });
  let body = {};
  try {
    body = await res.json();
  } catch {
    // not JSON: the status alone says what went wrong
  }
  if (!res.ok) throw new ApiError(res.status, body.error ?? `HTTP ${res.status}`);
  return body;
}

// Client ids and topics may hold any character, '/' included: one encoded path segment each
// (the API decodes it back).
const segment = encodeURIComponent;

export const api = {
  info: () => request('GET', '/info'),
  stats: () => request('GET', '/stats'),
  clients: (prefix, after) => request('GET', '/clients', { prefix, after }),
  client: (clientId) => request('GET', `/clients/${segment(clientId)}`),
  kick: (clientId) => request('DELETE', `/clients/${segment(clientId)}`),
  subscriptions: (prefix, after) => request('GET', '/subscriptions', { prefix, after }),
  retained: (prefix, after) => request('GET', '/retained', { prefix, after }),
  retainedMessage: (topic) => request('GET', `/retained/${segment(topic)}`),
  deleteRetained: (topic) => request('DELETE', `/retained/${segment(topic)}`),
};
