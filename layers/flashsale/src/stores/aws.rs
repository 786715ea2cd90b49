//! The AWS SDK's configuration, shared by every client of a container, and the
//! credentials a function reads at init instead of finding them in its environment.

use aws_config::SdkConfig;

use crate::config::{Config, RedisUser, Secrets};
use crate::error::{Error, Result};
use crate::secret::Secret;

/// Loads the AWS configuration once per container. `AWS_ENDPOINT_URL` (honoured by
/// the SDK itself) points every client at the local stand-ins.
pub async fn sdk_config(config: &Config) -> SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(config.aws.timeout)
        .operation_attempt_timeout(config.aws.timeout)
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
        .load()
        .await
}

/// The AWS configuration, and the secrets `config` names, read: the Redis user (or AUTH
/// token) from `FLASHSALE_REDIS_AUTH_SECRET`'s secret, the payment provider's keys from
/// `FLASHSALE_PAYMENTS_SECRET`'s, the edge's origin values from
/// `FLASHSALE_ORIGIN_SECRET`'s, the waiting rooms' key from `FLASHSALE_QUEUE_SECRET`'s. An
/// unreadable secret stops the function at init, where the reason is plain, not at its
/// first request.
pub async fn load(config: &Config) -> Result<(SdkConfig, Secrets)> {
    let sdk = sdk_config(config).await;
    let mut secrets = Secrets::default();
    if let Some(id) = &config.redis.auth_secret {
        let secret = secret_string(&sdk, id).await?;
        // A user of its own (RBAC): JSON; an AUTH token: the string itself.
        #[derive(serde::Deserialize)]
        struct User {
            username: String,
            password: Secret,
        }
        secrets.redis_user = Some(match serde_json::from_str::<User>(secret.expose()) {
            Ok(user) => RedisUser { username: Some(user.username), password: user.password },
            Err(_) => RedisUser { username: None, password: secret },
        });
    }
    if let Some(id) = &config.payments.keys_secret {
        let keys = secret_string(&sdk, id).await?;
        secrets.payment_keys = Some(
            serde_json::from_str(keys.expose())
                .map_err(|e| Error::Config(format!("secret {id} is not the payment provider's keys: {e}")))?,
        );
    }
    if let Some(id) = &config.site.origin_secret {
        #[derive(serde::Deserialize)]
        struct Values {
            current: String,
            #[serde(default)]
            previous: String,
        }
        let values: Values = serde_json::from_str(secret_string(&sdk, id).await?.expose())
            .map_err(|e| Error::Config(format!("secret {id} is not the edge's origin values: {e}")))?;
        secrets.origin_values =
            [values.current, values.previous].into_iter().filter(|v| !v.is_empty()).map(Secret::new).collect();
        if secrets.origin_values.is_empty() {
            return Err(Error::Config(format!("secret {id} holds no origin value")));
        }
    }
    if let Some(id) = &config.waiting_room.key_secret {
        let key = secret_string(&sdk, id).await?;
        if key.expose().len() < 32 {
            return Err(Error::Config(format!("secret {id} holds a key shorter than 32 characters")));
        }
        secrets.room_key = Some(key);
    }
    Ok((sdk, secrets))
}

/// The string a Secrets Manager secret holds.
pub async fn secret_string(sdk: &SdkConfig, id: &str) -> Result<Secret> {
    let secret = aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| Error::aws("secretsmanager", e))?;
    secret.secret_string().map(Secret::new).ok_or_else(|| Error::Config(format!("secret {id} holds no string")))
}

/// Makes aws-lc-rs, the crypto the SDK and sqlx use, the process's TLS provider, which
/// redis (ElastiCache over TLS) and reqwest take from the process: with no provider
/// installed, or two compiled in, they refuse to make a TLS connection. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
