// (the functions given to page.evaluate and waitForFunction run in the browser)
// The web dashboard on the admin port, in headless Chromium (Debian's /usr/bin/chromium through
// puppeteer-core) against a real broker and real mqtt.js clients: a wrong token is told, the
// overview counts the connection, the client table finds the client by prefix and its Kick button
// disconnects it (MQTT 5 DISCONNECT 0x98), a retained message shows in the retained view. Also,
// without a browser: the security headers, no inline script, and the dashboard off without a token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { IDisconnectPacket } from 'mqtt';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { connect, endClient, freePort, skipWithout, startTestBroker, tempDir } from '../helpers';
import { withTimeout } from '../mqtt-helpers';

// The few browser globals the functions run in the page use, declared for this file only: lib "dom"
// would put every DOM name in scope of the broker's own compile too.
interface PageElement {
  textContent: string | null;
  hidden: boolean;
  value: string;
}
declare const document: { querySelector(selector: string): PageElement | null; querySelectorAll(selector: string): ArrayLike<PageElement> };
declare const sessionStorage: { getItem(key: string): string | null };

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'dashboard-test-token-0123456789';
const DEVICE = 'dash-device-7f3a9c';
/** A client id that would be markup if the page ever parsed broker data as HTML. */
const MARKUP_ID = 'other-<img src=x onerror=alert(1)>';
/** Tests run from dist/test/ops: the repository root is three levels up. */
const SCREENSHOT = path.join(__dirname, '..', '..', '..', 'test-output', 'dashboard.png');
/** Every wait in the browser is bounded by this. */
const WAIT_MS = 15_000;

const skipChromium = skipWithout([CHROMIUM], ['chromium']);

/**
 * Chromium with a fresh profile. Without the background-networking flags it keeps trying to reach
 * Google's services, and on a closed network those connections are refused.
 */
async function launchChromium(): Promise<{ browser: Browser; close(): Promise<void> }> {
  const profile = tempDir('iotb-chromium-');
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profile}`,
    ],
  });
  return {
    browser,
    async close() {
      const child = browser.process();
      const closed = await withTimeout(browser.close().then(() => true), 10_000, 'close hung').catch(() => false);
      if (!closed && child?.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** The texts of the table cells matching `selector`. */
function cellTexts(page: Page, selector: string): Promise<string[]> {
  return page.$$eval(selector, (cells) => cells.map((c) => c.textContent ?? ''));
}

/** Waits (bounded) until the first column of the table body `tbodyId` lists exactly `expected`. */
async function waitForFirstColumn(page: Page, tbodyId: string, expected: string[]): Promise<void> {
  await page
    .waitForFunction(
      (id, want) => {
        const got = Array.from(document.querySelectorAll(`#${id} tr td:first-child`), (td) => td.textContent);
        return JSON.stringify(got) === JSON.stringify(want);
      },
      { timeout: WAIT_MS },
      tbodyId,
      expected,
    )
    .catch(async (e: Error) => {
      throw new Error(`#${tbodyId} should list ${JSON.stringify(expected)}, lists ${JSON.stringify(await cellTexts(page, `#${tbodyId} tr td:first-child`))}: ${e.message}`);
    });
}

test('dashboard in Chromium: wrong token told; overview, client search, Kick (0x98), retained view', { skip: skipChromium }, async () => {
  const b = await startTestBroker({ adminPort: await freePort(), adminToken: TOKEN });
  const device = await connect(b.port, { clientId: DEVICE, protocolVersion: 5 });
  const other = await connect(b.port, { clientId: MARKUP_ID, protocolVersion: 4 });
  const disconnect = new Promise<IDisconnectPacket>((resolve) => device.once('disconnect', resolve));
  const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));
  const chromium = await launchChromium();
  try {
    const page = await chromium.browser.newPage();
    page.setDefaultTimeout(WAIT_MS);
    await page.setViewport({ width: 1200, height: 900 });
    // Script errors, and what the CSP refused (logged as console errors). The 401 of the wrong
    // token is logged as a failed resource load: expected, not counted.
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageErrors.push(m.text());
    });

    const landed = await page.goto(`http://127.0.0.1:${b.adminPort}/`);
    assert.equal(new URL(landed!.url()).pathname, '/dashboard/', '/ redirects to the dashboard');

    await page.type('#token', 'not-the-token');
    await page.click('#login-submit');
    await page.waitForFunction(() => document.querySelector('#login-error')?.textContent !== '');
    assert.match(await page.$eval('#login-error', (e) => e.textContent ?? ''), /Wrong token/);
    assert.equal(await page.$eval('#overview', (e) => (e as unknown as PageElement).hidden), true, 'nothing shown behind a wrong token');

    await page.$eval('#token', (e) => ((e as unknown as PageElement).value = ''));
    await page.type('#token', TOKEN);
    await page.click('#login-submit');
    await page.waitForSelector('#overview', { visible: true });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('iot-bridge.adminToken')), TOKEN);
    await page.waitForFunction(() => Number(document.querySelector('#stat-connections')?.textContent) >= 1);
    assert.ok(Number(await page.$eval('#stat-connections', (e) => e.textContent)) >= 1);
    // Some traffic for the chart; the rates need two samples.
    for (let i = 0; i < 20; i++) await other.publishAsync('dash/traffic', `m${i}`, { qos: 1 });
    await page.waitForFunction(() => document.querySelector('#stat-in-rate')?.textContent !== '–');

    await page.click('nav button[data-section="clients"]');
    await waitForFirstColumn(page, 'client-rows', [DEVICE, MARKUP_ID]);
    assert.equal(await page.$$eval('#client-rows img', (imgs) => imgs.length), 0, 'the client id is shown as text');
    await page.type('#client-prefix', 'dash-dev');
    await page.click('#client-search button[type="submit"]');
    await waitForFirstColumn(page, 'client-rows', [DEVICE]);

    await page.click(`button[data-action="kick"][data-value="${DEVICE}"]`);
    const packet = await withTimeout(disconnect, WAIT_MS, 'the kicked client got no DISCONNECT');
    assert.equal(packet.reasonCode, 0x98, 'Administrative action');
    await withTimeout(closed, WAIT_MS, 'the kicked client stayed connected');
    await page.waitForFunction((id) => !Array.from(document.querySelectorAll('#client-rows td')).some((td) => td.textContent === id), {}, DEVICE);
    assert.match(await page.$eval('#status', (e) => e.textContent ?? ''), /Disconnected dash-device-7f3a9c/);

    await other.publishAsync('dash/retained/lamp', 'on at 07:00', { qos: 1, retain: true });
    await page.click('nav button[data-section="retained"]');
    await waitForFirstColumn(page, 'retained-rows', ['dash/retained/lamp']);
    await page.click('button[data-action="retained-view"][data-value="dash/retained/lamp"]');
    await page.waitForFunction(() => document.querySelector('#retained-detail pre')?.textContent === 'on at 07:00');

    // The overview follows: the kicked client and the retained message show in later samples.
    await page.click('nav button[data-section="overview"]');
    await page.waitForFunction(() => ['#stat-connections', '#stat-retained'].every((id) => document.querySelector(id)?.textContent === '1'));
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`dashboard screenshot: ${SCREENSHOT}`);
    assert.deepEqual(pageErrors, [], 'no script error and nothing refused by the CSP');
  } finally {
    await chromium.close();
    for (const c of [device, other]) await endClient(c, true);
    await b.stop();
  }
});

test('dashboard files: security headers, no inline script, unknown files 404; off without adminToken', async () => {
  const b = await startTestBroker({ adminPort: await freePort(), adminToken: TOKEN });
  try {
    const base = `http://127.0.0.1:${b.adminPort}`;
    const root = await fetch(`${base}/`, { redirect: 'manual' });
    assert.deepEqual([root.status, root.headers.get('location')], [302, '/dashboard/']);
    for (const [file, type] of [['', 'text/html'], ['app.js', 'text/javascript'], ['api.js', 'text/javascript'], ['dashboard.css', 'text/css']] as const) {
      const res = await fetch(`${base}/dashboard/${file}`);
      assert.equal(res.status, 200, file);
      assert.match(res.headers.get('content-type') ?? '', new RegExp(`^${type}`), file);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', file);
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.match(csp, /script-src 'self'(;|$)/, file);
      assert.match(csp, /connect-src 'self'(;|$)/, file);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, file);
      const body = await res.text();
      if (file === '') {
        assert.deepEqual(body.match(/<script\b(?![^>]*\bsrc=)[^>]*>/g), null, 'every script is a file (the CSP forbids inline ones)');
        assert.doesNotMatch(body, /\sstyle=|\son[a-z]+=/, 'no inline style or event handler attribute');
      }
    }
    assert.equal((await fetch(`${base}/dashboard/nope.js`)).status, 404);
    assert.equal((await fetch(`${base}/dashboard/..%2Fadmin-api.ts`)).status, 404);
    assert.equal((await fetch(`${base}/dashboard/`, { method: 'POST' })).status, 405);
  } finally {
    await b.stop();
  }
  const off = await startTestBroker({ adminPort: await freePort() });
  try {
    const res = await fetch(`http://127.0.0.1:${off.adminPort}/dashboard/`);
    assert.equal(res.status, 404);
    assert.match(await res.text(), /adminToken/);
  } finally {
    await off.stop();
  }
});
