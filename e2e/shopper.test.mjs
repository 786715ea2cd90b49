// The shopper page in a real browser against a running stack: sign-in (the code flow
// with PKCE, through the dev sign-in) → countdown → open → buy → pay, a second shopper on
// a phone seeing a sale that just sold out, and sign-ins that must be refused.
//
//   BASE_URL=http://127.0.0.1:3000 PAYMENTS_URL=http://127.0.0.1:8420 SALE_ID=… SOLD_SALE_ID=… FOREIGN_TOKEN=… \
//   SCREENSHOT_DIR=/tmp/shots npm test
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, pageChecks, storedToken } from './common.mjs';

const env = process.env;
const required = ['BASE_URL', 'PAYMENTS_URL', 'SALE_ID', 'SOLD_SALE_ID', 'FOREIGN_TOKEN', 'SCREENSHOT_DIR'];
const missing = required.filter((name) => !env[name]);
if (missing.length) throw new Error(`set ${missing.join(', ')} (see the top of ${import.meta.filename ?? 'this file'})`);
const BASE_URL = env.BASE_URL.replace(/\/$/, '');
// The payment provider's script and API: the one other origin a page may reach.
const PAYMENTS_URL = env.PAYMENTS_URL.replace(/\/$/, '');
const SHOTS = env.SCREENSHOT_DIR;
const DESKTOP = { viewport: { width: 1280, height: 800 } };
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

let browser;
let contextA;
const problems = []; // page errors and requests that left the origin, checked after each test

before(async () => {
  browser = await launchChromium(env, SHOTS);
});

after(async () => {
  await browser?.close();
});

// Collects what a shopper's page must never do: throw, log errors, or call another host.
function watch(page, name) {
  page.on('pageerror', (e) => problems.push(`${name}: script error: ${e.message}`));
  // Chromium logs every 4xx (a 429 retried, the favicon) as "Failed to load resource": expected here.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`${name}: console error: ${m.text()}`);
  });
  page.on('request', (r) => {
    if (!r.url().startsWith(`${BASE_URL}/`) && !r.url().startsWith(`${PAYMENTS_URL}/`)) {
      problems.push(`${name}: request left the origin: ${r.url()}`);
    }
  });
  return page;
}

// Types a test card into the provider's card fields (localstripe's: plain inputs).
async function fillCard(page, number) {
  for (const [field, value] of [['number', number], ['exp_month', '12'], ['exp_year', '34'], ['cvc', '123'], ['postal_code', '10001']]) {
    await page.locator(`#card input[placeholder="${field}"]`).fill(value);
  }
}

async function newShopper(name, options) {
  const context = await browser.newContext(options);
  return { context, page: watch(await context.newPage(), name) };
}

function checkNoProblems() {
  const found = problems.splice(0);
  assert.deepEqual(found, [], `the page misbehaved:\n${found.join('\n')}`);
}

// What the shopper sees, for failure messages.
const visible = (page) => page.evaluate(() => {
  const q = (s) => document.querySelector(s);
  return JSON.stringify({
    url: location.href,
    state: q('#state')?.dataset.state,
    stateText: q('#state')?.textContent,
    countdown: q('#countdown')?.textContent,
    stockLeft: q('#stock-left')?.textContent,
    buyDisabled: q('#buy')?.disabled,
    signinHidden: q('#signin')?.hidden,
    orderHidden: q('#order')?.hidden,
    orderId: q('#order-id')?.textContent,
    orderStatus: q('#order-status')?.dataset.status,
    timeLeft: q('#order-time-left')?.textContent,
    payHidden: q('#pay')?.hidden,
    message: q('#message')?.textContent,
  });
}).catch((e) => `(page unreadable: ${e.message})`);

const { shot, expectSoon, signIn } = pageChecks(SHOTS, visible);

test('shopper A signs in, waits for the countdown, buys and pays', async () => {
  const shopper = await newShopper('A', DESKTOP);
  contextA = shopper.context;
  const page = shopper.page;

  const response = await page.goto(`${BASE_URL}/sales/${env.SALE_ID}`);
  assert.equal(response?.status(), 200, `GET /sales/${env.SALE_ID}`);
  await signIn(page, 'browser-a');
  await expectSoon(page, '#state[data-state="upcoming"]', 'the sale is upcoming');
  await expectSoon(page, '#countdown:has-text("Opens in")', 'a countdown to the opening');
  assert.equal(await page.locator('#buy').isDisabled(), true, `Buy is disabled before the opening: ${await visible(page)}`);
  assert.equal(await page.locator('#signin').isHidden(), true, 'a signed-in shopper is not asked to sign in');
  await shot(page, '01-countdown.png');
  // The index, cached as it was rendered before the opening, follows the sale live.
  const index = watch(await shopper.context.newPage(), 'A on the index');
  await index.goto(`${BASE_URL}/`);
  const listed = `.when[data-sale-id="${env.SALE_ID}"]`;
  await expectSoon(index, `${listed}[data-state="upcoming"]`, 'the index lists the sale as upcoming');
  assert.match(await index.locator(listed).textContent(), /^from /, 'with its opening time');

  await expectSoon(page, '#buy:enabled', 'Buy is enabled when the sale opens', { timeout: 30_000 });
  await expectSoon(page, '#state[data-state="open"]', 'the sale shows as open');
  await shot(page, '02-open.png');
  await expectSoon(index, `${listed}[data-state="open"]`, 'the index shows the sale on sale once it opens', { timeout: 10_000 });
  assert.equal(await index.locator(listed).textContent(), 'On sale now');
  await index.close();

  const stockBefore = Number(await page.locator('#stock-left').textContent());
  await page.locator('#buy').click();
  await expectSoon(page, `#stock-left:text-is("${stockBefore - 1}")`, 'the new stock shows after the purchase');
  await expectSoon(page, '#order-status[data-status="UNPAID"]', 'the order is reserved', { timeout: 30_000 });
  await expectSoon(page, '#pay', 'a Pay button', { state: 'visible' });
  assert.match(await page.locator('#order-time-left').textContent(), /^Time left to pay: \d\d:\d\d$/, 'the payment window counts down');
  assert.equal(await page.locator('#buy').isDisabled(), true, 'no second purchase while one is in progress');
  const orderId = await page.locator('#order-id').textContent();
  assert.match(orderId, /^\d+$/, 'an order id is shown');
  await shot(page, '03-payable.png');

  // The card goes into the provider's own fields; a declined card leaves the order payable.
  await expectSoon(page, '#card input[placeholder="number"]', "the provider's card fields", { state: 'visible' });
  await fillCard(page, '4000000000000002');
  await page.locator('#pay').click();
  await expectSoon(page, '#message:has-text("Payment failed")', 'a declined card is told', { timeout: 15_000 });
  assert.equal(await page.locator('#order-status').getAttribute('data-status'), 'UNPAID', 'still reserved');
  await expectSoon(page, '#pay:enabled', 'and payable again', { state: 'visible' });
  // PAID only once the provider's webhook told the server: the page reads the order.
  await fillCard(page, '4242424242424242');
  await page.locator('#pay').click();
  await expectSoon(page, '#order-status[data-status="PAID"]', 'the order is paid', { timeout: 15_000 });
  await expectSoon(page, '#message:has-text("Paid — thank you!")', 'a thank-you');
  assert.equal(await page.locator('#payment').isHidden(), true, 'the payment form is gone once paid');
  assert.equal(await page.locator('#order-id').textContent(), orderId, 'the same order is shown');
  await shot(page, '04-paid.png');
  await page.close();
  checkNoProblems();
});

test('shopper A takes the last unit; shopper B on a phone sees it sold out', async () => {
  contextA ??= (await newShopper('A', DESKTOP)).context;
  const pageA = watch(await contextA.newPage(), 'A');
  await pageA.goto(`${BASE_URL}/sales/${env.SOLD_SALE_ID}`);
  await expectSoon(pageA, '#buy:enabled', 'Buy is enabled on an open sale', { timeout: 15_000 });
  await pageA.locator('#buy').click();
  await expectSoon(pageA, '#order-status[data-status="UNPAID"]', 'A reserves the single unit', { timeout: 30_000 });

  const { page: pageB } = await newShopper('B', PHONE);
  let purchased = false;
  pageB.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/purchase')) purchased = true; });
  await pageB.goto(`${BASE_URL}/sales/${env.SOLD_SALE_ID}`);
  await signIn(pageB, 'browser-b');
  const buy = pageB.locator('#buy');
  // The page may be served before the sale's live state arrives; if B gets to click,
  // the purchase itself has to say it is sold out.
  if (await buy.isEnabled()) await buy.click({ timeout: 1000 }).catch(() => {}); // it may turn disabled under the pointer
  await expectSoon(pageB, '#state[data-state="sold_out"]', 'B sees the sale sold out');
  if (purchased) await expectSoon(pageB, '#message:has-text("Sold out — every unit has been taken")', 'B is told it sold out');
  await expectSoon(pageB, '#stock-left:text-is("0")', 'no units left');
  assert.equal(await buy.isDisabled(), true, `B cannot buy: ${await visible(pageB)}`);
  assert.equal(await pageB.locator('#order').isHidden(), true, 'B has no order');
  const overflow = await pageB.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page fits a 390 px phone (it is ${overflow} px too wide)`);
  await shot(pageB, '05-sold-out-phone.png');
  await pageB.goto(`${BASE_URL}/`);
  const listed = `.when[data-sale-id="${env.SOLD_SALE_ID}"]`;
  await expectSoon(pageB, `${listed}[data-state="sold_out"]`, 'the index says sold out', { timeout: 10_000 });
  assert.equal(await pageB.locator(listed).textContent(), 'Sold out');
  checkNoProblems();
});

test('"My orders" lists the shopper\'s own orders, and only those', async () => {
  contextA ??= (await newShopper('A', DESKTOP)).context;
  const page = watch(await contextA.newPage(), 'A on My orders');
  await page.goto(`${BASE_URL}/orders`);
  await expectSoon(page, '#orders li.order', 'A\'s orders are listed');
  const listed = await page.locator('#orders li.order').evaluateAll((items) => items.map((i) => [i.dataset.orderId, i.dataset.status, i.querySelector('a').pathname]));
  // Of this run's sales: a database kept from an earlier run holds that run's orders of A too.
  const ours = [`/sales/${env.SALE_ID}`, `/sales/${env.SOLD_SALE_ID}`];
  const statuses = listed.filter(([, , sale]) => ours.includes(sale)).map(([, status]) => status).sort();
  assert.deepEqual(statuses, ['PAID', 'UNPAID'], `A paid one order and holds the last unit of the other sale: ${JSON.stringify(listed)}`);
  await shot(page, '06-my-orders.png');
  // B, signed in on the phone, has none (B's purchase found the sale sold out).
  const { context, page: pageB } = await newShopper('B on My orders', PHONE);
  await pageB.goto(`${BASE_URL}/orders`);
  await expectSoon(pageB, '#signin', 'B is asked to sign in first', { state: 'visible' });
  await signIn(pageB, 'browser-b');
  await expectSoon(pageB, '#message:has-text("No orders yet.")', 'B has no orders');
  assert.equal(await pageB.locator('#orders li').count(), 0);
  await context.close();
  await page.close();
  checkNoProblems();
});

test('a crafted token, code or return address signs no one in and does not leave the site', async () => {
  const { context, page } = await newShopper('crafted', DESKTOP);
  const tokenCalls = [];
  page.on('request', (r) => { if (r.url().includes('/oauth2/token')) tokenCalls.push(r.url()); });
  // Someone else's token in a link, on the callback and on a sale page.
  for (const path of ['/', `/sales/${env.SALE_ID}`]) {
    await page.goto(`${BASE_URL}${path}#id_token=${env.FOREIGN_TOKEN}&state=${encodeURIComponent(path)}`);
    await page.waitForLoadState('load');
    assert.equal(await storedToken(page), null, `a token in the fragment of ${path} is not taken`);
    assert.equal(new URL(page.url()).hash, '', 'and it is dropped from the address bar');
  }
  // A code and state this page never asked for (a sign-in someone else started).
  await page.goto(`${BASE_URL}/?code=0123456789abcdef&state=${'a'.repeat(43)}`);
  await page.waitForLoadState('load');
  await page.waitForTimeout(300);
  assert.equal(await storedToken(page), null, 'a code without this page\'s nonce is not traded');
  assert.deepEqual(tokenCalls, [], 'nor even sent to the token endpoint');
  // The sign-in sends the code only back to this site.
  const challenge = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';
  for (const crafted of ['https://evil.example/', '//evil.example/', '/\\evil.example/', `${BASE_URL}.evil.example/`]) {
    const query = new URLSearchParams({
      response_type: 'code', client_id: 'flashsale-local', redirect_uri: crafted, state: 'x',
      code_challenge: challenge, code_challenge_method: 'S256',
    });
    await page.goto(`${BASE_URL}/dev/oauth2/authorize?${query}`);
    await page.locator('#user').fill('victim');
    await page.locator('button[type=submit]').click();
    await expectSoon(page, '#error:not(:empty)', `the sign-in refuses ${crafted}`);
    assert.equal(new URL(page.url()).origin, new URL(BASE_URL).origin, `${crafted} led off the site, to ${page.url()}`);
  }
  await context.close();
  checkNoProblems();
});
