// The dashboard: log in with the admin token, then an overview sampled from /api/v1/stats every
// SAMPLE_MS, and tables of clients, subscriptions and retained messages. Everything from the
// broker (client ids, topics, payloads) is written with textContent, never parsed as HTML.
import { api, ApiError, token } from './api.js';
import { formatNumber, RateChart } from './rate-chart.js';

const SAMPLE_MS = 2000;
/** Three minutes of samples in the chart. */
const CHART_SAMPLES = 90;
const SECTIONS = ['overview', 'clients', 'subscriptions', 'retained'];

const $ = (id) => document.getElementById(id);

const chart = new RateChart($('rate-chart'), [{ color: '#2b6fd6' }, { color: '#d6772b' }], CHART_SAMPLES);
let sampleTimer;
/** Counts log-ins: a sample still in flight from before a log-out does not start a second loop. */
let loginGeneration = 0;
let previous; // the last /stats answer: rates are differences between two samples

// ---- logging in and out ------------------------------------------------------------------------

function describe(error) {
  if (error instanceof ApiError && error.status === 401) return 'Wrong token: the broker refused it (401). Check adminToken.';
  if (error instanceof ApiError && error.status === 404 && /adminToken/.test(error.message)) {
    return 'The admin API is off on this broker (no adminToken configured), so the dashboard has nothing to show.';
  }
  if (error instanceof ApiError) return `${error.message} (${error.status})`;
  return `Cannot reach the broker's admin port: ${error.message}`;
}

async function logIn() {
  const info = await api.info(); // the first call that needs the token: it tells a wrong one
  $('broker-info').textContent = `${info.version} · ${info.store} store`;
  $('login').hidden = true;
  $('nav').hidden = false;
  $('logout').hidden = false;
  show('overview');
  previous = undefined;
  sample(++loginGeneration);
}

function logOut(message = '') {
  loginGeneration++;
  token.clear();
  clearTimeout(sampleTimer);
  sampleTimer = undefined;
  for (const id of SECTIONS) $(id).hidden = true;
  $('nav').hidden = true;
  $('logout').hidden = true;
  $('broker-info').textContent = '';
  $('login').hidden = false;
  $('login-error').textContent = message;
  $('token').value = '';
  $('token').focus();
}

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('login-error').textContent = '';
  token.set($('token').value);
  try {
    await logIn();
  } catch (e) {
    logOut(describe(e));
  }
});

$('logout').addEventListener('click', () => logOut());

/** A failed call: a token the broker stopped accepting logs out; anything else is shown. */
function report(error) {
  if (error instanceof ApiError && error.status === 401) logOut(describe(error));
  else status(describe(error), true);
}

function status(message, isError = false) {
  $('status').textContent = message;
  $('status').classList.toggle('error', isError);
}

// ---- sections ------------------------------------------------------------------------------------

function show(section) {
  for (const id of SECTIONS) $(id).hidden = id !== section;
  for (const button of $('nav').querySelectorAll('button')) button.classList.toggle('active', button.dataset.section === section);
  status('');
  if (section === 'overview') chart.draw(); // a hidden canvas has no size to draw at
  else tables[section].reload();
}

$('nav').addEventListener('click', (event) => {
  const section = event.target.closest('button')?.dataset.section;
  if (section) show(section);
});

// ---- overview ------------------------------------------------------------------------------------

async function sample(loggedIn) {
  try {
    const stats = await api.stats();
    if (loggedIn === loginGeneration) render(stats);
  } catch (e) {
    if (loggedIn === loginGeneration) report(e);
  }
  if (loggedIn === loginGeneration) sampleTimer = setTimeout(sample, SAMPLE_MS, loggedIn);
}

function render(stats) {
  const dropped = Object.values(stats.dropped).reduce((a, b) => a + b, 0);
  $('stat-connections').textContent = stats.connections;
  $('stat-sessions').textContent = stats.sessions;
  $('stat-subscriptions').textContent = stats.subscriptions;
  $('stat-retained').textContent = stats.retained;
  $('stat-dropped').textContent = dropped;
  for (const [reason, count] of Object.entries(stats.dropped)) $(`drop-${reason}`).textContent = count;
  const store = stats.store;
  $('store-kind').textContent = store.kind;
  $('store-commits').textContent = store.commits;
  $('store-retries').textContent = store.retries;
  $('store-failures').textContent = store.publishFailures;
  $('store-latency-all').textContent = store.commits > 0 ? `${(store.commitMs / store.commits).toFixed(2)} ms` : '–';

  if (previous && stats.sampledAt > previous.sampledAt) {
    const seconds = (stats.sampledAt - previous.sampledAt) / 1000;
    const rateIn = (stats.messagesReceived - previous.messagesReceived) / seconds;
    const rateOut = (stats.messagesSent - previous.messagesSent) / seconds;
    const commits = store.commits - previous.store.commits;
    const latency = commits > 0 ? `${((store.commitMs - previous.store.commitMs) / commits).toFixed(2)} ms` : 'no commits';
    $('stat-in-rate').textContent = formatNumber(rateIn);
    $('stat-out-rate').textContent = formatNumber(rateOut);
    $('store-commit-rate').textContent = formatNumber(commits / seconds);
    $('store-latency-now').textContent = latency;
    $('stat-store-latency').textContent = commits > 0 ? latency.replace(' ms', '') : '–';
    const top = chart.push([rateIn, rateOut]);
    $('chart-scale').textContent = `(scale 0–${formatNumber(top)} /s, ${SAMPLE_MS / 1000} s samples)`;
  }
  previous = stats;
}

// ---- tables --------------------------------------------------------------------------------------

function cell(content) {
  const td = document.createElement('td');
  if (content instanceof Node) td.append(content);
  else td.textContent = content ?? '';
  return td;
}

function button(label, action, value, className = '') {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.dataset.action = action;
  b.dataset.value = value;
  if (className) b.className = className;
  return b;
}

function fragment(...nodes) {
  const f = document.createDocumentFragment();
  f.append(...nodes);
  return f;
}

/**
 * One searchable, paged table: `load(prefix, after)` fetches a page as { items, next }, `row(item)`
 * gives its cells. The first page comes on search or reload, the following ones with "More".
 */
function pagedTable(name, load, row, columns) {
  const rows = $(`${name}-rows`);
  const more = $(`${name}-more`);
  let next = null;
  async function fill(reset) {
    try {
      const page = await load($(`${name}-prefix`).value, reset ? undefined : next);
      if (reset) rows.replaceChildren();
      for (const item of page.items) {
        const tr = document.createElement('tr');
        tr.append(...row(item).map(cell));
        rows.append(tr);
      }
      if (rows.children.length === 0) {
        const td = cell('none');
        td.colSpan = columns;
        td.className = 'empty';
        const tr = document.createElement('tr');
        tr.append(td);
        rows.append(tr);
      }
      next = page.next;
      more.hidden = next === null;
    } catch (e) {
      report(e);
    }
  }
  $(`${name}-search`).addEventListener('submit', (event) => {
    event.preventDefault();
    fill(true);
  });
  more.addEventListener('click', () => fill(false));
  return { reload: () => fill(true) };
}

const PROTOCOL = { 3: '3.1', 4: '3.1.1', 5: '5.0' };

const tables = {
  clients: pagedTable(
    'client',
    async (prefix, after) => {
      const page = await api.clients(prefix, after);
      return { items: page.clients, next: page.next };
    },
    (c) => [c.clientId, c.username, c.remoteAddress, PROTOCOL[c.protocolVersion], fragment(button('Details', 'client-detail', c.clientId), button('Kick', 'kick', c.clientId, 'danger'))],
    5,
  ),
  subscriptions: pagedTable(
    'subscription',
    async (prefix, after) => {
      const page = await api.subscriptions(prefix, after);
      return { items: page.subscriptions, next: page.next };
    },
    (s) => [s.filter, s.subscribers, s.clients.join(', ') + (s.subscribers > s.clients.length ? ', …' : '')],
    3,
  ),
  retained: pagedTable(
    'retained',
    async (prefix, after) => {
      const page = await api.retained(prefix, after);
      return { items: page.retained, next: page.next };
    },
    (m) => [m.topic, m.qos, new Date(m.publishedAt).toLocaleString(), fragment(button('View', 'retained-view', m.topic), button('Delete', 'retained-delete', m.topic, 'danger'))],
    4,
  ),
};

// Row buttons: one listener per section, so a table refreshed under the pointer still works.
const actions = {
  async kick(clientId) {
    await api.kick(clientId);
    status(`Disconnected ${clientId} (MQTT 5 clients get DISCONNECT 0x98; a persistent session stays).`);
    $('client-detail').hidden = true;
    await tables.clients.reload();
  },
  async 'client-detail'(clientId) {
    const s = await api.client(clientId);
    showDetail('client-detail', `Session ${s.clientId}`, [
      ['Connected', s.connected ? 'yes' : 'no'],
      ['Persistent', s.persistent ? `yes, expires ${s.expiryInterval === 4294967295 ? 'never' : `${s.expiryInterval} s after disconnect`}` : 'no'],
      ['Queued / in flight', `${s.queued} / ${s.inflight}`],
      ['Will pending', s.willPending ? 'yes' : 'no'],
      ['Subscriptions', s.subscriptions.map((sub) => `${sub.filter} (QoS ${sub.qos})`).join(', ') || 'none'],
    ]);
  },
  async 'retained-view'(topic) {
    const m = await api.retainedMessage(topic);
    const payload = document.createElement('pre');
    payload.textContent = m.payload;
    showDetail('retained-detail', `Retained on ${m.topic}`, [
      ['QoS', m.qos],
      ['Published', new Date(m.publishedAt).toLocaleString()],
      ['Payload', m.encoding === 'utf8' ? 'UTF-8 text' : 'binary, shown as base64'],
    ], payload);
    $('retained-detail').dataset.topic = m.topic;
  },
  async 'retained-delete'(topic) {
    if (!window.confirm(`Delete the retained message on ${topic}? Nothing is published to subscribers.`)) return;
    await api.deleteRetained(topic);
    status(`Deleted the retained message on ${topic}.`);
    if ($('retained-detail').dataset.topic === topic) $('retained-detail').hidden = true;
    await tables.retained.reload();
  },
};

for (const section of ['clients', 'retained']) {
  $(section).addEventListener('click', async (event) => {
    const target = event.target.closest('button[data-action]');
    if (!target) return;
    try {
      await actions[target.dataset.action](target.dataset.value);
    } catch (e) {
      report(e);
    }
  });
}

function showDetail(id, title, pairs, extra) {
  const heading = document.createElement('h2');
  heading.textContent = title;
  const table = document.createElement('table');
  for (const [name, value] of pairs) {
    const tr = document.createElement('tr');
    const th = document.createElement('th');
    th.textContent = name;
    tr.append(th, cell(String(value)));
    table.append(tr);
  }
  $(id).replaceChildren(heading, table, ...(extra ? [extra] : []));
  $(id).hidden = false;
}

// A token from earlier in this tab: go straight in (or back to the form with the reason).
if (token.get()) logIn().catch((e) => logOut(describe(e)));
