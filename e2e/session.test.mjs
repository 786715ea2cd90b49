// Staying signed in, in a real browser against a running stack that issues short-lived
// tokens: a shopper's "My orders" and the staff console, left open past their first
// token's lifetime, renew it silently with the refresh token and keep calling the API
// with the new one; a token the API refuses is renewed once and the call tried again;
// a refresh token the token endpoint refuses signs the shopper out.
//
//   BASE_URL=http://127.0.0.1:3000 TOKEN_TTL_SECS=20 SCREENSHOT_DIR=/tmp/shots node --test session.test.mjs
//
// TOKEN_TTL_SECS: the stack's FLASHSALE_DEV_TOKEN_TTL_SECS, short (20 to 30 s): the test
// waits it out once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, pageChecks, storedToken } from './common.mjs';

const env = process.env;
const missing = ['BASE_URL', 'TOKEN_TTL_SECS', 'SCREENSHOT_DIR'].filter((name) => !env[name]);
if (missing.length) throw new Error(`set ${missing.join(', ')} (see the top of ${import.meta.filename ?? 'this file'})`);
const BASE_URL = env.BASE_URL.replace(/\/$/, '');
const TTL = Number(env.TOKEN_TTL_SECS);
const SHOTS = env.SCREENSHOT_DIR;
assert.ok(TTL >= 10 && TTL <= 60, `TOKEN_TTL_SECS=${env.TOKEN_TTL_SECS}: this test waits it out, so 10 to 60`);

let browser;
before(async () => {
  browser = await launchChromium(env, SHOTS);
});
after(async () => { await browser?.close(); });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const claims = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));

const visible = (page) => page.evaluate(() => JSON.stringify({
  url: location.href,
  signinHidden: document.querySelector('#signin')?.hidden,
  message: document.querySelector('#message')?.textContent,
  orders: document.querySelectorAll('#orders li').length,
})).catch((e) => `(page unreadable: ${e.message})`);
const { shot, expectSoon, signIn } = pageChecks(SHOTS, visible);

// A page that records what it must never do (throw, log errors) and what it sent: the
// API calls with their bearer token and answer, and the token endpoint's grants.
async function openPage(name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const seen = { problems: [], api: [], grants: [], failed: 0 };
  page.on('pageerror', (e) => seen.problems.push(`${name}: script error: ${e.message}`));
  // Chromium logs every 4xx as "Failed to load resource": the 401s here are meant.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) seen.problems.push(`${name}: console error: ${m.text()}`);
  });
  page.on('request', (r) => {
    const path = new URL(r.url()).pathname;
    if (path.endsWith('/oauth2/token')) {
      seen.grants.push({ at: Date.now(), grant: new URLSearchParams(r.postData() || '').get('grant_type') });
    }
  });
  page.on('requestfailed', (r) => { if (new URL(r.url()).pathname.endsWith('/oauth2/token')) seen.failed++; });
  page.on('response', (res) => {
    const r = res.request();
    if (!new URL(r.url()).pathname.startsWith('/api/')) return;
    const auth = r.headers().authorization || '';
    seen.api.push({ at: Date.now(), path: new URL(r.url()).pathname, token: auth.replace(/^Bearer /, ''), status: res.status() });
  });
  return { context, page, seen };
}

const keep = (page, entries) => page.evaluate((e) => { for (const [k, v] of Object.entries(e)) localStorage.setItem(k, v); }, entries);

test('pages left open past the token\'s lifetime stay signed in with renewed tokens', async () => {
  // Staff on the console, which calls the API every 2 s.
  const staff = await openPage('staff');
  await staff.page.goto(`${BASE_URL}/admin/`);
  await expectSoon(staff.page, '#signin:not([hidden])', 'the console asks staff to sign in');
  await staff.page.locator('#signin').click();
  await staff.page.waitForURL(/\/dev\/oauth2\/authorize\?/);
  await staff.page.locator('#user').fill('staff-session');
  await staff.page.locator('#staff').check();
  await staff.page.locator('button[type=submit]').click();
  await staff.page.waitForURL(`${BASE_URL}/admin/`);
  await expectSoon(staff.page, '#staff:not([hidden])', 'the console shows the sales once staff are signed in');
  const staffFirst = await storedToken(staff.page);

  // A shopper on "My orders".
  const shopper = await openPage('shopper');
  await shopper.page.goto(`${BASE_URL}/orders`);
  await signIn(shopper.page, 'browser-session');
  await expectSoon(shopper.page, '#message:has-text("No orders yet.")', 'My orders loads');
  const first = await storedToken(shopper.page);
  const { iat, exp } = claims(first);
  assert.equal(exp - iat, TTL, `the stack issues ${TTL} s tokens`);
  assert.ok(await shopper.page.evaluate(() => localStorage.getItem('flashsale.refresh')), 'a refresh token is kept with it');
  // The shopper's first renewal meets a network error: the page tries again soon after.
  let cut = 0;
  await shopper.page.route('**/oauth2/token', (route) => (cut++ === 0 ? route.abort('internetdisconnected') : route.continue()));

  // Past both first tokens' end, with a little to spare.
  const until = Math.max(exp, claims(staffFirst).exp) * 1000 + 1500;
  await sleep(until - Date.now());

  // The shopper's page renewed its token before it ended, without a new sign-in.
  const renewed = await storedToken(shopper.page);
  assert.notEqual(renewed, first, 'the page renewed its token');
  assert.equal(claims(renewed).sub, 'browser-session', 'for the same shopper');
  assert.ok(claims(renewed).exp > exp, 'a token that ends later');
  const refreshes = shopper.seen.grants.filter((g) => g.grant === 'refresh_token');
  assert.ok(refreshes.length >= 2, `a refresh_token grant was sent, and again after a network error (${JSON.stringify(shopper.seen.grants)})`);
  assert.equal(shopper.seen.failed, 1, 'the first one failed');
  assert.ok(refreshes[1].at < exp * 1000, 'both before the first token ended');
  assert.equal(await shopper.page.locator('#signin').isHidden(), true, `no sign-in asked: ${await visible(shopper.page)}`);
  // An authorized call now carries the new token, and the API takes it.
  const before = shopper.seen.api.length;
  await shopper.page.reload();
  await expectSoon(shopper.page, '#message:has-text("No orders yet.")', 'My orders loads again with the renewed token');
  const orders = shopper.seen.api.slice(before).filter((c) => c.path === '/api/orders');
  assert.deepEqual(orders.map((c) => [c.status, c.token === first]), [[200, false]], 'one call, with the new token, answered');
  assert.equal(orders[0].token, await storedToken(shopper.page));

  // The console kept calling all along: after its first token ended, with a new one, never refused.
  const staffCalls = staff.seen.api.filter((c) => c.path === '/api/admin/sales');
  const late = staffCalls.filter((c) => c.at > claims(staffFirst).exp * 1000);
  assert.ok(late.length >= 1, 'the console called the API after its first token ended');
  assert.ok(late.every((c) => c.token !== staffFirst && c.status === 200), `with a renewed token: ${JSON.stringify(late)}`);
  assert.deepEqual(staffCalls.filter((c) => c.status !== 200), [], 'no call of the console was refused');
  assert.equal(await staff.page.locator('#staff').isVisible(), true, 'the console is still shown');
  await shot(staff.page, '13-console-renewed.png');
  await staff.context.close();

  // A token the API refuses (its signature spoiled): renewed once, the call tried again.
  const good = await storedToken(shopper.page);
  const spoiled = `${good.slice(0, -4)}${good.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
  await keep(shopper.page, { 'flashsale.token': spoiled });
  let mark = shopper.seen.api.length;
  const grantsBefore = shopper.seen.grants.length;
  await shopper.page.reload();
  await expectSoon(shopper.page, '#message:has-text("No orders yet.")', 'My orders loads after a refused token is renewed');
  const retried = shopper.seen.api.slice(mark).filter((c) => c.path === '/api/orders');
  assert.deepEqual(retried.map((c) => [c.status, c.token === spoiled]), [[401, true], [200, false]], 'refused, renewed, answered');
  assert.deepEqual(shopper.seen.grants.slice(grantsBefore).map((g) => g.grant), ['refresh_token'], 'one renewal');

  // A refresh token the token endpoint refuses: signed out, asked to sign in again.
  await keep(shopper.page, { 'flashsale.token': spoiled, 'flashsale.refresh': 'forged-refresh-token' });
  mark = shopper.seen.api.length;
  await shopper.page.reload();
  await expectSoon(shopper.page, '#signin', 'a refused renewal asks the shopper to sign in', { state: 'visible' });
  assert.match(await shopper.page.locator('#message').textContent(), /sign in again/);
  assert.equal(await storedToken(shopper.page), null, 'and forgets the tokens');
  assert.equal(await shopper.page.evaluate(() => localStorage.getItem('flashsale.refresh')), null);
  assert.deepEqual(shopper.seen.api.slice(mark).map((c) => c.status), [401], 'the refused call is not tried again');
  await shopper.context.close();
  assert.deepEqual([...staff.seen.problems, ...shopper.seen.problems], []);
});
