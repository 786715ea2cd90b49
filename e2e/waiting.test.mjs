// The waiting room in a real browser against a running stack: two shoppers join the
// queue of a sale with one unit, each page solving the proof of work itself; they watch
// their place and the number served; the first one through takes a pass and buys the
// unit, and the other sees the sale sold out in the queue's panel.
//
//   BASE_URL=http://127.0.0.1:3000 QUEUE_SALE_ID=… SCREENSHOT_DIR=/tmp/shots node --test waiting.test.mjs
//
// QUEUE_SALE_ID: a published sale with a waiting room (fifo or shuffled), one unit, a
// rate of 1 shopper per second and a low difficulty, opening some 10 to 20 s after this
// file starts, so that both shoppers join before the opening. Optional: PAYMENTS_URL,
// the payment provider's origin, which the page may call too (by default the origin of
// the page's payment script); CHROMIUM, the browser to drive.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { launchChromium, pageChecks } from './common.mjs';

const env = process.env;
const required = ['BASE_URL', 'QUEUE_SALE_ID', 'SCREENSHOT_DIR'];
const missing = required.filter((name) => !env[name]);
if (missing.length) throw new Error(`set ${missing.join(', ')} (see the top of ${import.meta.filename ?? 'this file'})`);
const BASE_URL = env.BASE_URL.replace(/\/$/, '');
const SALE = env.QUEUE_SALE_ID;
const SHOTS = env.SCREENSHOT_DIR;
const DESKTOP = { viewport: { width: 1280, height: 800 } };
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

let browser;
const problems = []; // page errors and requests that left the allowed origins, checked at the end
const allowed = new Set([new URL(BASE_URL).origin]);
if (env.PAYMENTS_URL) allowed.add(new URL(env.PAYMENTS_URL).origin);
const offsite = []; // requests to other origins, judged once the payment script's origin is known

before(async () => {
  browser = await launchChromium(env, SHOTS);
});

after(async () => {
  await browser?.close();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const originOf = (url) => { try { return new URL(url).origin; } catch { return url; } };
const isQueueCall = (request, tail) => new URL(request.url()).pathname.endsWith(`/sales/${SALE}/${tail}`);

// Collects what a shopper's page must never do: throw, log errors, or call another host.
function watch(page, name) {
  page.on('pageerror', (e) => problems.push(`${name}: script error: ${e.message}`));
  // Chromium logs every 4xx (a refused re-join, a turn not yet come) as "Failed to load resource": expected here.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`${name}: console error: ${m.text()}`);
  });
  page.on('request', (r) => {
    if (!r.url().startsWith('data:') && !allowed.has(originOf(r.url()))) offsite.push(`${name}: ${r.url()}`);
  });
  return page;
}

// What the queue's panel said, in order: the page's own text changes, recorded in the
// page (a test's script, which the Content-Security-Policy does not govern).
function recordQueueNotes() {
  window.queueNotes = [];
  document.addEventListener('DOMContentLoaded', () => {
    const note = document.getElementById('queue-note');
    if (!note) return;
    new MutationObserver(() => window.queueNotes.push(note.textContent))
      .observe(note, { childList: true, characterData: true, subtree: true });
  });
}

async function newShopper(name, options) {
  const context = await browser.newContext(options);
  await context.addInitScript(recordQueueNotes);
  const page = watch(await context.newPage(), name);
  // The calls the queue's page makes, as the browser sent them.
  const calls = { joins: [], statusAuth: [], passes: [], purchases: [] };
  page.on('request', (r) => {
    if (r.method() === 'POST' && isQueueCall(r, 'queue')) {
      let body = null;
      try { body = r.postDataJSON(); } catch { body = r.postData(); }
      calls.joins.push({ body, auth: r.headerValue('authorization').catch(() => null) });
    }
    if (r.method() === 'GET' && isQueueCall(r, 'queue/status')) calls.statusAuth.push(r.headerValue('authorization').catch(() => null));
  });
  page.on('response', (r) => {
    if (r.request().method() === 'POST' && isQueueCall(r.request(), 'pass')) calls.passes.push(r.status());
    if (r.request().method() === 'POST' && isQueueCall(r.request(), 'purchase')) {
      let sent = null;
      try { sent = r.request().postDataJSON(); } catch { sent = r.request().postData(); }
      calls.purchases.push({ status: r.status(), sent });
    }
  });
  return { context, page, calls };
}

// The payment provider's script is the one other origin a sale page loads.
async function allowPaymentsOrigin(page) {
  if (env.PAYMENTS_URL) return;
  const src = await page.evaluate(() => [...document.scripts].map((s) => s.src).find((s) => s && !s.startsWith(location.origin)));
  if (src) allowed.add(originOf(src));
}

function checkNoProblems() {
  const found = [...problems.splice(0), ...offsite.splice(0)
    .filter((line) => !allowed.has(originOf(line.slice(line.indexOf(': ') + 2))))
    .map((line) => line.replace(': ', ': request left the origin: '))];
  assert.deepEqual(found, [], `the page misbehaved:\n${found.join('\n')}`);
}

// What the shopper sees, for failure messages.
const visible = (page) => page.evaluate(() => {
  const q = (s) => document.querySelector(s);
  return JSON.stringify({
    url: location.href,
    state: q('#state')?.dataset.state,
    countdown: q('#countdown')?.textContent,
    queueHidden: q('#queue')?.hidden,
    phase: q('#queue')?.dataset.phase,
    note: q('#queue-note')?.textContent,
    place: q('#queue-place-line')?.hidden ? null : q('#queue-place-line')?.textContent,
    serving: q('#queue-serving')?.textContent,
    eta: q('#queue-eta')?.textContent,
    queueMessage: q('#queue-message')?.textContent,
    joinHidden: q('#join')?.hidden,
    buyHidden: q('#buy')?.hidden,
    buyDisabled: q('#buy')?.disabled,
    orderHidden: q('#order')?.hidden,
    orderStatus: q('#order-status')?.dataset.status,
    message: q('#message')?.textContent,
  });
}).catch((e) => `(page unreadable: ${e.message})`);

const { shot, expectSoon, signIn } = pageChecks(SHOTS, visible);

// Joins the queue from the page: the button, the proof of work solved in the page, the
// join. Returns the proof the page sent.
async function joinQueue(page, calls, who) {
  await expectSoon(page, '#join:enabled', `${who} is offered to join the queue`, { state: 'visible', timeout: 15_000 });
  assert.equal(await page.locator('#buy').isHidden(), true, `no Buy button before ${who} has a pass: ${await visible(page)}`);
  await page.locator('#join').click();
  await expectSoon(page, '#queue[data-joined="true"]', `${who} is in the queue`, { timeout: 60_000 });
  const proofs = calls.joins.filter((j) => j.body && typeof j.body === 'object' && j.body.proof);
  assert.ok(proofs.length >= 1, `${who}'s page sent a proof with the join: ${JSON.stringify(calls.joins.map((j) => j.body))}`);
  const { body, auth } = proofs[proofs.length - 1];
  const proof = body.proof;
  assert.deepEqual(Object.keys(proof).sort(), ['algorithm', 'challenge', 'number', 'salt', 'signature'], 'ALTCHA\'s payload');
  assert.equal(proof.algorithm, 'SHA-256');
  assert.ok(Number.isInteger(proof.number) && proof.number >= 0, `a number: ${proof.number}`);
  assert.equal(createHash('sha256').update(`${proof.salt}${proof.number}`).digest('hex'), proof.challenge,
    'the page found the number whose SHA-256 of salt + number is the challenge');
  assert.match(await auth ?? '', /^Bearer \S+$/, 'the join is signed in');
  const notes = await page.evaluate(() => window.queueNotes);
  assert.ok(notes.includes('Checking your browser…'), `the page said it was checking the browser: ${JSON.stringify(notes)}`);
  return proof;
}

test('shoppers wait their turn in the queue; the first through buys the one unit, the other sees it sold out', async () => {
  const saleRes = await fetch(`${BASE_URL}/api/sales/${SALE}`);
  assert.equal(saleRes.status, 200, `GET /api/sales/${SALE}`);
  const sale = await saleRes.json();
  const mode = sale.waiting_room?.mode;
  assert.ok(['fifo', 'shuffled'].includes(mode), `sale ${SALE} has a waiting room: ${JSON.stringify(sale.waiting_room)}`);
  assert.equal(sale.remaining, 1, `sale ${SALE} has one unit left`);
  // The opening by this machine's clock (the server's may differ).
  const opening = Date.now() + (Date.parse(sale.starts_at) - Date.parse(sale.server_time));
  const beforeOpening = (margin = 1500) => Date.now() < opening - margin;
  if (!beforeOpening(5000)) console.log(`sale ${SALE} opens at ${sale.starts_at}, too soon to watch the queue before the opening`);

  // Shopper A joins.
  const a = await newShopper('A', DESKTOP);
  const page = a.page;
  const response = await page.goto(`${BASE_URL}/sales/${SALE}`);
  assert.equal(response?.status(), 200, `GET /sales/${SALE}`);
  await allowPaymentsOrigin(page);
  await expectSoon(page, '#queue', 'the waiting room shows', { state: 'visible' });
  await expectSoon(page, '#queue-note:has-text("Sign in to join the queue")', 'a shopper not signed in is asked to sign in first');
  await signIn(page, 'queue-a');
  await joinQueue(page, a.calls, 'A');

  const pow = await page.locator('#queue').evaluate((el) => ({ ...el.dataset }));
  assert.match(pow.powMs ?? '', /^\d+(\.\d+)?$/, `the page timed the proof of work: ${JSON.stringify(pow)}`);
  console.log(`proof-of-work: solved maxnumber=${pow.powMaxnumber} in ${pow.powMs} ms`);
  console.log(`proof-of-work: number=${pow.powNumber}, ${Number(pow.powNumber) + 1} hashes`);
  if (beforeOpening()) {
    if (mode === 'shuffled') {
      await expectSoon(page, '#queue[data-phase="drawing"]', 'A waits for the draw');
      assert.equal(await page.locator('#queue-eta').textContent(), 'Places are drawn at the opening');
    } else {
      await expectSoon(page, '#queue[data-phase="waiting"]', 'A waits in line');
      assert.match(await page.locator('#queue-place-line').textContent(), /^Your place: \d+$/);
      assert.match(await page.locator('#queue-eta').textContent(), /^Your turn in about \d+ (s|min)$/);
    }
    assert.equal(await page.locator('#buy').isHidden(), true, 'no Buy button while waiting');
  }
  await expectSoon(page, '#queue[data-serving]', 'the number served shows');
  assert.match(await page.locator('#queue-serving-line').textContent(), /^Now serving: \d+$/);
  await shot(page, '20-queue-joined.png');

  // Shopper B joins while A waits, on a phone.
  const b = await newShopper('B', PHONE);
  const pageB = b.page;
  await pageB.goto(`${BASE_URL}/sales/${SALE}`);
  await signIn(pageB, 'queue-b');
  await joinQueue(pageB, b.calls, 'B');
  const overflow = await pageB.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the waiting room fits a 390 px phone (it is ${overflow} px too wide)`);
  await expectSoon(page, '#queue-length:has-text("2 shoppers in the queue")', 'A sees B join the queue', { timeout: 15_000 });
  await shot(page, '21-queue-waiting.png');

  // A watches the queue move: the number served grows once the sale opens.
  const serving0 = Number(await page.locator('#queue').getAttribute('data-serving'));
  const etas = [];
  const deadline = Math.max(Date.now(), opening) + 30_000;
  for (;;) {
    const eta = await page.locator('#queue-eta').textContent();
    if (eta && eta !== etas[etas.length - 1]) etas.push(eta);
    if (Number(await page.locator('#queue').getAttribute('data-serving')) > serving0) break;
    if (Date.now() > deadline) {
      await shot(page, 'failed-the-queue-moves.png').catch(() => {});
      assert.fail(`the number served stays ${serving0}; the page shows ${await visible(page)}`);
    }
    await sleep(250);
  }
  console.log(`A's wait, as the page put it: ${etas.join(' → ')}`);

  // A's turn: the page takes a pass on its own and offers Buy.
  await expectSoon(page, '#buy:enabled', 'A gets a pass when the queue reaches A', { state: 'visible', timeout: 30_000 });
  assert.ok(a.calls.passes.includes(200), `the page took a pass: ${JSON.stringify(a.calls.passes)}`);
  assert.equal(await page.locator('#queue').getAttribute('data-phase'), 'turn');
  const place = Number((await page.locator('#queue-place-line').textContent()).replace(/^Your place: /, ''));
  const serving = Number(await page.locator('#queue').getAttribute('data-serving'));
  assert.ok(place >= 1 && place <= serving, `A's place ${place} is served (serving ${serving})`);
  await page.locator('#buy').click();
  await expectSoon(page, '#order-status[data-status="UNPAID"]', 'A\'s order is reserved', { timeout: 30_000 });
  // A pass refused (it lapsed) is replaced once by the page: the last purchase is the one that counts.
  const purchase = a.calls.purchases[a.calls.purchases.length - 1];
  assert.equal(purchase?.status, 202, `A is admitted: ${JSON.stringify(a.calls.purchases)}`);
  assert.equal(purchase.sent.quantity, 1, 'one unit');
  assert.ok(typeof purchase.sent.pass === 'string' && purchase.sent.pass.length > 0, `the purchase carries the pass: ${JSON.stringify(purchase.sent)}`);
  assert.ok(a.calls.purchases.length <= 2, `one purchase, or two with a pass replaced: ${JSON.stringify(a.calls.purchases)}`);
  assert.match(await page.locator('#order-id').textContent(), /^\d+$/, 'an order id is shown');
  await expectSoon(page, '#queue[data-phase="through"]', 'the waiting room says A is through');
  assert.equal(await page.locator('#buy').isHidden(), true, 'the pass is spent: no second purchase');
  await shot(page, '22-queue-bought.png');

  // B, still waiting (or holding a pass of no more use), sees the sale sold out.
  await expectSoon(pageB, '#queue[data-phase="sold_out"]', 'B sees the sale sold out in the waiting room', { timeout: 20_000 });
  assert.equal(await pageB.locator('#queue-note').textContent(), 'Sold out');
  assert.equal(await pageB.locator('#buy').isHidden(), true, `B cannot buy: ${await visible(pageB)}`);
  assert.equal(await pageB.locator('#order').isHidden(), true, 'B has no order');
  // Sold out: the page stops asking for the queue's status (one call may still be under way).
  const polled = b.calls.statusAuth.length;
  await sleep(4000);
  assert.ok(b.calls.statusAuth.length <= polled + 1, `B's page stopped polling: ${b.calls.statusAuth.length - polled} more status calls`);
  await shot(pageB, '23-queue-sold-out.png');

  // The status is public and cached at the edge: never asked for with a token.
  for (const [who, calls] of [['A', a.calls], ['B', b.calls]]) {
    const auth = await Promise.all(calls.statusAuth);
    assert.ok(auth.length >= 2, `${who}'s page polled the queue's status (${auth.length} calls)`);
    assert.deepEqual(auth.filter(Boolean), [], `${who}'s status calls carry no Authorization`);
  }
  await a.context.close();
  await b.context.close();
  checkNoProblems();
});
