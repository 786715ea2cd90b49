-- Sales and their orders. Runs on MariaDB 10.11 and Aurora MySQL 3.
--
-- There is deliberately no foreign key from orders to sales: InnoDB takes a shared
-- lock on the parent row for every child insert, and the persistence transaction then
-- updates that same (hot) sales row, which turns concurrent inserts into deadlocks.

CREATE TABLE sales (
    id                  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name                VARCHAR(200)    NOT NULL,
    description         TEXT            NOT NULL,
    price_cents         BIGINT UNSIGNED NOT NULL,
    stock               INT UNSIGNED    NOT NULL,
    -- Units held by UNPAID and PAID orders. The guard `sold + q <= stock` in the
    -- persistence transaction is the last line against overselling.
    sold                INT UNSIGNED    NOT NULL DEFAULT 0,
    per_user_limit      INT UNSIGNED    NOT NULL,
    starts_at           DATETIME(3)     NOT NULL,
    ends_at             DATETIME(3)     NOT NULL,
    payment_window_secs INT UNSIGNED    NOT NULL,
    published_at        DATETIME(3)     NULL,
    created_at          DATETIME(3)     NOT NULL,
    CONSTRAINT sales_sold_within_stock CHECK (sold <= stock),
    CONSTRAINT sales_window CHECK (ends_at > starts_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE orders (
    -- The Snowflake id minted at admission: the primary key makes persistence
    -- idempotent, a redelivered message cannot insert a second row.
    id           BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    sale_id      BIGINT UNSIGNED NOT NULL,
    -- Compared byte for byte: "Alice" must not pay alice's order.
    user_id      VARCHAR(128)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    quantity     INT UNSIGNED    NOT NULL,
    amount_cents BIGINT UNSIGNED NOT NULL,
    status       VARCHAR(16)     NOT NULL,
    created_at   DATETIME(3)     NOT NULL,
    expires_at   DATETIME(3)     NOT NULL,
    paid_at      DATETIME(3)     NULL,
    closed_at    DATETIME(3)     NULL,
    KEY orders_by_sale_status (sale_id, status),
    KEY orders_by_user (user_id, sale_id),
    CONSTRAINT orders_status CHECK (status IN ('UNPAID', 'PAID', 'CLOSED', 'REJECTED')),
    CONSTRAINT orders_quantity CHECK (quantity > 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
