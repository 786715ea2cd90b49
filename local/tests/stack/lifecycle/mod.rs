//! After admission, step by step: exactly-once persistence and the database guard
//! (`persist`), the money against the close and chained timeouts (`close`), the
//! console's poll (`console_poll`), poison messages (`dead_letters`), reconcile's
//! check-back (`check_back`) and its one-run-at-a-time claim (`reconcile_claim`).

mod check_back;
mod close;
mod console_poll;
mod dead_letters;
mod persist;
mod reconcile_claim;
