-- Each sale's orders tallied per status, kept by the transactions that change a status
-- (orders/tallies.rs), so the staff console's poll reads five rows instead of counting
-- every order of the sale on the writer. `started_cents` is the money of the orders
-- with a payment attached (UNPAID ones: awaiting the provider). Signed: a tally that went wrong
-- shows as negative instead of failing every close after it.
CREATE TABLE order_tallies (
    sale_id       BIGINT UNSIGNED NOT NULL,
    status        VARCHAR(16)     NOT NULL,
    orders        BIGINT          NOT NULL DEFAULT 0,
    units         BIGINT          NOT NULL DEFAULT 0,
    amount_cents  BIGINT          NOT NULL DEFAULT 0,
    started_cents BIGINT          NOT NULL DEFAULT 0,
    PRIMARY KEY (sale_id, status)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
