// The shop's index: the sales, each one's state live from the API.
'use strict';
(async () => {
  if (!(await flashsale.ready)) return;
  const { $ } = flashsale;
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

  if ($('index')) watchIndex($('index'));
})();
