-- The staff's audit trail: every change an admin asked for (who, what, when, on which
-- sale) and how it ended. A row is written before the change is made and its outcome
-- after, so no change goes unrecorded: one still `started` was cut off midway.
CREATE TABLE admin_actions (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at         DATETIME(3)     NOT NULL,
    actor      VARCHAR(128)    NOT NULL,
    action     VARCHAR(32)     NOT NULL,
    sale_id    BIGINT UNSIGNED NULL,
    detail     TEXT            NOT NULL,
    outcome    VARCHAR(255)    NOT NULL DEFAULT 'started',
    ended_at   DATETIME(3)     NULL,
    KEY admin_actions_by_sale (sale_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
