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
  // localStorage can throw (private modes, disabled storage); the page must still work,
  // with what it keeps in memory for as long as it is open.
  const memory = new Map();
  const store = {
    get: (k) => { try { return localStorage.getItem(k); } catch { return memory.get(k) ?? null; } },
    set: (k, v) => { try { localStorage.setItem(k, v); } catch { memory.set(k, v); } },
    del: (k) => { try { localStorage.removeItem(k); } catch { memory.delete(k); } },
  };
  // The ID token the API takes, the refresh token that renews it, and when the ID
  // token ends by this device's clock, all kept together in localStorage.
  const TOKEN_KEY = 'flashsale.token';
  const REFRESH_KEY = 'flashsale.refresh';
  const EXPIRY_KEY = 'flashsale.token-expiry';
  const SIGN_IN_KEY = 'flashsale.sign-in';
  const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const nonce = () => b64url(crypto.getRandomValues(new Uint8Array(32)));
  const callbackUrl = () => `${location.origin}/`;
  const claimsOf = (t) => {
    try {
      return JSON.parse(atob(t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))) || {};
    } catch { return {}; }
  };

  // The token endpoint beside an authorization endpoint (Cognito's `/oauth2/token` beside
  // its `/oauth2/authorize`), and the app client the pages sign in with.
  const tokenEndpoint = (authorizeUrl) => {
    const authorize = new URL(authorizeUrl, location.origin);
    return {
      url: new URL(authorize.pathname.replace(/authorize$/, 'token'), authorize.origin),
      clientId: authorize.searchParams.get('client_id') || '',
    };
  };

  // Keeps what the token endpoint answered. The ID token's end is kept by this device's
  // clock, as its lifetime from now (less the second its whole-second `iat` may hide): a
  // device clock that is off then neither renews in a loop nor too late. Cognito sends a
  // refresh token with the code's tokens and none with renewed ones (the one kept goes
  // on working); one sent replaces the one kept.
  function keepTokens(tokens) {
    const c = claimsOf(tokens.id_token);
    const lifetime = typeof c.exp === 'number' && typeof c.iat === 'number' && c.exp > c.iat
      ? (c.exp - c.iat) * 1000 : Math.max(1, Number(tokens.expires_in) || 0) * 1000;
    store.set(EXPIRY_KEY, JSON.stringify({ at: Date.now() + lifetime - Math.min(1000, lifetime / 10), lifetime }));
    if (tokens.refresh_token) store.set(REFRESH_KEY, tokens.refresh_token);
    store.set(TOKEN_KEY, tokens.id_token); // last: other tabs follow this key
  }

  // The signed-in shopper (or staff member) of a page, kept signed in: the ID token is
  // renewed with the refresh token (the OAuth 2.0 refresh_token grant at the token
  // endpoint) a little before it ends — a minute, or a tenth of its lifetime if that is
  // less, spread over as much again so a crowd signed in at once does not renew at once
  // — and again when the page wakes (a hidden tab's timers are held back) or comes back
  // online. Network errors are retried with backoff; the shopper is signed out only when
  // the token endpoint refuses the refresh token. Other tabs' renewals are picked up.
  function openSession(authorizeUrl) {
    const endpoint = tokenEndpoint(authorizeUrl || '/sign-in');
    const listeners = [];
    let timer = 0, inFlight = null, failures = 0, backingOff = false, started = false;
    const current = () => store.get(TOKEN_KEY);
    const expiry = () => {
      try {
        const e = JSON.parse(store.get(EXPIRY_KEY));
        if (Number.isFinite(e.at) && e.lifetime > 0) return e;
      } catch { /* kept by an older page: from the claims */ }
      const c = claimsOf(current() || '');
      if (typeof c.exp !== 'number') return null;
      return { at: c.exp * 1000, lifetime: typeof c.iat === 'number' && c.exp > c.iat ? (c.exp - c.iat) * 1000 : 3600_000 };
    };
    const margin = (e) => Math.min(60_000, e.lifetime / 10);
    const due = () => { const e = expiry(); return !e || Date.now() >= e.at - margin(e); };
    const notify = () => { const t = current(); listeners.forEach((fn) => fn(t)); };

    function drop() {
      clearTimeout(timer);
      timer = 0;
      backingOff = false;
      [TOKEN_KEY, REFRESH_KEY, EXPIRY_KEY].forEach(store.del);
    }

    function schedule() {
      clearTimeout(timer);
      timer = 0;
      backingOff = false;
      const e = expiry();
      if (!started || !current() || !e) return;
      // Without a refresh token there is nothing to renew with: at its end, sign in again.
      const at = store.get(REFRESH_KEY) ? e.at - margin(e) * (1 + Math.random()) : e.at;
      // Renewed meanwhile (another tab): the next renewal is that token's.
      const token = current();
      timer = setTimeout(() => (current() === token ? refresh() : schedule()), Math.min(2 ** 31 - 1, Math.max(0, at - Date.now())));
    }

    function retryLater() {
      clearTimeout(timer);
      backingOff = true;
      const delay = Math.min(60_000, 1000 * 2 ** Math.min(failures - 1, 6)) * (0.5 + Math.random() / 2);
      timer = setTimeout(refresh, delay);
    }

    // 'ok' (a fresh token is kept), 'refused' (signed out: sign in again) or 'failed'
    // (no answer: retried later). One exchange at a time for the page; `stale`, the token
    // a call was refused with: if another call or tab already renewed it, that will do.
    function refresh(stale) {
      if (stale && current() && current() !== stale) return Promise.resolve('ok');
      if (!inFlight) inFlight = exchange().finally(() => { inFlight = null; });
      return inFlight;
    }

    async function exchange() {
      const sent = store.get(REFRESH_KEY);
      let outcome = 'refused';
      if (sent && current()) {
        try {
          const res = await fetch(endpoint.url, {
            method: 'POST', cache: 'no-store', signal: AbortSignal.timeout(10000),
            body: new URLSearchParams({ grant_type: 'refresh_token', client_id: endpoint.clientId, refresh_token: sent }),
          });
          const tokens = res.ok ? await res.json().catch(() => null) : null;
          if (tokens && typeof tokens.id_token === 'string') {
            keepTokens(tokens);
            outcome = 'ok';
          } else if (res.ok || res.status === 429 || res.status >= 500) {
            outcome = 'failed';
          } else if (store.get(REFRESH_KEY) !== sent && current()) {
            outcome = 'ok'; // another tab signed in again meanwhile
          }
        } catch {
          outcome = 'failed';
        }
      }
      if (outcome === 'failed') {
        failures++;
        retryLater();
        return outcome;
      }
      failures = 0;
      if (outcome === 'refused') drop();
      else schedule();
      notify();
      return outcome;
    }

    function wake() {
      if (!current() || inFlight) return;
      if (backingOff || due()) refresh();
      else schedule();
    }

    return {
      token: current,
      // `fn(token)` after every renewal, and `fn(null)` once signed out.
      onChange: (fn) => listeners.push(fn),
      drop,
      refresh,
      // The token has ended by the server's clock: renew it now, unless that is under way.
      lapsed: () => { if (current() && !inFlight && !backingOff) refresh(); },
      // `send(token)` with the token; a 401 gets one renewal and one retry before it
      // stands. No answer from the token endpoint is no answer (status 0), not a sign-out.
      async authorized(send) {
        const sent = current();
        const r = await send(sent);
        if (r.status !== 401 || !sent) return r;
        const outcome = await refresh(sent);
        if (outcome === 'ok' && current()) return send(current());
        return outcome === 'failed' ? { status: 0, body: null } : r;
      },
      start() {
        if (started) return;
        started = true;
        document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') wake(); });
        addEventListener('pageshow', (event) => { if (event.persisted) wake(); });
        addEventListener('online', wake);
        addEventListener('storage', (event) => {
          if (event.key !== TOKEN_KEY && event.key !== null) return;
          // Someone else signed in in another tab: this page shows another shopper's things.
          const [was, now] = [event.oldValue, event.newValue].map((t) => claimsOf(t || '').sub);
          if (was && now && was !== now) return location.reload();
          if (current()) schedule();
          else drop();
          notify();
        });
        wake();
      },
    };
  }

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
    const endpoint = tokenEndpoint(started.authorize);
    const form = new URLSearchParams({
      grant_type: 'authorization_code', client_id: endpoint.clientId,
      code: query.get('code'), redirect_uri: callbackUrl(), code_verifier: started.verifier,
    });
    try {
      const res = await fetch(endpoint.url, { method: 'POST', body: form, cache: 'no-store', signal: AbortSignal.timeout(10000) });
      const tokens = res.ok ? await res.json() : null;
      if (!tokens || typeof tokens.id_token !== 'string') return null;
      // A new sign-in replaces all of the last one, its refresh token too.
      store.del(REFRESH_KEY);
      keepTokens(tokens);
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
    DISPUTED: 'Paid — payment disputed',
  };
  // The page's sign-in, kept fresh while the page is open (started by the pages that call the API with it).
  const pageRoot = document.querySelector('main[data-sign-in-url]');
  const session = openSession(pageRoot && pageRoot.dataset.signInUrl);
  const storedToken = session.token;
  // An amount in its currency's minor unit (cents, fils, yen), with the currency's own
  // decimals, as the rendered pages print it: `$1,234.50`, `12.340 KWD`, `5,000 JPY`.
  const money = (minor, currency) => {
    const code = String(currency || 'usd').toUpperCase();
    let digits = 2;
    try {
      digits = new Intl.NumberFormat('en-US', { style: 'currency', currency: code }).resolvedOptions().maximumFractionDigits;
    } catch { /* a code the browser does not know: hundredths, as sales were priced before */ }
    const text = (minor / 10 ** digits).toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
    return code === 'USD' ? `$${text}` : `${text} ${code}`;
  };
  const element = (tag, text, props = {}) => Object.assign(document.createElement(tag), { textContent: text ?? '' }, props);

  // The API with the stored token (renewed once on a 401): `{ status, body }`, status 0
  // when it did not answer.
  function apiCall(api, method, path, body) {
    return session.authorized(async (token) => {
      const headers = { Accept: 'application/json' };
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
    });
  }

  let signInOffered = false;
  function offerSignIn(root, why) {
    $('message').textContent = why;
    const link = $('signin');
    link.hidden = false;
    if (signInOffered) return;
    signInOffered = true;
    link.addEventListener('click', (event) => {
      event.preventDefault();
      startSignIn(root.dataset.signInUrl || '/sign-in');
    });
  }

  // "My orders": the signed-in shopper's orders, newest first, a page at a time.
  async function myOrders(root) {
    const api = root.dataset.api || '/api';
    if (!storedToken()) return offerSignIn(root, 'Sign in to see your orders');
    const expired = () => offerSignIn(root, 'Your sign-in has expired: sign in again to see your orders');
    session.onChange((token) => { if (!token) expired(); });
    session.start();
    let before = null;
    async function more() {
      const r = await apiCall(api, 'GET', `/orders${before ? `?before=${before}` : ''}`);
      if (r.status === 401) {
        session.drop();
        return expired();
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
          ` · order ${order.order_id} · ${order.quantity} × · ${money(order.amount_cents, (r.body.currencies || {})[order.sale_id])} · `,
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
    session.onChange((token) => {
      if (token) return;
      $('staff').hidden = true;
      offerSignIn(root, 'Your sign-in has expired: sign in again.');
    });
    session.start();
    const FIELDS = ['name', 'description', 'price_cents', 'currency', 'stock', 'per_user_limit', 'starts_at', 'ends_at', 'payment_window_secs'];
    const BUCKET_MS = 10_000, BUCKETS = 30;
    let watched = null;
    // Whether the watched sale has a waiting room: null until known.
    let watchedQueue = null;
    const samples = []; // cumulative admissions and payments of the watched sale, as polled
    const currencies = new Map(); // sale id → its currency, from the list of sales
    const show = (id, value) => { const el = $(id); const text = String(value ?? '–'); if (el.textContent !== text) el.textContent = text; };

    async function loadSales() {
      if (!storedToken()) return;
      const r = await apiCall(api, 'GET', '/admin/sales?limit=100');
      if (r.status === 401 || r.status === 403) {
        session.drop();
        $('staff').hidden = true;
        return offerSignIn(root, r.status === 403
          ? 'This account is not in the admin group: sign in as shop staff.'
          : 'Your sign-in has expired: sign in again.');
      }
      if (r.status !== 200) return say('The API did not answer; retrying…');
      $('staff').hidden = false;
      for (const sale of r.body.sales) currencies.set(String(sale.id), sale.currency);
      $('sales').tBodies[0].replaceChildren(...r.body.sales.map(saleRow));
    }

    function saleRow(sale) {
      const row = element('tr');
      row.dataset.saleId = sale.id;
      row.dataset.state = sale.state;
      const count = (status) => String((sale.orders[status] || {}).orders || 0);
      for (const text of [sale.name, sale.state.replace('_', ' '), `${sale.sold} of ${sale.stock} sold`,
        count('UNPAID'), count('PAID'), count('CLOSED'), count('REJECTED'), count('REFUNDED'), count('DISPUTED')]) row.append(element('td', text));
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
      // A sale listed without a waiting room has none; otherwise the queue's own route says.
      watchedQueue = sale.waiting_room === null ? false : null;
      $('queue-admin').hidden = true;
      $('q-rate-form').elements.rate.value = '';
      refreshLive();
      refreshQueue();
    }

    async function refreshLive() {
      if (!watched || !storedToken()) return;
      const r = await apiCall(api, 'GET', `/admin/sales/${watched.id}/report`);
      if (r.status !== 200) return;
      const report = r.body;
      const orders = (status) => (report.orders[status] || {}).orders || 0;
      show('f-remaining', report.redis_remaining);
      show('f-pending', report.pending_orders);
      show('f-unpaid', orders('UNPAID'));
      show('f-paid', orders('PAID'));
      show('f-closed', orders('CLOSED'));
      show('f-rejected', orders('REJECTED'));
      show('f-refunded', orders('REFUNDED'));
      show('f-disputed', orders('DISPUTED'));
      show('f-drift', report.drift);
      show('f-captured', money(report.money.captured_cents, watched.currency));
      show('f-refunded-money', money(report.money.refunded_cents, watched.currency));
      show('f-disputed-money', money(report.money.disputed_cents || 0, watched.currency));
      const admitted = ['PENDING', 'UNPAID', 'PAID', 'CLOSED', 'REJECTED', 'REFUNDED', 'DISPUTED'].reduce((sum, s) => sum + orders(s), 0);
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

    // The watched sale's waiting room: its numbers, pausing it and its rate.
    async function refreshQueue() {
      if (!watched || watchedQueue === false || !storedToken()) return;
      const id = watched.id;
      const r = await apiCall(api, 'GET', `/admin/sales/${id}/queue`);
      if (!watched || watched.id !== id) return;
      if (r.status === 200 && r.body) showQueue(r.body);
      else if (r.status === 409) {
        watchedQueue = false;
        $('queue-admin').hidden = true;
      }
    }

    function showQueue(q) {
      watchedQueue = true;
      const panel = $('queue-admin');
      panel.hidden = false;
      panel.dataset.paused = String(!!q.paused);
      show('q-mode', q.mode);
      show('q-length', q.length);
      show('q-serving', q.serving);
      show('q-rate', q.rate);
      show('q-paused', q.paused ? 'Paused' : 'Moving');
      show('q-difficulty', q.difficulty);
      $('q-pause').hidden = !!q.paused;
      $('q-resume').hidden = !q.paused;
      const rate = $('q-rate-form').elements.rate;
      if (rate.value === '' && document.activeElement !== rate) rate.value = String(q.rate);
    }

    async function changeQueue(change, done) {
      if (!watched) return;
      const id = watched.id;
      const r = await apiCall(api, 'PATCH', `/admin/sales/${id}/queue`, change);
      if (r.status !== 200 || !r.body) return say((r.body && r.body.detail) || 'The waiting room could not be changed: try again');
      if (watched && watched.id === id) showQueue(r.body);
      say(done(id));
    }

    $('q-pause').addEventListener('click', () => changeQueue({ paused: true }, (id) => `Sale ${id}'s waiting room is paused`));
    $('q-resume').addEventListener('click', () => changeQueue({ paused: false }, (id) => `Sale ${id}'s waiting room is moving again`));
    $('q-rate-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const rate = Number(event.target.elements.rate.value);
      if (!Number.isInteger(rate) || rate < 1) return say('The rate is a whole number of shoppers per second, at least 1');
      changeQueue({ rate }, (id) => `Sale ${id}'s waiting room lets ${rate} shoppers through per second`);
    });

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
    // The rate and difficulty only matter with a waiting room.
    const showQueueFields = () => { $('queue-fields').hidden = form.elements.waiting_room.value === 'none'; };
    form.elements.waiting_room.addEventListener('change', showQueueFields);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      form.querySelectorAll('.field-error').forEach((el) => { el.textContent = ''; });
      const value = (name) => form.elements[name].value.trim();
      const number = (name) => (value(name) === '' ? 0 : Number(value(name)));
      // The inputs hold UTC wall-clock times.
      const when = (name) => (value(name) ? new Date(`${value(name)}Z`).toISOString() : null);
      const missing = ['starts_at', 'ends_at'].filter((name) => !value(name));
      if (missing.length) return missing.forEach((name) => errorAt(name, `${name} is required`));
      const mode = value('waiting_room');
      const draft = {
        name: value('name'), description: value('description'), price_cents: number('price_cents'),
        currency: value('currency') || 'usd',
        stock: number('stock'), per_user_limit: number('per_user_limit'), starts_at: when('starts_at'),
        ends_at: when('ends_at'), payment_window_secs: number('payment_window_secs'),
        // Without a difficulty the API picks its default.
        waiting_room: mode === 'none' ? null : {
          mode, rate: number('queue_rate'),
          ...(value('queue_difficulty') === '' ? {} : { difficulty: number('queue_difficulty') }),
        },
      };
      const r = await apiCall(api, 'POST', '/admin/sales', draft);
      if (r.status === 201) {
        form.reset();
        showQueueFields();
        say(`Sale ${r.body.id} created: publish it to put it on sale`);
        await loadSales();
        return select({ ...r.body, state: 'draft' });
      }
      const detail = (r.body && r.body.detail) || 'The sale could not be created';
      // The API names the field its message is about first; the waiting room's own
      // fields may come as `waiting_room.rate` or plain `rate`.
      const named = (detail.match(new RegExp(`\\b(waiting_room(?:\\.\\w+)?|rate|difficulty|${FIELDS.join('|')})\\b`)) || [])[1];
      const field = { rate: 'waiting_room.rate', difficulty: 'waiting_room.difficulty' }[named]
        || (named && form.querySelector(`.field-error[data-for="${named}"]`) ? named : named && named.split('.')[0]);
      if (field) errorAt(field, detail.replace(/^invalid request: /, '')); else say(detail);
    });

    function orderCard(order, history) {
      const card = element('div', '', { className: 'order-card' });
      card.dataset.orderId = order.order_id;
      card.dataset.status = order.status;
      card.append(element('p', `Order ${order.order_id} · shopper ${order.user_id} · sale ${order.sale_id} · `
        + `${order.quantity} × · ${money(order.amount_cents, currencies.get(String(order.sale_id)))} · `
        + `${STATUS_TEXT[order.status] || order.status}`));
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
    setInterval(() => { loadSales(); refreshLive(); refreshQueue(); }, 2000);
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
