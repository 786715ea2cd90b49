//! Development sign-in: HS256 tokens signed with `FLASHSALE_DEV_JWT_SECRET`. On AWS the
//! HTTP API's JWT authorizer verifies Cognito's tokens instead; the functions see the
//! same claims either way. Refresh tokens, as Cognito's, are for the token endpoint only:
//! signed with a key of their own, so the API never takes one for a bearer token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// For local use only: anyone who knows it can sign in as anyone.
pub const DEFAULT_DEV_SECRET: &str = "flashsale-local-dev-secret-not-for-production";

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    #[serde(rename = "cognito:groups", default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub fn token(secret: &str, user: &str, admin: bool, ttl_secs: u64) -> String {
    let now = now_secs();
    let claims = Claims {
        sub: user.to_string(),
        iat: now,
        exp: now + ttl_secs,
        groups: if admin { vec!["admin".to_string()] } else { Vec::new() },
    };
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()))
        .expect("HS256 signing cannot fail")
}

/// How long a dev refresh token lives: Cognito's default (`RefreshTokenDays` in
/// template.yaml), after which the shopper signs in again.
pub const REFRESH_TTL_SECS: u64 = 30 * 24 * 3600;

/// What a refresh token stands for: who signed in, as what, for which app client.
#[derive(Debug, Serialize, Deserialize)]
struct RefreshClaims {
    sub: String,
    admin: bool,
    client_id: String,
    token_use: String,
    iat: u64,
    exp: u64,
}

/// The refresh tokens' key, derived from the secret: never the access tokens' own.
fn refresh_key(secret: &str) -> Vec<u8> {
    let mut digest = Sha256::new();
    digest.update(b"flashsale-dev-refresh-token\0");
    digest.update(secret.as_bytes());
    digest.finalize().to_vec()
}

/// A refresh token of `user` (in the admin group when `admin`) for `client_id`.
pub fn refresh_token(secret: &str, user: &str, admin: bool, client_id: &str, ttl_secs: u64) -> String {
    let now = now_secs();
    let claims = RefreshClaims {
        sub: user.to_string(),
        admin,
        client_id: client_id.to_string(),
        token_use: "refresh".to_string(),
        iat: now,
        exp: now + ttl_secs,
    };
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&refresh_key(secret)))
        .expect("HS256 signing cannot fail")
}

/// The user and admin flag a refresh token was issued for, if it is one of ours, for
/// `client_id`, and still live (no leeway: a lapsed one means signing in again).
pub fn redeem_refresh_token(secret: &str, token: &str, client_id: &str) -> Option<(String, bool)> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    validation.leeway = 0;
    let data = decode::<RefreshClaims>(token, &DecodingKey::from_secret(&refresh_key(secret)), &validation).ok()?;
    let claims = data.claims;
    (claims.token_use == "refresh" && claims.client_id == client_id).then_some((claims.sub, claims.admin))
}

/// Verifies a bearer token and returns its claims the way an HTTP API JWT authorizer
/// hands them to the function: every value a string, arrays as `[a b]`.
pub fn verify(secret: &str, token: &str) -> Option<HashMap<String, String>> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    let data = decode::<serde_json::Map<String, serde_json::Value>>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .ok()?;
    let flat = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|i| i.as_str().map_or(i.to_string(), str::to_string)).collect();
            format!("[{}]", items.join(" "))
        }
        other => other.to_string(),
    };
    Some(data.claims.iter().map(|(k, v)| (k.clone(), flat(v))).collect())
}

/// What a JWT authorizer hands the function: the token's claims, flattened.
pub type FlatClaims = Arc<HashMap<String, String>>;

/// Tokens verified before, kept until they expire: the gateway checks a shopper's token
/// once, not on every click. The cost it saves is the local gateway's own, the part
/// API Gateway plays on AWS.
pub struct Verifier {
    secret: String,
    verified: Mutex<HashMap<Box<str>, (u64, FlatClaims)>>,
}

/// More distinct live tokens than this and the verifier starts over.
const MAX_VERIFIED: usize = 200_000;

impl Verifier {
    pub fn new(secret: String) -> Self {
        Verifier { secret, verified: Mutex::new(HashMap::new()) }
    }

    pub fn verify(&self, token: &str) -> Option<FlatClaims> {
        let now = now_secs();
        if let Some((exp, claims)) = self.verified.lock().unwrap().get(token) {
            if now < *exp {
                return Some(claims.clone());
            }
        }
        let claims = verify(&self.secret, token)?;
        let exp: u64 = claims.get("exp")?.parse().ok()?;
        let claims = Arc::new(claims);
        let mut verified = self.verified.lock().unwrap();
        if verified.len() >= MAX_VERIFIED {
            verified.clear();
        }
        verified.insert(token.into(), (exp, claims.clone()));
        Some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_forgeries_fail() {
        let t = token("s3cret", "alice", true, 60);
        let claims = verify("s3cret", &t).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["cognito:groups"], "[admin]");
        assert!(verify("other", &t).is_none());
        assert!(verify("s3cret", "not.a.token").is_none());
    }

    #[test]
    fn the_verifier_keeps_tokens_only_while_they_live() {
        let verifier = Verifier::new("s3cret".into());
        let live = token("s3cret", "alice", false, 60);
        assert_eq!(verifier.verify(&live).unwrap()["sub"], "alice");
        assert_eq!(verifier.verify(&live).unwrap()["sub"], "alice", "from what it kept");
        assert!(verifier.verify(&token("other", "mallory", false, 60)).is_none());
        let mut tampered = live.clone();
        tampered.pop();
        assert!(verifier.verify(&tampered).is_none());
        // Expired past the leeway: never kept, never accepted.
        let expired = encode(
            &Header::new(Algorithm::HS256),
            &Claims { sub: "bob".into(), iat: 0, exp: now_secs() - 120, groups: Vec::new() },
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert!(verifier.verify(&expired).is_none());
        assert!(verifier.verify(&expired).is_none());
    }

    #[test]
    fn refresh_tokens_name_their_user_and_client_and_nothing_else_takes_them() {
        let refresh = refresh_token("s3cret", "alice", true, "app", 600);
        assert_eq!(redeem_refresh_token("s3cret", &refresh, "app"), Some(("alice".to_string(), true)));
        let shopper = refresh_token("s3cret", "bob", false, "app", 600);
        assert_eq!(redeem_refresh_token("s3cret", &shopper, "app"), Some(("bob".to_string(), false)));
        // Another client's, another secret's, a tampered or a made-up one: refused.
        assert!(redeem_refresh_token("s3cret", &refresh, "other-app").is_none());
        assert!(redeem_refresh_token("other", &refresh, "app").is_none());
        let mut tampered = refresh.clone();
        tampered.pop();
        assert!(redeem_refresh_token("s3cret", &tampered, "app").is_none());
        assert!(redeem_refresh_token("s3cret", "not-a-refresh-token", "app").is_none());
        // An access token is no refresh token, and a refresh token is no bearer token.
        assert!(redeem_refresh_token("s3cret", &token("s3cret", "alice", true, 600), "app").is_none());
        assert!(verify("s3cret", &refresh).is_none());
        assert!(Verifier::new("s3cret".into()).verify(&refresh).is_none());
        // Lapsed, even by a second: refused.
        let lapsed = encode(
            &Header::new(Algorithm::HS256),
            &RefreshClaims {
                sub: "alice".into(),
                admin: false,
                client_id: "app".into(),
                token_use: "refresh".into(),
                iat: 0,
                exp: now_secs() - 1,
            },
            &EncodingKey::from_secret(&refresh_key("s3cret")),
        )
        .unwrap();
        assert!(redeem_refresh_token("s3cret", &lapsed, "app").is_none());
    }
}
