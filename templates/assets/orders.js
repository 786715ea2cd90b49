// "My orders": the signed-in shopper's orders.
'use strict';
(async () => {
  if (!(await flashsale.ready)) return;
  const { $, element, money, apiCall, offerSignIn, STATUS_TEXT, session } = flashsale;
  const storedToken = session.token;
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

  if ($('my-orders')) await myOrders($('my-orders'));
})();
