-- The provider's PaymentIntent of an order (at most one, attached while UNPAID, and when),
-- and
-- the refund of money that reached an order already CLOSED: REFUNDED, with when and why.
-- One statement, so a failure leaves nothing half applied.
ALTER TABLE orders
    ADD COLUMN payment_intent VARCHAR(255) NULL AFTER amount_cents,
    ADD COLUMN payment_started_at DATETIME(3) NULL AFTER payment_intent,
    ADD COLUMN refunded_at DATETIME(3) NULL AFTER closed_at,
    ADD COLUMN refund_reason VARCHAR(200) NULL AFTER refunded_at,
    ADD UNIQUE KEY orders_by_payment_intent (payment_intent),
    DROP CONSTRAINT orders_status,
    ADD CONSTRAINT orders_known_status CHECK (status IN ('UNPAID', 'PAID', 'CLOSED', 'REJECTED', 'REFUNDED'));
