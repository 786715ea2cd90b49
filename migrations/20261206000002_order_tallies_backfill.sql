-- The tallies of the sales created before order_tallies, counted once from their orders.
-- One statement: a failure leaves nothing half applied. Deploy it between sales: orders
-- that functions of the release before write meanwhile are not tallied.
INSERT INTO order_tallies (sale_id, status, orders, units, amount_cents, started_cents)
SELECT sales.id, statuses.status, COUNT(orders.id), COALESCE(SUM(orders.quantity), 0),
       COALESCE(SUM(orders.amount_cents), 0),
       COALESCE(SUM(CASE WHEN orders.payment_intent IS NOT NULL THEN orders.amount_cents END), 0)
FROM sales
CROSS JOIN (SELECT 'UNPAID' AS status UNION ALL SELECT 'PAID' UNION ALL SELECT 'CLOSED'
            UNION ALL SELECT 'REJECTED' UNION ALL SELECT 'REFUNDED') AS statuses
LEFT JOIN orders ON orders.sale_id = sales.id AND orders.status = statuses.status
GROUP BY sales.id, statuses.status;
