//! IAM database authentication: the short-lived token a function presents to RDS
//! Proxy as its MySQL password, signed locally (SigV4, service `rds-db`) with the
//! function's own role credentials. No password lives in the function's environment.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{self, SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// RDS accepts a token for 15 minutes after it is signed.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// Signs tokens for one user of one proxy endpoint.
pub struct RdsAuth {
    credentials: SharedCredentialsProvider,
    region: String,
    host: String,
    port: u16,
    user: String,
    clock: Arc<dyn Clock>,
}

impl RdsAuth {
    /// With the credentials and region of `sdk` (the function's role, on Lambda).
    pub fn new(sdk: &SdkConfig, host: &str, port: u16, user: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        let missing = |what: &str| Error::Config(format!("IAM database authentication needs {what}"));
        Ok(RdsAuth {
            credentials: sdk.credentials_provider().ok_or_else(|| missing("AWS credentials"))?,
            region: sdk.region().ok_or_else(|| missing("an AWS region"))?.to_string(),
            host: host.to_string(),
            port,
            user: user.to_string(),
            clock,
        })
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A fresh token and when it was signed (ms since the epoch, by this signer's clock).
    pub async fn token(&self) -> Result<(Secret, u64)> {
        let credentials = self.credentials.provide_credentials().await.map_err(|e| Error::aws("credentials", e))?;
        let signed_at = self.clock.now_ms();
        let at = UNIX_EPOCH + Duration::from_millis(signed_at);
        let token = sign_token(&credentials.into(), &self.region, &self.host, self.port, &self.user, at)?;
        Ok((Secret::new(token), signed_at))
    }
}

/// `host:port/?Action=connect&DBUser=user&X-Amz-…`: a presigned `connect` request
/// without its scheme, as `aws rds generate-db-auth-token` prints it.
pub fn sign_token(
    identity: &aws_smithy_runtime_api::client::identity::Identity,
    region: &str,
    host: &str,
    port: u16,
    user: &str,
    at: SystemTime,
) -> Result<String> {
    let failed = |e: &dyn std::fmt::Display| Error::Internal(format!("signing the database token: {e}"));
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name("rds-db")
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let url = format!("https://{host}:{port}/?Action=connect&DBUser={}", encode(user));
    let request =
        SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[])).map_err(|e| failed(&e))?;
    let (instructions, _signature) = http_request::sign(request, &params).map_err(|e| failed(&e))?.into_parts();
    let mut signed = http::Request::builder().uri(&url).body(()).map_err(|e| failed(&e))?;
    instructions.apply_to_request_http1x(&mut signed);
    let uri = signed.uri().to_string();
    Ok(uri.strip_prefix("https://").unwrap_or(&uri).to_string())
}

/// RFC 3986 unreserved characters pass; everything else is percent-encoded.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;

    // Made by botocore's own signer (`generate_db_auth_token`, the code behind
    // `aws rds generate-db-auth-token`) with the same credentials, at the same instant.
    const BOTOCORE_TOKEN: &str = "flashsale-db.proxy-abc.eu-west-1.rds.amazonaws.com:3306/?Action=connect\
        &DBUser=flashsale_app&X-Amz-Algorithm=AWS4-HMAC-SHA256\
        &X-Amz-Credential=AKIDEXAMPLE%2F20251126%2Feu-west-1%2Frds-db%2Faws4_request\
        &X-Amz-Date=20251126T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
        &X-Amz-Security-Token=session-token%2Fwith%2Bspecials%3D\
        &X-Amz-Signature=3acb28da7023b515c8d0b6d6cf0c0d030791a1c9ce0dfebc424122e8c2e6a9e8";

    /// The endpoint, then the query's parameters in order: RDS reads them by name.
    fn parts(token: &str) -> (&str, Vec<&str>) {
        let (endpoint, query) = token.split_once("/?").unwrap();
        let mut params: Vec<&str> = query.split('&').collect();
        params.sort();
        (endpoint, params)
    }

    #[test]
    fn the_token_is_the_one_aws_own_signer_makes() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session-token/with+specials=".to_string()),
            None,
            "test",
        );
        let at = UNIX_EPOCH + Duration::from_secs(1_764_115_200);
        let token = sign_token(
            &credentials.into(),
            "eu-west-1",
            "flashsale-db.proxy-abc.eu-west-1.rds.amazonaws.com",
            3306,
            "flashsale_app",
            at,
        )
        .unwrap();
        assert_eq!(parts(&token), parts(BOTOCORE_TOKEN), "{token}");
    }
}
