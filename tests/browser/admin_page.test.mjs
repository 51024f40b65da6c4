// Browser test of Tandem's admin page: the real binary in front of two real PHP servers,
// the page loaded in Debian's headless Chromium through playwright-core.
//
//   TANDEM_BINARY=build/tandem node tests/browser/admin_page.test.mjs   (or the path as argv[2])
//
// It checks that the page shows every server UP, that the logs panel shows the traffic,
// that a wrong token is refused and changes nothing, and that a click on "Drain" drains
// web1 (on the page and in /stats;csv), with no error in the page's console. It saves a
// full-page screenshot as $SCREENSHOT_DIR/admin-page.png (default: <binary dir>/artifacts).
// Every process it starts is killed on the way out, on failure and on timeout too.
// Environment: CHROMIUM (default /usr/bin/chromium), PHP (default: php on PATH).

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROUTER = path.resolve(HERE, '../app/router.php');
const TOKEN = 'browser-test-token';
const OVERALL_TIMEOUT_MS = 150_000;  // below CTest's 180 s, so our cleanup always runs
const WAIT_MS = 20_000;

const children = [];  // { name, child, log }
let browser = null;
let tempDir = null;

// ---- Processes ----

function fail(message) {
  throw new assert.AssertionError({ message });
}

function requireTool(file, what) {
  if (!existsSync(file)) {
    fail(`${what} not found at ${file}. Install it (scripts/install-deps.sh installs chromium; ` +
      'apt-get install nodejs npm php-cli) or point the environment at it.');
  }
}

function findOnPath(name) {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : null;
}

// A port that was free a moment ago (the kernel picks it; nothing else binds on loopback here).
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Each child leads its own process group, so that killing the group also ends the workers
// that php -S forks.
function start(name, file, args, env) {
  const log = path.join(tempDir, `${name}.log`);
  const fd = openSync(log, 'a');
  const child = spawn(file, args, {
    env: { ...process.env, ...env }, stdio: ['ignore', fd, fd], detached: true,
  });
  const entry = { name, child, log, exited: false };
  child.on('exit', () => { entry.exited = true; });
  children.push(entry);
  return entry;
}

function killAll() {
  for (const { child, exited } of children) {
    if (!exited && child.pid) {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  }
}

function logTail(entry, lines = 30) {
  try {
    return readFileSync(entry.log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---- HTTP ----

async function httpGet(url, timeoutMs = 2000) {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: response.status, text: await response.text() };
}

// Polls `probe` until it returns a truthy value; `what` names the wait in the failure.
async function waitFor(what, probe, timeoutMs = WAIT_MS, watch = null) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  while (Date.now() < deadline) {
    if (watch && watch.exited) fail(`${watch.name} exited while waiting for ${what}:\n${logTail(watch)}`);
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  fail(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
}

async function startPhp(name) {
  const php = process.env.PHP || findOnPath('php');
  if (!php) fail('php not found on PATH: install php-cli (scripts/install-deps.sh does).');
  const port = await freePort();
  const sessions = path.join(tempDir, `${name}-sessions`);
  mkdirSync(sessions);
  const entry = start(name, php, ['-d', `session.save_path=${sessions}`, '-S', `127.0.0.1:${port}`, ROUTER],
    { WEB_NAME: name, PHP_CLI_SERVER_WORKERS: '2' });
  await waitFor(`${name} on port ${port}`, async () =>
    (await httpGet(`http://127.0.0.1:${port}/health`)).text.startsWith(`${name} health `), WAIT_MS, entry);
  return port;
}

function configToml({ frontendPort, adminPort, web1Port, web2Port }) {
  return `# Written by tests/browser/admin_page.test.mjs
[global]
threads = 1
access_log = "stdout"

[admin]
listen = "127.0.0.1:${adminPort}"
token = "${TOKEN}"
refresh = "500ms"

[[frontend]]
name = "http-in"
listen = "127.0.0.1:${frontendPort}"
mode = "http"
backend = "web"

[[backend]]
name = "web"
mode = "http"
balance = "roundrobin"

[backend.check]
type = "http"
path = "/health"
interval = "200ms"
rise = 1
fall = 2

[[backend.server]]
name = "web1"
address = "127.0.0.1:${web1Port}"

[[backend.server]]
name = "web2"
address = "127.0.0.1:${web2Port}"
`;
}

// The status column of one server row in HAProxy's CSV.
function csvStatus(csv, proxy, server) {
  const lines = csv.trim().split('\n');
  const header = lines[0].replace(/^# /, '').split(',');
  const statusAt = header.indexOf('status');
  assert.ok(statusAt > 0, `no status column in the CSV header: ${lines[0]}`);
  const row = lines.slice(1).map((l) => l.split(',')).find((f) => f[0] === proxy && f[1] === server);
  assert.ok(row, `no ${proxy}/${server} row in /stats;csv:\n${csv}`);
  return row[statusAt];
}

async function apiServerState(adminUrl, id) {
  const state = JSON.parse((await httpGet(`${adminUrl}/api/state`)).text);
  const [backend, server] = id.split('/');
  return state.backends.find((b) => b.name === backend).servers.find((s) => s.name === server).state;
}

// ---- The browser part ----

async function launchBrowser(chromiumPath) {
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch {
    fail(`playwright-core is not installed: run "npm ci" in ${HERE} (run.sh does).`);
  }
  return chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox', '--headless=new'] });
}

// Runs one wait of the scenario; a timeout names the step that did not happen.
async function step(what, promise) {
  try {
    return await promise;
  } catch (err) {
    fail(`${what}: ${err.message.split('\n')[0]}`);
  }
}

const card = (id) => `.server[data-server="${id}"]`;
const button = (action, id) => `button[data-action="${action}"][data-server="${id}"]`;

async function checkPage(page, adminUrl, frontendUrl, consoleErrors) {
  await page.goto(adminUrl, { waitUntil: 'domcontentloaded' });
  for (const id of ['web/web1', 'web/web2']) {
    await step(`the page shows ${id} UP`,
      page.waitForSelector(`${card(id)}[data-state="UP"]`, { timeout: WAIT_MS }));
  }
  const shown = await page.$$eval('.server[data-server]', (cards) =>
    cards.map((c) => `${c.dataset.server}=${c.dataset.state}`).sort());
  assert.deepEqual(shown, ['web/web1=UP', 'web/web2=UP'], 'the overview shows every server UP');

  // Traffic through the frontend for a few seconds, then its access-log lines and its
  // request rate on the page.
  const seen = new Set();
  for (let i = 0; i < 30; i++) {
    const response = await httpGet(`${frontendUrl}/name/${i}`);
    assert.equal(response.status, 200, `request ${i} through the frontend`);
    seen.add(response.text);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.deepEqual([...seen].sort(), ['web1', 'web2'], 'round robin reached both servers');
  await step('the access log on the page shows the requests', page.waitForFunction(() =>
    [...document.querySelectorAll('#access li')].some((li) => li.textContent.includes('http-in')
      && li.textContent.includes('/name/29')), null, { timeout: WAIT_MS }));
  await step('the request chart of http-in rises above zero', page.waitForFunction(() => {
    const line = document.querySelector('[data-chart="frontend/http-in"] polyline');
    const points = (line && line.getAttribute('points') || '').split(' ');
    return points.some((p) => Number(p.split(',')[1]) < 69);
  }, null, { timeout: WAIT_MS }));

  // A wrong token: the page reports the 401 and web1 stays UP.
  consoleErrors.allow = /status of 401/;
  await page.click('#creds-toggle');
  await page.fill('#cred-token', 'not-the-token');
  await page.click('#cred-save');
  await page.click(button('drain', 'web/web1'));
  await step('the page reports the refused token', page.waitForFunction(() =>
    document.getElementById('notices').textContent.includes('(401)'), null, { timeout: WAIT_MS }));
  assert.equal(await apiServerState(adminUrl, 'web/web1'), 'UP', 'a refused action changes nothing');
  consoleErrors.allow = null;

  // The right token, then a click on Drain.
  await page.fill('#cred-token', TOKEN);
  await page.click('#cred-save');
  await page.click(button('drain', 'web/web1'));
  await step('the page reports the command done', page.waitForFunction(() =>
    document.getElementById('notices').textContent.includes('Done: set server web/web1 state drain'),
  null, { timeout: WAIT_MS }));
  await step('the page shows web1 DRAIN after the click',
    page.waitForSelector(`${card('web/web1')}[data-state="DRAIN"]`, { timeout: WAIT_MS }));
  assert.equal(await page.getAttribute(card('web/web2'), 'data-state'), 'UP', 'web2 stays UP');
  assert.equal(await page.getAttribute(button('drain', 'web/web1'), 'aria-pressed'), 'true',
    'the Drain button of web1 shows as pressed');
}

async function main() {
  const binary = process.argv[2] || process.env.TANDEM_BINARY;
  if (!binary) fail('usage: node admin_page.test.mjs TANDEM_BINARY (or set TANDEM_BINARY)');
  requireTool(binary, 'the tandem binary');
  const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
  requireTool(chromiumPath, 'Chromium');
  const screenshotDir =
    process.env.SCREENSHOT_DIR || path.join(path.dirname(path.resolve(binary)), 'artifacts');
  mkdirSync(screenshotDir, { recursive: true });
  rmSync(path.join(screenshotDir, 'admin-page-failure.png'), { force: true });  // an old run's

  tempDir = mkdtempSync(path.join(os.tmpdir(), 'tandem-browser-'));
  const [web1Port, web2Port] = [await startPhp('web1'), await startPhp('web2')];
  const ports = { frontendPort: await freePort(), adminPort: await freePort(), web1Port, web2Port };
  const config = path.join(tempDir, 'tandem.toml');
  writeFileSync(config, configToml(ports));
  const tandem = start('tandem', binary, ['-c', config], {});
  const adminUrl = `http://127.0.0.1:${ports.adminPort}`;
  const frontendUrl = `http://127.0.0.1:${ports.frontendPort}`;
  await waitFor('the admin listener',
    async () => (await httpGet(`${adminUrl}/healthz`)).status === 200, WAIT_MS, tandem);
  await waitFor('web1 and web2 UP in /api/state', async () =>
    (await apiServerState(adminUrl, 'web/web1')) === 'UP' &&
    (await apiServerState(adminUrl, 'web/web2')) === 'UP', WAIT_MS, tandem);

  browser = await launchBrowser(chromiumPath);
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  const consoleErrors = { list: [], allow: null };
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    if (consoleErrors.allow && consoleErrors.allow.test(message.text())) return;
    consoleErrors.list.push(message.text());
  });
  page.on('pageerror', (err) => consoleErrors.list.push(`uncaught: ${err.message}`));
  try {
    await checkPage(page, adminUrl, frontendUrl, consoleErrors);
  } catch (err) {
    const failure = path.join(screenshotDir, 'admin-page-failure.png');
    await page.screenshot({ path: failure, fullPage: true }).catch(() => {});
    console.error(`the page at the failure: ${failure}`);
    throw err;
  }

  const csv = await httpGet(`${adminUrl}/stats;csv`);
  assert.equal(csv.status, 200, '/stats;csv answers');
  assert.equal(csvStatus(csv.text, 'web', 'web1'), 'DRAIN', 'web1 is DRAIN in /stats;csv');
  assert.equal(csvStatus(csv.text, 'web', 'web2'), 'UP', 'web2 is UP in /stats;csv');

  // The notices fade after 5 s; the screenshot shows the page under them.
  await step('the notices fade', page.waitForFunction(() =>
    document.getElementById('notices').childElementCount === 0, null, { timeout: WAIT_MS }));
  const shot = path.join(screenshotDir, 'admin-page.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.deepEqual(consoleErrors.list, [], 'no errors in the page console');

  // Tandem gone: the page keeps its last figures and marks them stale.
  process.kill(-tandem.child.pid, 'SIGKILL');
  await step('the page marks its data stale once Tandem is gone',
    page.waitForSelector('#conn.stale', { timeout: WAIT_MS }));
  assert.match(await page.textContent('#stale-banner'), /not answering/, 'the stale banner');
  console.log(`PASS: admin page test; screenshot ${shot}`);
}

function removeTemp() {
  if (tempDir && !process.env.KEEP_TEMP) rmSync(tempDir, { recursive: true, force: true });
}

async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  killAll();
  removeTemp();
}

// Last resorts: the processes die with the test even when a wait hangs or CTest stops it.
// (playwright-core kills the browser it launched when node exits.)
const watchdog = setTimeout(() => {
  console.error(`FAIL: the test did not finish within ${OVERALL_TIMEOUT_MS / 1000} s`);
  killAll();
  removeTemp();
  process.exit(1);
}, OVERALL_TIMEOUT_MS);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    console.error(`FAIL: stopped by ${signal}`);
    killAll();
    removeTemp();
    process.exit(1);
  });
}

let status = 0;
try {
  await main();
} catch (err) {
  status = 1;
  console.error(`FAIL: ${err.message}`);
  for (const entry of children) {
    if (entry.name === 'tandem') console.error(`--- tandem log (last lines) ---\n${logTail(entry)}`);
  }
} finally {
  await cleanup();
  clearTimeout(watchdog);
}
process.exit(status);
