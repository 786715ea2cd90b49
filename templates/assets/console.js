// The staff console, for shop staff only: its script is loaded by the console's page alone.
'use strict';
(async () => {
  if (!(await flashsale.ready)) return;
  const { $, element, money, apiCall, offerSignIn, STATUS_TEXT, session } = flashsale;
  const storedToken = session.token;
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

  if ($('console')) await runConsole($('console'));
})();
