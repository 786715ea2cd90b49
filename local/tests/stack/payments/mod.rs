//! The money, against the real local provider (localstripe): signed webhooks, events
//! delivered twice, late and out of order (`webhook`), a late payment refunded once
//! (`late_money`), dropped webhooks repaired by reconcile and the provider down
//! (`outages`).

mod late_money;
mod outages;
mod webhook;
