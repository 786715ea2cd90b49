//! What a function reads from Secrets Manager at init ([`crate::stores::aws::load`]),
//! kept apart from [`super::Config`]: configuration says where a secret is, this holds
//! what it was. None of it prints.

use crate::secret::Secret;

#[derive(Clone, Debug, Default)]
pub struct Secrets {
    /// The function's Redis sign-in (`FLASHSALE_REDIS_AUTH_SECRET`); `None`: no AUTH.
    pub redis_user: Option<RedisUser>,
    /// The payment provider's keys (`FLASHSALE_PAYMENTS_SECRET`); a function that takes
    /// money cannot start without them.
    pub payment_keys: Option<PaymentKeys>,
    /// The values accepted in `x-origin-verify` (`FLASHSALE_ORIGIN_SECRET`). Empty: every
    /// request is taken.
    pub origin_values: Vec<Secret>,
    /// The key that signs the waiting rooms' passes and challenges (`FLASHSALE_QUEUE_SECRET`).
    pub room_key: Option<Secret>,
}

/// A Redis sign-in: an ElastiCache RBAC user, or the default user's AUTH token.
#[derive(Clone, Debug)]
pub struct RedisUser {
    /// `None`: the default user (an AUTH token).
    pub username: Option<String>,
    pub password: Secret,
}

/// The payment provider's credentials, as its secret holds them.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct PaymentKeys {
    pub secret_key: Secret,
    /// Every signing secret a webhook may be signed with (more than one while rotating).
    pub webhook_secrets: Vec<Secret>,
}
