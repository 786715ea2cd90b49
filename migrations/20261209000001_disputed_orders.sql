-- DISPUTED: a paid order whose card holder's bank disputes the payment (a chargeback
-- opened at the provider). Dropped and added under the same name in one statement, so a
-- run repeated after a failure does the same again.
ALTER TABLE orders
    DROP CONSTRAINT orders_known_status,
    ADD CONSTRAINT orders_known_status
        CHECK (status IN ('UNPAID', 'PAID', 'CLOSED', 'REJECTED', 'REFUNDED', 'DISPUTED'));
