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
      try { localStorage.setItem(TOKEN_KEY, tokens.id_token); } catch { /* memory only */ }
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
  const root = $('sale');
  if (!root) {
    if ($('index')) watchIndex($('index'));
    return;
  }
  const saleId = root.dataset.saleId;
  const api = root.dataset.api || '/api';
  const ORDER_KEY = `flashsale.order.${saleId}`;
  const STATE_TEXT = { upcoming: 'Not open yet', open: 'On sale now', sold_out: 'Sold out', ended: 'This sale has ended' };
  const STATUS_TEXT = {
    PENDING: 'Confirming…', UNPAID: 'Reserved — waiting for payment', PAID: 'Paid',
    CLOSED: 'Expired', REJECTED: 'Not confirmed',
  };
  const SALE_POLL_MS = 2000, ORDER_POLL_MS = 500, TICK_MS = 200;

  // localStorage can throw (private modes, disabled storage); the page must still work.
  const store = {
    get: (k) => { try { return localStorage.getItem(k); } catch { return null; } },
    set: (k, v) => { try { localStorage.setItem(k, v); } catch { /* memory only */ } },
    del: (k) => { try { localStorage.removeItem(k); } catch { /* nothing to drop */ } },
  };
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
    $('pay').hidden = !payable;
    $('pay').disabled = paying;
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
    // Finished without a sale: nothing to resume after a reload, and the shopper may buy again.
    if (o.status === 'CLOSED' || o.status === 'REJECTED') store.del(ORDER_KEY);
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
      // Look again when the window ends: the server then closes it (or it got paid elsewhere).
      else if (r.body.status === 'UNPAID') next = Math.max(next, Date.parse(r.body.expires_at) - serverNow());
      else return; // PAID, CLOSED and REJECTED are final
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

  async function pay() {
    if (!order) return;
    paying = true;
    render();
    const r = await call('POST', `/orders/${encodeURIComponent(order.order_id)}/pay`);
    paying = false;
    if (r.status === 200 && r.body) {
      showOrder(r.body);
      say('Paid — thank you!');
    } else if (r.status === 409 && problem(r.body) === 'not-payable') {
      const status = r.body.order_status;
      say(`This order can't be paid: ${(STATUS_TEXT[status] || status || 'unknown').toLowerCase()}`);
      watchOrder(order.order_id);
    } else if (r.status === 401) {
      signOut();
    } else {
      say('Something went wrong — please try again');
    }
    render();
  }

  $('buy').addEventListener('click', buy);
  $('pay').addEventListener('click', pay);
  if (!token) signOut();
  const resumed = store.get(ORDER_KEY);
  if (resumed && token) follow(resumed);
  pollSale();
  setInterval(render, TICK_MS);
})();
