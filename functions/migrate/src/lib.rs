//! `migrate`: the CloudFormation custom resource behind the stack's schema. On Create
//! and Update it creates the database if missing, applies `migrations/` (compiled in,
//! serialised by a lock, so a deploy racing another is safe) and creates or updates the
//! application's own MySQL user with only the rights the functions use. Delete leaves
//! the data alone. It always answers CloudFormation, FAILED with the reason included,
//! so a broken migration fails the deploy at once instead of hanging it for an hour.
//!
//! Credentials come from Secrets Manager at run time (`FLASHSALE_DB_ADMIN_SECRET`, the
//! master user; `FLASHSALE_DB_APP_SECRET`, the application user), never from the
//! environment: `FLASHSALE_DATABASE_URL` names only the host and the database.

use std::str::FromStr;

use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceRequest as Request, CloudFormationCustomResourceResponse as Response,
    CloudFormationCustomResourceResponseStatus as Status,
};
use flashsale::config::Secret;
use flashsale::stores::mysql::Mysql;
use flashsale::{Config, Error, Result};
use serde::Deserialize;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::ConnectOptions;

/// A Secrets Manager secret of a MySQL user, as RDS and RDS Proxy use them.
#[derive(Deserialize)]
struct UserSecret {
    username: String,
    password: Secret,
}

pub struct Migrate {
    config: Config,
    sdk: aws_config::SdkConfig,
    admin_secret: String,
    app_secret: String,
    http: reqwest::Client,
}

/// Names go into SQL as identifiers: letters, digits and `_` only.
fn identifier(name: &str) -> Result<&str> {
    let valid = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(name).ok_or_else(|| Error::Config(format!("{name:?} is not a plain MySQL name")))
}

/// A string literal for SQL that cannot be a bound parameter (`IDENTIFIED BY`).
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn required(name: &str) -> Result<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| Error::Config(format!("{name} must be set")))
}

impl Migrate {
    pub fn new(config: &Config, sdk: &aws_config::SdkConfig, admin_secret: String, app_secret: String) -> Self {
        flashsale::stores::aws::install_crypto_provider();
        Migrate { config: config.clone(), sdk: sdk.clone(), admin_secret, app_secret, http: reqwest::Client::new() }
    }

    pub async fn from_env(config: &Config) -> Result<Self> {
        let (admin, app) = (required("FLASHSALE_DB_ADMIN_SECRET")?, required("FLASHSALE_DB_APP_SECRET")?);
        Ok(Migrate::new(config, &flashsale::stores::aws::sdk_config(config).await, admin, app))
    }

    /// Does the work the request asks for and reports to CloudFormation.
    pub async fn handle(&self, request: Request) -> Result<()> {
        let (outcome, response_url, stack_id, request_id, logical_id, physical_id) = match &request {
            Request::Create(r) => {
                (self.apply().await, &r.response_url, &r.stack_id, &r.request_id, &r.logical_resource_id, None)
            }
            Request::Update(r) => (
                self.apply().await,
                &r.response_url,
                &r.stack_id,
                &r.request_id,
                &r.logical_resource_id,
                Some(&r.physical_resource_id),
            ),
            // The schema and its data outlive the resource: nothing to undo.
            Request::Delete(r) => (
                Ok(()),
                &r.response_url,
                &r.stack_id,
                &r.request_id,
                &r.logical_resource_id,
                Some(&r.physical_resource_id),
            ),
            _ => (
                Err(Error::Internal("unknown request type".into())),
                &String::new(),
                &String::new(),
                &String::new(),
                &String::new(),
                None,
            ),
        };
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "migration failed");
        }
        let mut response = Response::default();
        response.status = if outcome.is_ok() { Status::Success } else { Status::Failed };
        response.reason = outcome.as_ref().err().map(|e| format!("{e} (see the function's log)"));
        // One physical id for the life of the resource: an update never replaces it.
        response.physical_resource_id = physical_id.cloned().unwrap_or_else(|| format!("{logical_id}-schema"));
        response.stack_id = stack_id.clone();
        response.request_id = request_id.clone();
        response.logical_resource_id = logical_id.clone();
        let body = serde_json::to_vec(&response).map_err(|e| Error::Internal(e.to_string()))?;
        // The pre-signed URL is signed for no content type: send none.
        let sent = self.http.put(response_url.as_str()).body(body).send().await;
        match sent.map(|r| r.error_for_status()) {
            Ok(Ok(_)) => outcome,
            Ok(Err(e)) | Err(e) => Err(Error::Internal(format!("could not answer CloudFormation: {e}"))),
        }
    }

    /// Creates the database if missing, applies the migrations, and creates (or sets
    /// the password and rights of) the application user.
    pub async fn apply(&self) -> Result<()> {
        let admin = self.user_secret(&self.admin_secret).await?;
        let app = self.user_secret(&self.app_secret).await?;
        let target = MySqlConnectOptions::from_str(self.config.database_url.expose())?
            .username(&admin.username)
            .password(admin.password.expose());
        let database = identifier(target.get_database().unwrap_or("flashsale"))?.to_string();
        let mut server = target.clone().database("information_schema").connect().await?;
        sqlx::raw_sql(&format!("CREATE DATABASE IF NOT EXISTS `{database}`")).execute(&mut server).await?;

        Mysql::connect_with(&self.config, target.database(&database)).migrate().await?;
        tracing::info!(database, "migrations applied");

        let user = identifier(&app.username)?;
        let password = literal(app.password.expose());
        // What the functions do and nothing more: read and write sales and orders.
        sqlx::raw_sql(&format!(
            "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY {password}; \
             ALTER USER '{user}'@'%' IDENTIFIED BY {password}; \
             GRANT SELECT, INSERT, UPDATE ON `{database}`.* TO '{user}'@'%'"
        ))
        .execute(&mut server)
        .await?;
        tracing::info!(user, "application user ready");
        Ok(())
    }

    async fn user_secret(&self, id: &str) -> Result<UserSecret> {
        let text = flashsale::stores::aws::secret_string(&self.sdk, id).await?;
        serde_json::from_str(text.expose())
            .map_err(|_| Error::Config(format!("secret {id} is not {{\"username\", \"password\"}} JSON")))
    }
}
