// The shopper's side of a sale page. The HTML is static and cached at the edge, so
// everything live (stock left, the clock, the shopper's order) comes from the API here.
'use strict';
(async () => {
  const $ = (id) => document.getElementById(id);
  // A return path only if it stays on this site. Browsers read `/\host` and `//host`
  // as another host, so the path is resolved as the browser would and its origin
  // checked, rather than matched as text.
  // The index is cached at the edge and rendered again only when a sale sells out or
  // ends: each listed sale's state (open at its opening, sold out, ended) comes live
  // from the API, by the server's clock.
  function watchIndex(index) {
    const api = index.dataset.api || '/api';
    const POLL_MS = 5000;
    const TEXT = { open: 'On sale now', sold_out: 'Sold out', ended: 'This sale has ended' };
    const entries = [...index.querySelectorAll('.when[data-sale-id]')]
      .map((el) => ({ el, id: el.dataset.saleId, upcoming: el.textContent, sale: null, offset: 0 }));
    const show = (entry) => {
      const sale = entry.sale;
      if (!sale) return;
      const now = Date.now() + entry.offset;
      const state = now >= sale.ends ? 'ended' : sale.remaining <= 0 ? 'sold_out' : now < sale.starts ? 'upcoming' : 'open';
      if (entry.el.dataset.state === state) return;
      entry.el.dataset.state = state;
      entry.el.textContent = TEXT[state] || entry.upcoming;
    };
    const poll = async (entry) => {
      try {
        const res = await fetch(`${api}/sales/${encodeURIComponent(entry.id)}`);
        if (res.ok) {
          const body = await res.json();
          const age = Number(res.headers.get('age')) || 0; // an edge-cached answer is older by its Age
          entry.offset = Date.parse(body.server_time) + age * 1000 - Date.now();
          entry.sale = { remaining: body.remaining, starts: Date.parse(body.starts_at), ends: Date.parse(body.ends_at) };
          show(entry);
        }
      } catch { /* the next poll tries again */ }
      if (entry.el.dataset.state !== 'ended') setTimeout(() => poll(entry), POLL_MS);
    };
    entries.forEach(poll);
    setInterval(() => entries.forEach(show), 250);
  }

  const sameSitePath = (path) => {
    if (!path.startsWith('/')) return null;
    try {
      const url = new URL(path, location.origin);
      return url.origin === location.origin ? url.pathname + url.search : null;
    } catch {
      return null;
    }
  };
  // Sign-in is the authorization code flow with PKCE, against Cognito's hosted UI on
  // AWS and the local stack's dev sign-in alike. The page that starts it keeps a
  // one-time `state` nonce, the PKCE verifier and its own path in sessionStorage; the
  // callback (the index) takes a code only with that nonce, and a token only from the
  // token endpoint. A link carrying someone else's token or code signs no one in.
  // localStorage can throw (private modes, disabled storage); the page must still work.
  const store = {
    get: (k) => { try { return localStorage.getItem(k); } catch { return null; } },
    set: (k, v) => { try { localStorage.setItem(k, v); } catch { /* memory only */ } },
    del: (k) => { try { localStorage.removeItem(k); } catch { /* nothing to drop */ } },
  };
  const TOKEN_KEY = 'flashsale.token';
  const SIGN_IN_KEY = 'flashsale.sign-in';
  const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const nonce = () => b64url(crypto.getRandomValues(new Uint8Array(32)));
  const callbackUrl = () => `${location.origin}/`;

  async function startSignIn(authorizeUrl) {
    const verifier = nonce();
    const state = nonce();
    const challenge = b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
    sessionStorage.setItem(SIGN_IN_KEY, JSON.stringify({ state, verifier, back: location.pathname, authorize: authorizeUrl }));
    const url = new URL(authorizeUrl, location.origin);
    const params = {
      response_type: 'code', redirect_uri: callbackUrl(), scope: 'openid', state,
      code_challenge: challenge, code_challenge_method: 'S256',
    };
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    location.assign(url.toString());
  }

  // On the callback, `?code=…&state=…` from the sign-in: where to go on to once signed
  // in, or null. Anything in the fragment is dropped unread.
  async function finishSignIn() {
    const query = new URLSearchParams(location.search);
    if (location.hash) history.replaceState(null, '', location.pathname + location.search);
    if (!query.has('code') && !query.has('state')) return null;
    history.replaceState(null, '', location.pathname);
    let started = null;
    try { started = JSON.parse(sessionStorage.getItem(SIGN_IN_KEY)); } catch { /* none */ }
    sessionStorage.removeItem(SIGN_IN_KEY);
    if (!started || !query.get('code') || query.get('state') !== started.state) return null;
    const authorize = new URL(started.authorize, location.origin);
    const tokenUrl = new URL(authorize.pathname.replace(/authorize$/, 'token'), authorize.origin);
    const form = new URLSearchParams({
      grant_type: 'authorization_code', client_id: authorize.searchParams.get('client_id') || '',
      code: query.get('code'), redirect_uri: callbackUrl(), code_verifier: started.verifier,
    });
    try {
      const res = await fetch(tokenUrl, { method: 'POST', body: form, signal: AbortSignal.timeout(10000) });
      const tokens = res.ok ? await res.json() : null;
      if (!tokens || !tokens.id_token) return null;
      store.set(TOKEN_KEY, tokens.id_token);
      return sameSitePath(started.back);
    } catch {
      return null;
    }
  }

  const back = await finishSignIn();
  if (back && back !== location.pathname) {
    location.replace(back);
    return;
  }
  const STATUS_TEXT = {
    PENDING: 'Confirming…', UNPAID: 'Reserved — waiting for payment', PAID: 'Paid',
    CLOSED: 'Expired', REJECTED: 'Not confirmed', REFUNDED: 'Expired — payment refunded',
  };
  const storedToken = () => store.get(TOKEN_KEY);
  const dropToken = () => store.del(TOKEN_KEY);
  const dollars = (cents) => `$${(cents / 100).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  const element = (tag, text, props = {}) => Object.assign(document.createElement(tag), { textContent: text ?? '' }, props);

  // The API with the stored token: `{ status, body }`, status 0 when it did not answer.
  async function apiCall(api, method, path, body) {
    const headers = { Accept: 'application/json' };
    const token = storedToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    try {
      const res = await fetch(api + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store', signal: AbortSignal.timeout(10000),
      });
      return { status: res.status, body: await res.json().catch(() => null) };
    } catch {
      return { status: 0, body: null };
    }
  }

  function offerSignIn(root, why) {
    $('message').textContent = why;
    const link = $('signin');
    link.hidden = false;
    link.addEventListener('click', (event) => {
      event.preventDefault();
      startSignIn(root.dataset.signInUrl || '/sign-in');
    });
  }

  // "My orders": the signed-in shopper's orders, newest first, a page at a time.
  async function myOrders(root) {
    const api = root.dataset.api || '/api';
    if (!storedToken()) return offerSignIn(root, 'Sign in to see your orders');
    let before = null;
    async function more() {
      const r = await apiCall(api, 'GET', `/orders${before ? `?before=${before}` : ''}`);
      if (r.status === 401) {
        dropToken();
        return offerSignIn(root, 'Your sign-in has expired: sign in again to see your orders');
      }
      if (r.status !== 200) {
        $('message').textContent = 'Your orders could not be loaded: try again in a moment';
        return;
      }
      for (const order of r.body.orders) {
        const item = element('li', '', { className: 'order' });
        item.dataset.orderId = order.order_id;
        item.dataset.status = order.status;
        item.append(
          element('a', `Sale ${order.sale_id}`, { href: `/sales/${order.sale_id}` }),
          ` · order ${order.order_id} · ${order.quantity} × · ${dollars(order.amount_cents)} · `,
          element('strong', STATUS_TEXT[order.status] || order.status),
          ` · ${new Date(order.created_at).toLocaleString()}`,
        );
        $('orders').append(item);
      }
      if (!before && !r.body.orders.length) $('message').textContent = 'No orders yet.';
      before = r.body.next;
      $('more').hidden = !before;
    }
    $('more').addEventListener('click', more);
    await more();
  }

  // The staff console: the sales, a live funnel and chart of the one watched, a form
  // to create a sale, publishing, and finding an order by id or by shopper.
  async function runConsole(root) {
    const api = root.dataset.api || '/api';
    const say = (text) => { $('message').textContent = text; };
    if (!storedToken()) return offerSignIn(root, 'Shop staff sign in with an account of the admin group.');
    const FIELDS = ['name', 'description', 'price_cents', 'stock', 'per_user_limit', 'starts_at', 'ends_at', 'payment_window_secs'];
    const BUCKET_MS = 10_000, BUCKETS = 30;
    let watched = null;
    const samples = []; // cumulative admissions and payments of the watched sale, as polled

    async function loadSales() {
      if (!storedToken()) return;
      const r = await apiCall(api, 'GET', '/admin/sales?limit=100');
      if (r.status === 401 || r.status === 403) {
        dropToken();
        $('staff').hidden = true;
        return offerSignIn(root, r.status === 403
          ? 'This account is not in the admin group: sign in as shop staff.'
          : 'Your sign-in has expired: sign in again.');
      }
      if (r.status !== 200) return say('The API did not answer; retrying…');
      $('staff').hidden = false;
      $('sales').tBodies[0].replaceChildren(...r.body.sales.map(saleRow));
    }

    function saleRow(sale) {
      const row = element('tr');
      row.dataset.saleId = sale.id;
      row.dataset.state = sale.state;
      const count = (status) => String((sale.orders[status] || {}).orders || 0);
      for (const text of [sale.name, sale.state.replace('_', ' '), `${sale.sold} of ${sale.stock} sold`,
        count('UNPAID'), count('PAID'), count('CLOSED'), count('REJECTED'), count('REFUNDED')]) row.append(element('td', text));
      const watch = element('button', 'Watch', { className: 'watch' });
      watch.addEventListener('click', () => select(sale));
      const cell = element('td');
      cell.append(watch);
      row.append(cell);
      return row;
    }

    function select(sale) {
      watched = sale;
      samples.length = 0;
      $('live').hidden = false;
      $('live').dataset.saleId = sale.id;
      $('live-title').textContent = `${sale.name} (sale ${sale.id})`;
      $('publish').hidden = sale.state !== 'draft';
      refreshLive();
    }

    async function refreshLive() {
      if (!watched || !storedToken()) return;
      const r = await apiCall(api, 'GET', `/admin/sales/${watched.id}/report`);
      if (r.status !== 200) return;
      const report = r.body;
      const orders = (status) => (report.orders[status] || {}).orders || 0;
      const show = (id, value) => { const el = $(id); const text = String(value ?? '–'); if (el.textContent !== text) el.textContent = text; };
      show('f-remaining', report.redis_remaining);
      show('f-pending', report.pending_orders);
      show('f-unpaid', orders('UNPAID'));
      show('f-paid', orders('PAID'));
      show('f-closed', orders('CLOSED'));
      show('f-rejected', orders('REJECTED'));
      show('f-refunded', orders('REFUNDED'));
      show('f-drift', report.drift);
      show('f-captured', dollars(report.money.captured_cents));
      show('f-refunded-money', dollars(report.money.refunded_cents));
      const admitted = ['PENDING', 'UNPAID', 'PAID', 'CLOSED', 'REJECTED', 'REFUNDED'].reduce((sum, s) => sum + orders(s), 0);
      const now = Date.now();
      samples.push({ t: now, admitted, paid: orders('PAID') });
      while (samples.length && samples[0].t < now - (BUCKETS + 1) * BUCKET_MS) samples.shift();
      drawChart(now);
    }

    // Per 10 s bucket: how much each count grew, from the polled samples.
    function drawChart(now) {
      const at = (t, key) => {
        let value = null;
        for (const sample of samples) if (sample.t <= t) value = sample[key];
        return value;
      };
      const series = (key) => Array.from({ length: BUCKETS }, (_, i) => {
        const end = now - (BUCKETS - 1 - i) * BUCKET_MS;
        const [a, b] = [at(end - BUCKET_MS, key) ?? samples[0][key], at(end, key)];
        return b === null ? 0 : b - a;
      });
      const admitted = series('admitted'), paid = series('paid');
      const top = Math.max(1, ...admitted, ...paid);
      const points = (values) => values.map((v, i) => `${(i * 300 / (BUCKETS - 1)).toFixed(1)},${(78 - v * 74 / top).toFixed(1)}`).join(' ');
      $('chart-admitted').setAttribute('points', points(admitted));
      $('chart-paid').setAttribute('points', points(paid));
      $('chart').dataset.admitted = String(admitted.reduce((sum, v) => sum + v, 0));
    }

    $('publish').addEventListener('click', async () => {
      const r = await apiCall(api, 'POST', `/admin/sales/${watched.id}/publish`);
      if (r.status !== 200) return say((r.body && r.body.detail) || 'Publishing failed: try again');
      say(`Sale ${watched.id} is published`);
      $('publish').hidden = true;
      await loadSales();
      refreshLive();
    });

    const form = $('new-sale');
    const errorAt = (field, text) => { form.querySelector(`.field-error[data-for="${field}"]`).textContent = text; };
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      form.querySelectorAll('.field-error').forEach((el) => { el.textContent = ''; });
      const value = (name) => form.elements[name].value.trim();
      const number = (name) => (value(name) === '' ? 0 : Number(value(name)));
      // The inputs hold UTC wall-clock times.
      const when = (name) => (value(name) ? new Date(`${value(name)}Z`).toISOString() : null);
      const missing = ['starts_at', 'ends_at'].filter((name) => !value(name));
      if (missing.length) return missing.forEach((name) => errorAt(name, `${name} is required`));
      const draft = {
        name: value('name'), description: value('description'), price_cents: number('price_cents'),
        stock: number('stock'), per_user_limit: number('per_user_limit'), starts_at: when('starts_at'),
        ends_at: when('ends_at'), payment_window_secs: number('payment_window_secs'),
      };
      const r = await apiCall(api, 'POST', '/admin/sales', draft);
      if (r.status === 201) {
        form.reset();
        say(`Sale ${r.body.id} created: publish it to put it on sale`);
        await loadSales();
        return select({ ...r.body, state: 'draft' });
      }
      const detail = (r.body && r.body.detail) || 'The sale could not be created';
      // The API names the field its message is about first.
      const field = (detail.match(new RegExp(`\\b(${FIELDS.join('|')})\\b`)) || [])[1];
      if (field) errorAt(field, detail.replace(/^invalid request: /, '')); else say(detail);
    });

    function orderCard(order, history) {
      const card = element('div', '', { className: 'order-card' });
      card.dataset.orderId = order.order_id;
      card.dataset.status = order.status;
      card.append(element('p', `Order ${order.order_id} · shopper ${order.user_id} · sale ${order.sale_id} · `
        + `${order.quantity} × · ${dollars(order.amount_cents)} · ${STATUS_TEXT[order.status] || order.status}`));
      if (history) {
        const events = element('ol', '', { className: 'history' });
        for (const event of history) events.append(element('li', `${new Date(event.at).toISOString()} — ${event.what}`));
        card.append(events);
      }
      return card;
    }

    $('find').addEventListener('submit', async (event) => {
      event.preventDefault();
      const id = event.target.elements.order.value.trim();
      const user = event.target.elements.user.value.trim();
      const found = $('found');
      found.replaceChildren();
      if (id) {
        const r = await apiCall(api, 'GET', `/admin/orders/${encodeURIComponent(id)}`);
        if (r.status === 200) found.append(orderCard(r.body.order, r.body.history));
        else found.textContent = r.status === 404 ? `No order ${id}` : ((r.body && r.body.detail) || 'The lookup failed');
      } else if (user && watched) {
        const r = await apiCall(api, 'GET', `/admin/sales/${watched.id}/orders?user=${encodeURIComponent(user)}`);
        if (r.status !== 200) return void (found.textContent = (r.body && r.body.detail) || 'The lookup failed');
        if (!r.body.orders.length) found.textContent = `No orders of ${user} in sale ${watched.id}`;
        for (const order of r.body.orders) found.append(orderCard(order));
      } else {
        found.textContent = 'Give an order id, or watch a sale and give a shopper';
      }
    });

    await loadSales();
    setInterval(() => { loadSales(); refreshLive(); }, 2000);
  }

  if ($('my-orders')) return myOrders($('my-orders'));
  if ($('console')) return runConsole($('console'));
  const root = $('sale');
  if (!root) {
    if ($('index')) watchIndex($('index'));
    return;
  }
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

  let token = store.get(TOKEN_KEY);
  // Knowing the expiry up front beats a 401 in the very second the sale opens.
  const tokenExpiry = (t) => {
    try {
      const claims = JSON.parse(atob(t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
      return typeof claims.exp === 'number' ? claims.exp * 1000 : Infinity;
    } catch { return Infinity; }
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
  async function call(method, path, { body, auth = true } = {}) {
    const headers = { Accept: 'application/json' };
    if (auth && token) headers.Authorization = `Bearer ${token}`;
    if (body) headers['Content-Type'] = 'application/json';
    const t0 = performance.now();
    try {
      const res = await fetch(api + path, {
        method, headers, body: body && JSON.stringify(body),
        cache: 'no-store', signal: AbortSignal.timeout(10000),
      });
      const json = await res.json().catch(() => null);
      return { status: res.status, body: json, t0, t1: performance.now(), age: Number(res.headers.get('Age')) || 0 };
    } catch {
      return { status: 0, body: null };
    }
  }

  function signOut() {
    token = null;
    expiry = 0;
    store.del(TOKEN_KEY);
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
    }
    render();
    setTimeout(pollSale, SALE_POLL_MS);
  }

  const countdown = (ms) => {
    const s = Math.max(0, Math.ceil(ms / 1000));
    return `${pad(Math.floor(s / 3600))}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
  };

  function render() {
    const now = serverNow();
    if (token && samples.length && now >= expiry) signOut(); // only by the server's clock, never the device's
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
    // One unit per shopper in flight; a paid order also holds a limit of one.
    const held = order && (['PENDING', 'UNPAID'].includes(order.status) ||
      (order.status === 'PAID' && sale && sale.per_user_limit <= 1));
    $('buy').disabled = !token || state !== 'open' || buying || !!held;
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
    if (o.status === 'REFUNDED') say('Your payment came after the reservation expired; it has been refunded');
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
      else return; // PAID, CLOSED, REJECTED and REFUNDED are final
    }
    orderTimer = setTimeout(() => watchOrder(id), next);
  }

  function follow(id, delay = 0) {
    store.set(ORDER_KEY, id);
    clearTimeout(orderTimer);
    watching++;
    orderTimer = setTimeout(() => watchOrder(id), delay);
  }

  async function buy() {
    buying = true;
    render();
    let r;
    // Full jitter spreads a crowd's retries instead of having them all come back at once.
    for (let attempt = 0; ; attempt++) {
      r = await call('POST', `/sales/${encodeURIComponent(saleId)}/purchase`, { body: { quantity: 1 } });
      if (r.status !== 429 || attempt === 5) break;
      say('Lots of shoppers right now — retrying…');
      await sleep(Math.random() * Math.min(4000, 250 * 2 ** attempt));
    }
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
    } else if (r.status === 401) {
      signOut();
    } else if (r.status === 429) {
      say('Too many shoppers right now — please try again in a moment');
    } else {
      say('Something went wrong — please try again');
    }
    render();
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
  $('payment').addEventListener('submit', pay);
  if (!token) signOut();
  const resumed = store.get(ORDER_KEY);
  if (resumed && token) follow(resumed);
  pollSale();
  setInterval(render, TICK_MS);
})();
