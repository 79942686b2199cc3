// The web dashboard's files (src/ops/dashboard/: HTML, CSS and hand-written ES modules, no build
// step) on the admin port under /dashboard/. The page uses only the REST API, so it is on exactly
// when the API is (adminToken set) and needs the same token.
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * On every dashboard response: scripts, styles and requests from this origin only (so no inline
 * script runs, whatever a client id or payload shown on the page contains), no framing, no MIME
 * sniffing, no token-bearing referrer.
 */
export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

interface DashboardFile {
  contentType: string;
  body: Buffer;
}

/**
 * tsc copies only .ts files to dist/, so the compiled module (dist/src/ops/) finds the files in
 * the package's src/ops/dashboard/; run from the sources they sit next to it.
 */
function dashboardDir(): string | undefined {
  const candidates = [path.join(__dirname, 'dashboard'), path.join(__dirname, '..', '..', '..', 'src', 'ops', 'dashboard')];
  return candidates.find((dir) => fs.existsSync(path.join(dir, 'index.html')));
}

/** Read once at start (a few KB): requests name a file in this map or get 404, never a path on disk. */
function loadFiles(dir: string): Map<string, DashboardFile> {
  const files = new Map<string, DashboardFile>();
  for (const name of fs.readdirSync(dir)) {
    const contentType = CONTENT_TYPES[path.extname(name)];
    if (contentType) files.set(name, { contentType, body: fs.readFileSync(path.join(dir, name)) });
  }
  return files;
}

/**
 * A request handler for `/` (redirects to the dashboard) and `/dashboard/…`; it returns false for
 * any other path. `apiOn`: without a token the API is off, and so is the dashboard.
 */
export function dashboardHandler(apiOn: boolean): (req: http.IncomingMessage, res: http.ServerResponse) => boolean {
  const dir = apiOn ? dashboardDir() : undefined;
  const files = dir ? loadFiles(dir) : new Map<string, DashboardFile>();
  return (req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://admin').pathname;
    if (pathname !== '/' && pathname !== '/dashboard' && !pathname.startsWith('/dashboard/')) return false;
    const text = (status: number, message: string): true => {
      res.writeHead(status, { ...DASHBOARD_HEADERS, 'content-type': 'text/plain; charset=utf-8' }).end(`${message}\n`);
      return true;
    };
    const redirect = (): true => {
      res.writeHead(302, { ...DASHBOARD_HEADERS, location: '/dashboard/' }).end();
      return true;
    };
    if (!apiOn) {
      if (pathname === '/') return false; // the admin server's own answer lists what it serves
      return text(404, 'the dashboard uses the admin API, which is off: set adminToken to turn both on (docs/admin-api.md)');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return text(405, 'the dashboard is read with GET');
    }
    if (pathname === '/' || pathname === '/dashboard') return redirect();
    if (!dir) return text(404, 'the dashboard files (src/ops/dashboard/ in the package) are missing');
    const name = pathname.slice('/dashboard/'.length) || 'index.html';
    const file = files.get(name);
    if (!file) return text(404, `no dashboard file ${name}`);
    res.writeHead(200, { ...DASHBOARD_HEADERS, 'content-type': file.contentType, 'content-length': file.body.length });
    res.end(req.method === 'HEAD' ? undefined : file.body);
    return true;
  };
}
