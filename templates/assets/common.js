// What every page shares: the sign-in (the authorization code flow with PKCE) and the
// session that keeps it fresh, calls to the API, money and small DOM helpers. Each
// page's own script (shop.js, sale.js, orders.js, console.js) runs after this one and
// begins with `await flashsale.ready`, which is false when the page is leaving (the
// sign-in's callback sends the shopper back where they started).
'use strict';
/* exported flashsale */
const flashsale = (() => {
  const $ = (id) => document.getElementById(id);
  // A return path only if it stays on this site. Browsers read `/\host` and `//host`
  // as another host, so the path is resolved as the browser would and its origin
  // checked, rather than matched as text.
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

  const STATUS_TEXT = {
    PENDING: 'Confirming…', UNPAID: 'Reserved — waiting for payment', PAID: 'Paid',
    CLOSED: 'Expired', REJECTED: 'Not confirmed', REFUNDED: 'Expired — payment refunded',
    DISPUTED: 'Paid — payment disputed',
  };
  // The page's sign-in, kept fresh while the page is open (started by the pages that
  // call the API with it); opened once a sign-in's callback is finished.
  let session = null;
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


  const ready = (async () => {
    const back = await finishSignIn();
    if (back && back !== location.pathname) {
      location.replace(back);
      return false;
    }
    const pageRoot = document.querySelector('main[data-sign-in-url]');
    session = openSession(pageRoot && pageRoot.dataset.signInUrl);
    shared.session = session;
    return true;
  })();
  const shared = {
    ready, $, store, claimsOf, money, element, apiCall, offerSignIn, startSignIn, STATUS_TEXT,
    /** @type {any} */ session: null,
  };
  return shared;
})();
