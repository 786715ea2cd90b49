// The staff console in a real browser against a running stack: sign in as staff,
// create a sale with an invalid field (the message shows at the field), fix it,
// publish, watch the funnel and the chart move while shoppers buy and pay, and find an
// order by id and by shopper.
//
//   BASE_URL=http://127.0.0.1:3000 PAYMENTS_URL=http://127.0.0.1:8420 SCREENSHOT_DIR=/tmp/shots npm test
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { launchChromium } from './common.mjs';

const env = process.env;
const missing = ['BASE_URL', 'PAYMENTS_URL', 'SCREENSHOT_DIR'].filter((name) => !env[name]);
if (missing.length) throw new Error(`set ${missing.join(', ')} (see the top of this file)`);
const BASE_URL = env.BASE_URL.replace(/\/$/, '');
const SHOTS = env.SCREENSHOT_DIR;

let browser;
before(async () => {
  browser = await launchChromium(env, SHOTS);
});
after(async () => { await browser?.close(); });

const shot = (page, file) => page.screenshot({ path: join(SHOTS, file), fullPage: true });
const soon = (page, selector, what, timeout = 15_000) =>
  page.locator(selector).first().waitFor({ state: 'attached', timeout }).catch(async () => {
    await shot(page, `failed-${what.replace(/\W+/g, '-')}.png`).catch(() => {});
    assert.fail(`${what}: no ${selector} within ${timeout} ms (screenshot in ${SHOTS})`);
  });

// A shopper's token from the dev sign-in, the way a page gets one: code flow with PKCE.
const b64url = (bytes) => Buffer.from(bytes).toString('base64url');
async function shopperToken(user) {
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const redirect = `${BASE_URL}/`;
  const asked = await fetch(`${BASE_URL}/dev/oauth2/code`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user, client_id: 'flashsale-local', redirect_uri: redirect, code_challenge: challenge, code_challenge_method: 'S256' }),
  });
  const { code } = await asked.json();
  const traded = await fetch(`${BASE_URL}/dev/oauth2/token`, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'authorization_code', client_id: 'flashsale-local', code, redirect_uri: redirect, code_verifier: verifier }),
  });
  return (await traded.json()).id_token;
}

async function api(token, method, path) {
  const res = await fetch(`${BASE_URL}/api${path}`, { method, headers: { Authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json().catch(() => null) };
}

const utc = (ms) => new Date(ms).toISOString().slice(0, 19);

test('staff create, publish and watch a sale, and find its orders', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`script error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(m.text()); });

  await page.goto(`${BASE_URL}/admin/`);
  await soon(page, '#signin:not([hidden])', 'the console asks staff to sign in');
  await page.locator('#signin').click();
  await page.waitForURL(/\/dev\/oauth2\/authorize\?/);
  await page.locator('#user').fill('staff-1');
  await page.locator('#staff').check();
  await page.locator('button[type=submit]').click();
  await page.waitForURL(`${BASE_URL}/admin/`);
  await soon(page, '#staff:not([hidden])', 'the console shows the sales once staff are signed in');

  // One invalid field: the API's message shows next to it.
  const form = page.locator('#new-sale');
  await form.locator('[name=name]').fill('Console phone');
  await form.locator('[name=price_cents]').fill('49900');
  await form.locator('[name=stock]').fill('0');
  await form.locator('[name=per_user_limit]').fill('1');
  await form.locator('[name=starts_at]').fill(utc(Date.now() - 60_000));
  await form.locator('[name=ends_at]').fill(utc(Date.now() + 3_600_000));
  await form.locator('[name=payment_window_secs]').fill('600');
  await form.locator('button[type=submit]').click();
  await soon(page, '.field-error[data-for="stock"]:has-text("stock must be")', 'the stock message shows at the stock field');
  assert.equal(await page.locator('.field-error[data-for="name"]').textContent(), '', 'and nowhere else');
  await shot(page, '10-console-invalid-field.png');

  await form.locator('[name=stock]').fill('30');
  await form.locator('button[type=submit]').click();
  await soon(page, '#live:not([hidden]) #publish:not([hidden])', 'the new sale is watched, ready to publish');
  const saleId = Number(await page.locator('#live').getAttribute('data-sale-id'));
  assert.ok(saleId > 0, 'a sale id');
  await page.locator('#publish').click();
  await soon(page, `#sales tr[data-sale-id="${saleId}"][data-state="open"]`, 'the sale is listed as open once published');
  await soon(page, '#f-remaining:text-is("30")', 'the funnel shows the whole stock on sale');

  // A small load: 20 shoppers buy one unit each, 5 of them pay.
  const shoppers = await Promise.all(Array.from({ length: 20 }, (_, i) => shopperToken(`console-shopper-${i}`)));
  const bought = await Promise.all(shoppers.map((token) => api(token, 'POST', `/sales/${saleId}/purchase`)));
  assert.deepEqual(bought.map((r) => r.status), Array(20).fill(202), 'every shopper is admitted');
  for (let i = 0; i < 5; i++) {
    const id = bought[i].body.order_id;
    for (let tries = 0; ; tries++) {
      const payment = await api(shoppers[i], 'POST', `/orders/${id}/payment`);
      if (payment.status === 200) {
        // As the provider's script confirms it from the page, with a card that pays.
        const intent = payment.body.client_secret.split('_secret_')[0];
        const confirmed = await fetch(`${env.PAYMENTS_URL}/v1/payment_intents/${intent}/confirm`, {
          method: 'POST',
          body: JSON.stringify({
            key: 'pk_test_flashsale_local', client_secret: payment.body.client_secret,
            payment_method_data: { type: 'card', card: { number: '4242424242424242', exp_month: '12', exp_year: '2034', cvc: '123' } },
          }),
        });
        assert.equal(confirmed.status, 200, `order ${id} paid at the provider`);
        break;
      }
      assert.ok(tries < 60, `order ${id} could be paid (${JSON.stringify(payment.body)})`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  await soon(page, '#f-remaining:text-is("10")', 'the funnel shows 20 units gone', 20_000);
  await soon(page, '#f-paid:text-is("5")', 'and 5 paid', 20_000);
  await soon(page, '#f-unpaid:text-is("15")', 'and 15 waiting for payment', 20_000);
  await soon(page, '#f-drift:text-is("0")', 'with no drift', 20_000);
  await soon(page, '#chart:not([data-admitted="0"])', 'the chart shows the admissions');
  await shot(page, '11-console-funnel.png');

  // Find one order by id, with its history, and the same shopper's orders.
  const order = bought[0].body.order_id;
  await page.locator('#find [name=order]').fill(order);
  await page.locator('#find button').click();
  await soon(page, `.order-card[data-order-id="${order}"][data-status="PAID"]`, 'the order is found, paid');
  const history = await page.locator('.order-card .history li').allTextContents();
  assert.deepEqual(history.map((h) => h.split(' — ')[1]), ['admitted', 'persisted, awaiting payment', 'paid']);
  await page.locator('#find [name=order]').fill('');
  await page.locator('#find [name=user]').fill('console-shopper-0');
  await page.locator('#find button').click();
  await soon(page, `.order-card[data-order-id="${order}"]`, 'the shopper\'s orders are found');
  assert.equal(await page.locator('.order-card').count(), 1, 'only that shopper\'s');
  await shot(page, '12-console-found.png');

  // A shopper gets nothing from the admin API behind the console.
  assert.equal((await api(shoppers[0], 'GET', '/admin/sales')).status, 403);
  await context.close();
  assert.deepEqual(problems, []);
});
