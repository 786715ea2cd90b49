// The shopper's side of a sale page. The HTML is static and cached at the edge, so
// everything live (stock left, the clock, the shopper's order) comes from the API here.
'use strict';
(async () => {
  if (!(await flashsale.ready)) return;
  const { $, store, claimsOf, startSignIn, STATUS_TEXT, session } = flashsale;
  const root = $('sale');
  if (!root) return;
  const saleId = root.dataset.saleId;
  const api = root.dataset.api || '/api';
  const ORDER_KEY = `flashsale.order.${saleId}`;
  const STATE_TEXT = { upcoming: 'Not open yet', open: 'On sale now', sold_out: 'Sold out', ended: 'This sale has ended' };
  const SALE_POLL_MS = 2000, ORDER_POLL_MS = 500, TICK_MS = 200;

  // Assign only on change: the ticker runs 5×/s and #message is a live region.
  const put = (el, text) => { if (el.textContent !== text) el.textContent = text; };
  const say = (text) => put($('message'), text);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const pad = (n) => String(n).padStart(2, '0');
  const problem = (body) => String(body && body.type || '').split('/').pop();

  let token = session.token();
  // Knowing the expiry up front beats a 401 in the very second the sale opens.
  const claims = claimsOf;
  const tokenExpiry = (t) => {
    const exp = claims(t).exp;
    return typeof exp === 'number' ? exp * 1000 : Infinity;
  };
  let expiry = token ? tokenExpiry(token) : 0;
  const signIn = root.dataset.signInUrl || '/sign-in';
  $('signin').addEventListener('click', (event) => {
    event.preventDefault();
    startSignIn(signIn);
  });

  // Server clock = performance.now() + offset: monotonic, so a device clock that is
  // wrong or jumps cannot open the sale early or late. Until the first answer, trust the device.
  let offset = Date.now() - performance.now();
  const samples = [];
  const serverNow = () => performance.now() + offset;

  let sale = null, order = null, buying = false, paying = false, orderTimer = 0, watching = 0, openTimer = 0;

  // The sale is public and cached at the edge: no Authorization there, so every shopper shares the cache.
  // `cache` is the fetch's cache mode: 'no-store' (which also asks the caches on the way
  // for a fresh answer), or 'default' for an answer the edge's cache is meant to give.
  // A call with the token renews it once on a 401 and tries again.
  async function call(method, path, { body, auth = true, cache = 'no-store' } = {}) {
    const send = async (bearer) => {
      const headers = { Accept: 'application/json' };
      if (bearer) headers.Authorization = `Bearer ${bearer}`;
      if (body) headers['Content-Type'] = 'application/json';
      const t0 = performance.now();
      try {
        const res = await fetch(api + path, {
          method, headers, body: body && JSON.stringify(body),
          cache, signal: AbortSignal.timeout(10000),
        });
        const json = await res.json().catch(() => null);
        return { status: res.status, body: json, t0, t1: performance.now(), age: Number(res.headers.get('Age')) || 0 };
      } catch {
        return { status: 0, body: null };
      }
    };
    return auth && token ? session.authorized(send) : send(null);
  }

  // A renewed token (here or in another tab) is used from then on; a refused renewal,
  // or a sign-out in another tab, signs the shopper out here.
  session.onChange((t) => {
    if (t) {
      token = t;
      expiry = tokenExpiry(t);
      render();
    } else if (token) {
      signOut();
    }
  });

  function signOut() {
    token = null;
    expiry = 0;
    session.drop();
    // A place in the queue is the shopper's: it comes back (the stored flag) after signing in again.
    Object.assign(queue, { joined: false, position: null, pass: null, passExpires: 0 });
    say('Sign in to buy');
    render();
  }

  // The state by the server's clock, with the same precedence as the server's own rule.
  function saleState() {
    if (!sale) return null;
    const now = serverNow();
    if (now >= sale.ends) return 'ended';
    if (sale.remaining <= 0) return 'sold_out';
    return now < sale.starts ? 'upcoming' : 'open';
  }

  function showRemaining(remaining) {
    sale.remaining = remaining;
    put($('stock-left'), String(remaining));
  }

  async function pollSale() {
    const r = await call('GET', `/sales/${encodeURIComponent(saleId)}`, { auth: false });
    if (r.status === 200 && r.body) {
      // The midpoint of the request is the best guess of when the server read its clock;
      // an edge-cached answer is older by its Age. Keep the tightest of the recent samples.
      samples.push({ rtt: r.t1 - r.t0, offset: Date.parse(r.body.server_time) + r.age * 1000 - (r.t0 + r.t1) / 2 });
      if (samples.length > 15) samples.shift();
      offset = samples.reduce((a, b) => (b.rtt < a.rtt ? b : a)).offset;
      sale = { ...r.body, starts: Date.parse(r.body.starts_at), ends: Date.parse(r.body.ends_at) };
      put($('stock'), String(sale.stock));
      showRemaining(sale.remaining);
      if (queued()) watchQueue();
    }
    render();
    setTimeout(pollSale, SALE_POLL_MS);
  }

  const countdown = (ms) => {
    const s = Math.max(0, Math.ceil(ms / 1000));
    return `${pad(Math.floor(s / 3600))}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
  };

  // One unit per shopper in flight; a paid order also holds a limit of one.
  const holding = () => !!order && (['PENDING', 'UNPAID'].includes(order.status) ||
    (order.status === 'PAID' && !!sale && sale.per_user_limit <= 1));

  function render() {
    const now = serverNow();
    // Ended by the server's clock (never the device's) before it was renewed: renew it now.
    if (token && samples.length && now >= expiry) session.lapsed();
    const state = saleState();
    if (state) {
      put($('state'), STATE_TEXT[state]);
      $('state').dataset.state = state;
    }
    if (state === 'upcoming') {
      put($('countdown'), `Opens in ${countdown(sale.starts - now)}`);
      // The ticker alone could be up to one tick late; open on the dot.
      if (sale.starts - now < TICK_MS && !openTimer) {
        openTimer = setTimeout(() => { openTimer = 0; render(); }, sale.starts - now + 1);
      }
    } else {
      put($('countdown'), state === 'open' ? `Ends in ${countdown(sale.ends - now)}` : '');
    }
    const held = holding();
    // With a waiting room, the queue's panel stands in for the button until a pass is held.
    if (queued()) advanceQueue(queuePhase());
    const phase = queued() ? queuePhase() : null;
    $('queue').hidden = phase === null;
    if (phase !== null) showQueue(phase);
    $('buy').hidden = phase !== null && !buying && !(phase === 'turn' && queue.pass);
    $('buy').disabled = !token || state !== 'open' || buying || !!held || (phase !== null && !queue.pass);
    $('signin').hidden = !!token;

    const left = order && order.status === 'UNPAID' && order.expires_at ? Date.parse(order.expires_at) - now : null;
    const payable = left !== null && left > 0;
    if (payable) mountCard();
    $('payment').hidden = !payable;
    $('pay').disabled = paying || !card;
    if (left === null) put($('order-time-left'), '');
    else if (payable) {
      const s = Math.ceil(left / 1000);
      put($('order-time-left'), `Time left to pay: ${pad(Math.floor(s / 60))}:${pad(s % 60)}`);
    } else if ($('order-time-left').textContent !== 'Your reservation has expired') {
      put($('order-time-left'), 'Your reservation has expired');
      say('Your reservation expired');
    }
  }

  function showOrder(o) {
    const before = order && order.order_id === o.order_id ? order.status : null;
    order = o;
    $('order').hidden = false;
    put($('order-id'), String(o.order_id));
    put($('order-status'), STATUS_TEXT[o.status] || o.status);
    $('order-status').dataset.status = o.status;
    // Announce what changed while the shopper watched; a reload just shows the status.
    if (o.status === 'PAID' && before && before !== 'PAID') say('Paid — thank you!');
    if (o.status === 'CLOSED') say('Your reservation expired and the item went back on sale');
    if (o.status === 'REJECTED') say('Sorry, this order could not be confirmed');
    if (o.status === 'REFUNDED') {
      say(o.paid_at ? 'Your payment has been refunded' : 'Your payment came after the reservation expired; it has been refunded');
    }
    if (o.status !== 'UNPAID') confirming = false;
    // Finished without a sale: nothing to resume after a reload, and the shopper may buy again.
    if (['CLOSED', 'REJECTED', 'REFUNDED'].includes(o.status)) store.del(ORDER_KEY);
    render();
  }

  async function watchOrder(id) {
    const me = ++watching; // a newer watch (reload, limit-reached) supersedes this one
    const r = await call('GET', `/orders/${encodeURIComponent(id)}`);
    if (me !== watching) return;
    let next = 2000;
    if (r.status === 401) return signOut();
    if (r.status === 404) { // someone else's order (another shopper used this browser) or gone
      store.del(ORDER_KEY);
      if (order && order.order_id === id) { order = null; $('order').hidden = true; render(); }
      return;
    }
    if (r.status === 200 && r.body) {
      showOrder(r.body);
      if (r.body.status === 'PENDING') next = ORDER_POLL_MS;
      // Paid at the provider: the order says so once its webhook has arrived.
      else if (r.body.status === 'UNPAID' && confirming) next = ORDER_POLL_MS;
      // Look again when the window ends: the server then closes it (or it got paid elsewhere).
      else if (r.body.status === 'UNPAID') next = Math.max(next, Date.parse(r.body.expires_at) - serverNow());
      else return; // PAID, CLOSED, REJECTED, REFUNDED and DISPUTED are final here
    }
    orderTimer = setTimeout(() => watchOrder(id), next);
  }

  function follow(id, delay = 0) {
    store.set(ORDER_KEY, id);
    clearTimeout(orderTimer);
    watching++;
    orderTimer = setTimeout(() => watchOrder(id), delay);
  }

  // A call the API may throttle (429): full jitter spreads a crowd's retries instead of
  // having them all come back at once.
  async function retrying(method, path, options) {
    for (let attempt = 0; ; attempt++) {
      const r = await call(method, path, options);
      if (r.status !== 429 || attempt === 5) return r;
      say('Lots of shoppers right now — retrying…');
      await sleep(Math.random() * Math.min(4000, 250 * 2 ** attempt));
    }
  }

  async function buy() {
    buying = true;
    render();
    // Behind a waiting room the purchase carries the shopper's pass; one that lapsed
    // (or is refused: expired, already spent) is replaced once.
    const withPass = queued();
    if (withPass && !queue.pass) await getPass({ asked: true });
    if (withPass && !queue.pass) {
      buying = false;
      return render();
    }
    const purchase = () => retrying('POST', `/sales/${encodeURIComponent(saleId)}/purchase`,
      { body: withPass ? { quantity: 1, pass: queue.pass } : { quantity: 1 } });
    let r = await purchase();
    if (withPass && r.status === 403 && problem(r.body) === 'pass-refused') {
      queue.pass = null;
      if (await getPass({ asked: true })) r = await purchase();
    }
    // Spent, refused or of no more use; a pass the answer did not settle (no answer, 429, 5xx) is kept.
    if (withPass && [202, 403, 409].includes(r.status)) queue.pass = null;
    buying = false;
    const kind = problem(r.body);
    if (r.status === 202 && r.body) {
      const id = String(r.body.order_id);
      if (sale && Number.isInteger(r.body.remaining)) showRemaining(r.body.remaining);
      say('');
      showOrder({ order_id: id, status: r.body.status || 'PENDING', expires_at: null });
      follow(id, ORDER_POLL_MS);
    } else if (r.status === 409 && kind === 'sold-out') {
      if (sale) showRemaining(0); // until the next poll says otherwise
      say('Sold out — every unit has been taken');
    } else if (r.status === 409 && kind === 'limit-reached') {
      say('You already have this item');
      const ids = (r.body && r.body.order_ids) || [];
      if (ids.length) follow(String(ids[0]));
    } else if (r.status === 409 && kind === 'not-open') {
      say('The sale is not open');
    } else if (r.status === 403 && kind === 'pass-refused') {
      say('Your pass to buy was not accepted — getting you a new one');
    } else if (r.status === 401) {
      signOut();
    } else if (r.status === 429) {
      say('Too many shoppers right now — please try again in a moment');
    } else {
      say('Something went wrong — please try again');
    }
    render();
  }

  // The waiting room, for a sale that has one. A shopper joins the queue with a proof of
  // work the page solves (ALTCHA's: a few seconds of hashing for one shopper, a real cost
  // for a farm of bots), watches the public status, and when the number served reaches
  // their place takes a short-lived pass, which the purchase carries. The pass stays in
  // memory; all that is stored is whose place this browser holds (no secret), so a
  // reload asks for the same place again without a new proof.
  const QUEUE_POLL_MS = 1500;
  const QUEUE_KEY = `flashsale.queue.${saleId}`;
  const PASS_RETRY_MS = 1500;
  const queue = {
    watching: false, status: null, timer: 0, stopped: null, resumeArmed: false, strictAfter: 0,
    joined: false, joining: null, position: null, rejoinBusy: false, rejoinAt: null,
    pass: null, passExpires: 0, passBusy: false, passAfter: 0, gone: false,
  };
  const queued = () => !!(sale && sale.waiting_room) && !queue.gone;
  const member = () => (token && claims(token).sub) || '';
  const queuePath = (tail) => `/sales/${encodeURIComponent(saleId)}/${tail}`;
  const opensAt = () => {
    const at = queue.status && Date.parse(queue.status.opens_at);
    return Number.isFinite(at) ? at : sale.starts;
  };

  // What the panel shows, first match wins.
  function queuePhase() {
    const st = queue.status;
    if ((st && st.ended) || saleState() === 'ended') return 'ended';
    if (holding()) return 'through';
    if ((st && st.sold_out) || saleState() === 'sold_out') return 'sold_out';
    if (queue.joining) return 'joining';
    if (!queue.joined) return 'idle';
    if (queue.position === null) return 'drawing';
    if (queue.pass || (st && st.serving >= queue.position)) return 'turn';
    return 'waiting';
  }

  // Starts the status poll once the sale says it has a waiting room, and brings back
  // the place this shopper already holds. After a sellout the poll stops; it starts
  // again if units come back (an unpaid reservation lapsed), as the sale's own poll
  // sees them go from none to some.
  function watchQueue() {
    if (!queue.watching) {
      queue.watching = true;
      pollQueue();
      if (token && store.get(QUEUE_KEY) === member()) rejoin({ quietly: true });
      return;
    }
    if (queue.stopped !== 'sold_out') return;
    if (sale.remaining <= 0) queue.resumeArmed = true;
    else if (queue.resumeArmed) {
      queue.stopped = null;
      queue.resumeArmed = false;
      queue.strictAfter = performance.now() + 5 * QUEUE_POLL_MS; // past the edge's cached answers
      pollQueue();
    }
  }

  // The status is public and cached at the edge for everyone alike: no Authorization
  // (the edge would key its cache by it), and the browser's cache may serve it too.
  async function pollQueue() {
    clearTimeout(queue.timer);
    queue.timer = 0;
    const r = await call('GET', queuePath('queue/status'), { auth: false, cache: 'default' });
    if (r.status === 200 && r.body) queue.status = r.body;
    const st = queue.status;
    if ((st && st.ended) || saleState() === 'ended') queue.stopped = 'ended';
    else if (st && st.sold_out && performance.now() >= queue.strictAfter) queue.stopped = 'sold_out';
    else queue.timer = setTimeout(pollQueue, QUEUE_POLL_MS * (0.8 + Math.random() * 0.4));
    render();
  }

  async function join() {
    if (!token || queue.joining || queue.joined) return;
    let r = null;
    // A refused proof (expired, used, or an unsolvable challenge) gets one fresh challenge.
    for (let attempt = 0; attempt < 2; attempt++) {
      queue.joining = 'checking';
      render();
      const challenge = await retrying('GET', queuePath('queue/challenge'));
      if (challenge.status !== 200 || !challenge.body) {
        r = challenge;
        break;
      }
      const proof = await solve(challenge.body);
      r = { status: 403, body: { type: '/problems/proof-refused' } };
      if (!proof) continue;
      queue.joining = 'joining';
      render();
      r = await retrying('POST', queuePath('queue'), { body: { proof } });
      if (!(r.status === 403 && problem(r.body) === 'proof-refused')) break;
    }
    queue.joining = null;
    const kind = problem(r.body);
    // 201 for a new place, 200 for the one the shopper had.
    if ((r.status === 200 || r.status === 201) && r.body) {
      placed(r.body);
      say(''); // the panel tells the place
    } else if (r.status === 403 && kind === 'proof-refused') {
      say('Your browser could not be checked — please try again');
    } else if (r.status === 409 && kind === 'no-waiting-room') {
      queue.gone = true; // the sale is bought as any other
      say('');
    } else if ((r.status === 409 && kind === 'not-open') || r.status === 404) {
      say('This sale has ended');
    } else if (r.status === 401) {
      signOut();
    } else if (r.status === 429) {
      say('Too many shoppers right now — please try again in a moment');
    } else {
      say('Something went wrong — please try again');
    }
    render();
  }

  function placed(body) {
    queue.joined = true;
    queue.position = Number.isInteger(body.position) ? body.position : null;
    if (queue.position !== null) queue.rejoinAt = null;
    store.set(QUEUE_KEY, member());
  }

  // Asks for the place already held, without a proof: after a reload, and for a place
  // drawn at the opening. Refused: this shopper holds none (any more).
  async function rejoin({ quietly = false } = {}) {
    queue.rejoinBusy = true;
    if (quietly) queue.joining = 'joining';
    const r = await retrying('POST', queuePath('queue'), { body: {} });
    queue.rejoinBusy = false;
    if (quietly) queue.joining = null;
    const kind = problem(r.body);
    if (r.status === 200 && r.body) placed(r.body);
    else if (r.status === 403 && kind === 'proof-refused') {
      Object.assign(queue, { joined: false, position: null });
      store.del(QUEUE_KEY);
    } else if (r.status === 409 && kind === 'no-waiting-room') queue.gone = true;
    else if (r.status === 401) signOut();
    render();
  }

  // The proof of work: the number in 0..=maxnumber whose SHA-256 of salt + number is
  // the challenge. Digests go out a batch at a time and the page gets a turn between
  // batches, so it stays responsive; the time it took is left on the panel.
  async function solve(c) {
    const target = typeof c.challenge === 'string' && /^[0-9a-f]{64}$/i.test(c.challenge)
      ? Uint8Array.from(c.challenge.toLowerCase().match(/../g), (h) => parseInt(h, 16)) : null;
    if (c.algorithm !== 'SHA-256' || !target || typeof c.salt !== 'string' || !Number.isSafeInteger(c.maxnumber) || c.maxnumber < 0) {
      return null;
    }
    const salt = new TextEncoder().encode(c.salt);
    const BATCH = 1000;
    const t0 = performance.now();
    let found = null, paused = t0;
    for (let start = 0; start <= c.maxnumber && found === null; start += BATCH) {
      const digests = [];
      for (let n = start; n <= Math.min(c.maxnumber, start + BATCH - 1); n++) {
        const digits = String(n);
        const input = new Uint8Array(salt.length + digits.length);
        input.set(salt);
        for (let i = 0; i < digits.length; i++) input[salt.length + i] = digits.charCodeAt(i);
        digests.push(crypto.subtle.digest('SHA-256', input));
      }
      const hashes = await Promise.all(digests);
      for (let i = 0; i < hashes.length && found === null; i++) {
        const hash = new Uint8Array(hashes[i]);
        if (target.every((byte, j) => hash[j] === byte)) found = start + i;
      }
      if (performance.now() - paused > 50) {
        await sleep(0);
        paused = performance.now();
      }
    }
    const panel = $('queue').dataset;
    panel.powMaxnumber = String(c.maxnumber);
    panel.powMs = (performance.now() - t0).toFixed(1);
    panel.powNumber = found === null ? '' : String(found);
    if (found === null) return null;
    return { algorithm: c.algorithm, challenge: c.challenge, number: found, salt: c.salt, signature: c.signature };
  }

  // The pass, once the number served reaches the shopper's place. `asked`: the shopper
  // pressed Buy, so a refusal is worth saying.
  async function getPass({ asked = false } = {}) {
    if (queue.passBusy) return false;
    queue.passBusy = true;
    const r = await call('POST', queuePath('pass'));
    queue.passBusy = false;
    queue.passAfter = performance.now() + PASS_RETRY_MS * (1 + Math.random());
    const kind = problem(r.body);
    if (r.status === 200 && r.body && typeof r.body.pass === 'string') {
      queue.pass = r.body.pass;
      const expires = Date.parse(r.body.expires_at);
      queue.passExpires = Number.isFinite(expires) ? expires : serverNow() + 30_000;
      if (Number.isInteger(r.body.position)) queue.position = r.body.position;
      return true;
    }
    if (r.status === 409 && kind === 'not-your-turn') {
      // Fresher than the edge's status: keep waiting on these.
      if (r.body.position === null || Number.isInteger(r.body.position)) queue.position = r.body.position;
      if (queue.status && Number.isInteger(r.body.serving)) queue.status = { ...queue.status, serving: r.body.serving };
      if (asked) say('Not your turn yet — please wait');
    } else if (r.status === 409 && kind === 'sold-out') {
      showRemaining(0); // until the next poll says otherwise
      say('Sold out — every unit has been taken');
    } else if (r.status === 409 && kind === 'not-open') {
      if (asked) say('The sale is not open');
    } else if (r.status === 404) {
      Object.assign(queue, { joined: false, position: null });
      store.del(QUEUE_KEY);
      say('Your place in the queue was lost — please join again');
    } else if (r.status === 401) {
      signOut();
    } else if (asked) {
      say(r.status === 429 ? 'Too many shoppers right now — please try again in a moment' : 'Something went wrong — please try again');
    }
    return false;
  }

  // What the queue does next, on every tick: learn a place drawn at the opening, drop a
  // pass that lapsed, and take the pass when the turn has come.
  function advanceQueue(phase) {
    if (!token || queue.stopped === 'ended') return;
    const now = serverNow();
    if (phase === 'drawing' && !queue.rejoinBusy) {
      // Spread over a second and a half: every early joiner asks at the opening.
      if (queue.rejoinAt === null) queue.rejoinAt = opensAt() + Math.random() * 1500;
      if (now >= queue.rejoinAt) {
        queue.rejoinAt = now + 2000;
        rejoin();
      }
    }
    if (queue.pass && !buying && now >= queue.passExpires - 1000) queue.pass = null;
    if (phase === 'turn' && !queue.pass && !queue.passBusy && !buying && saleState() === 'open'
      && performance.now() >= queue.passAfter) getPass();
  }

  const about = (secs) => (secs < 90 ? `about ${Math.max(1, Math.ceil(secs))} s` : `about ${Math.round(secs / 60)} min`);

  function queueEta(phase) {
    const st = queue.status;
    if (phase === 'drawing') return 'Places are drawn at the opening';
    if (phase === 'turn') {
      return queue.pass ? `Your pass is good for ${Math.max(0, Math.ceil((queue.passExpires - serverNow()) / 1000))} s more` : 'Getting your pass…';
    }
    if (phase !== 'waiting' || !st) return '';
    if (st.paused) return 'The queue is paused — your place is kept';
    if (!(st.rate > 0)) return 'Your wait is unknown for now';
    // Before the opening the wait until it counts too.
    return `Your turn in ${about(Math.max(0, opensAt() - serverNow()) / 1000 + (queue.position - st.serving) / st.rate)}`;
  }

  const QUEUE_NOTE = {
    joining: () => (queue.joining === 'checking' ? 'Checking your browser…' : 'Joining the queue…'),
    idle: () => (token ? 'Join the queue for your turn to buy' : 'Sign in to join the queue'),
    drawing: () => "You're in the queue",
    waiting: () => "You're in the queue — keep this page open",
    turn: () => (queue.pass ? "It's your turn — buy now" : "It's your turn"),
    through: () => "You're through — your order is below",
    sold_out: () => 'Sold out',
    ended: () => 'This sale has ended',
  };

  function showQueue(phase) {
    const panel = $('queue');
    const mark = (key, value) => { if (panel.dataset[key] !== value) panel.dataset[key] = value; };
    const st = queue.status;
    mark('phase', phase);
    mark('joined', String(queue.joined));
    if (st) mark('serving', String(st.serving));
    if (queue.position !== null) mark('position', String(queue.position));
    $('join').hidden = !token || !['idle', 'joining'].includes(phase);
    $('join').disabled = phase === 'joining';
    put($('queue-note'), QUEUE_NOTE[phase]());
    $('queue-place-line').hidden = !queue.joined || queue.position === null;
    put($('queue-place'), queue.position === null ? '–' : String(queue.position));
    put($('queue-serving'), st ? String(st.serving) : '–');
    put($('queue-length'), st ? `${st.length} ${st.length === 1 ? 'shopper' : 'shoppers'} in the queue` : '');
    put($('queue-eta'), queueEta(phase));
    put($('queue-message'), (st && typeof st.message === 'string') ? st.message : '');
  }

  // The payment provider's script (Stripe.js) collects the card in its own fields; the
  // order becomes PAID when the provider tells the server (its webhook), not here.
  const paymentsKey = $('sale').dataset.paymentsKey;
  let stripe = null;
  let card = null;
  let confirming = false;

  function mountCard() {
    if (card || !window.Stripe || !paymentsKey) return;
    stripe = window.Stripe(paymentsKey);
    card = stripe.elements().create('card');
    card.mount('#card');
  }

  async function pay(event) {
    event.preventDefault();
    if (!order || !card) return;
    paying = true;
    render();
    const id = order.order_id;
    const r = await call('POST', `/orders/${encodeURIComponent(id)}/payment`);
    if (r.status === 200 && r.body && r.body.client_secret) {
      say('Paying…');
      const result = await stripe.confirmCardPayment(r.body.client_secret, { payment_method: { card } });
      if (result.error) {
        say(`Payment failed: ${result.error.message || 'declined'} — you can try another card`);
      } else {
        confirming = true;
        say('Payment received — confirming your order…');
        follow(id);
      }
    } else if (r.status === 409 && problem(r.body) === 'not-payable') {
      const status = r.body.order_status;
      say(`This order can't be paid: ${(STATUS_TEXT[status] || status || 'unknown').toLowerCase()}`);
      watchOrder(id);
    } else if (r.status === 401) {
      signOut();
    } else if (r.status === 503) {
      say('Payments are unavailable right now — please try again in a moment');
    } else {
      say('Something went wrong — please try again');
    }
    paying = false;
    render();
  }

  $('buy').addEventListener('click', buy);
  $('join').addEventListener('click', join);
  $('payment').addEventListener('submit', pay);
  if (!token) signOut();
  session.start();
  const resumed = store.get(ORDER_KEY);
  if (resumed && token) follow(resumed);
  pollSale();
  setInterval(render, TICK_MS);
})();
