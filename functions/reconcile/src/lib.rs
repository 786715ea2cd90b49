//! `reconcile` (EventBridge schedule): the outbox check-back and the drift check.
//!
//! - Outbox entries older than `FLASHSALE_OUTBOX_RESEND_AFTER_SECS` mean the order
//!   message was never sent, or its consumer never finished. They are sent again:
//!   `persist-orders` inserts the order if MySQL lacks it, or, for one it already has,
//!   finishes what was left (close scheduling, release) and clears the entry. Either
//!   way nothing is done twice.
//! - Per open sale, the units in Redis, the outbox and MySQL are added up against the
//!   stock; the drift is logged as a CloudWatch metric (embedded metric format).
//! - The pages of sales that sold out or ended are re-rendered to say so.

use chrono::Utc;
use flashsale::pages::Publisher;
use flashsale::stores::Stores;
use flashsale::report::{sale_report, SaleReport};
use flashsale::{Config, Result, Sale};
use serde::Serialize;

/// Outbox entries re-sent per sale and run; the next run takes the rest.
const RESEND_BATCH: usize = 1000;

pub struct Reconcile {
    stores: Stores,
    pages: Publisher,
    resend_after: chrono::Duration,
}

#[derive(Debug, Serialize)]
pub struct SaleCheck {
    #[serde(flatten)]
    pub report: SaleReport,
    pub resent: usize,
}

impl Reconcile {
    pub fn new(stores: Stores, pages: Publisher, resend_after: std::time::Duration) -> Self {
        let resend_after = chrono::Duration::from_std(resend_after).unwrap_or(chrono::Duration::MAX);
        Reconcile { stores, pages, resend_after }
    }

    pub async fn from_config(config: &Config) -> Result<Self> {
        let sdk = flashsale::queue::aws_config(config).await;
        Ok(Reconcile::new(
            Stores::from_config(config).await?,
            Publisher::from_config(&sdk, config),
            config.outbox_resend_after,
        ))
    }

    pub async fn run(&self) -> Result<Vec<SaleCheck>> {
        let mut checks = Vec::new();
        // One sale's trouble (SQS refusing its re-sends, say) must not stop the others.
        for sale in self.stores.db.open_sales().await? {
            match self.check(&sale).await {
                Ok(check) => checks.push(check),
                Err(e) => tracing::warn!(sale_id = %sale.id, error = %e, "reconcile of this sale failed; next run retries"),
            }
        }
        let worst = checks.iter().filter_map(|c| c.report.drift).map(i64::abs).max().unwrap_or(0);
        emit_metric(&[], "DriftAbsMax", worst);
        // Pages of sales that sold out or ended since the last run now say so; the
        // others are unchanged and cost one HEAD each.
        let pages = self.pages.refresh(&self.stores.db, &self.stores.cache, None).await?;
        if !pages.changed.is_empty() {
            tracing::info!(changed = ?pages.changed, "pages re-rendered");
        }
        Ok(checks)
    }

    pub async fn check(&self, sale: &Sale) -> Result<SaleCheck> {
        let stale = self.stores.cache.outbox_before(sale.id, Utc::now() - self.resend_after, RESEND_BATCH).await?;
        let mut sent = Vec::with_capacity(stale.len());
        for message in &stale {
            if let Err(e) = self.stores.queue.send_order(message).await {
                self.stores.cache.touch_outbox(sale.id, &sent).await?;
                return Err(e);
            }
            sent.push(message.order_id);
        }
        self.stores.cache.touch_outbox(sale.id, &sent).await?;
        if !stale.is_empty() {
            tracing::warn!(sale_id = %sale.id, resent = stale.len(), "stale outbox entries sent again");
        }
        let report = sale_report(&self.stores.db, &self.stores.cache, sale).await?;
        let sale_dimension = [("SaleId", sale.id.to_string())];
        if let Some(drift) = report.drift {
            emit_metric(&sale_dimension, "Drift", drift);
        }
        emit_metric(&sale_dimension, "PendingOrders", report.pending_orders as i64);
        Ok(SaleCheck { report, resent: stale.len() })
    }
}

/// One line in CloudWatch's embedded metric format: the log line is the metric.
/// `dimensions` name fields of `values`; an empty list makes a metric without
/// dimensions (the one the alarm watches).
fn emit_metric(dimensions: &[(&str, String)], name: &str, value: i64) {
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "flashsale",
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": [{"Name": name, "Unit": "Count"}],
            }],
        },
    });
    for (k, v) in dimensions {
        line[*k] = serde_json::json!(v);
    }
    line[name] = serde_json::json!(value);
    println!("{line}");
}
