-- The provider's webhook events taken, by their id: a redelivery finds its id here and
-- changes nothing.
CREATE TABLE payment_events (
    id             VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    type           VARCHAR(100) NOT NULL,
    payment_intent VARCHAR(255) NULL,
    received_at    DATETIME(3)  NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
