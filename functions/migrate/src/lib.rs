//! `migrate`: the CloudFormation custom resource behind the stack's schema. On Create
//! and Update it creates the database if missing, applies `migrations/` (compiled in,
//! serialised by a lock, so a deploy racing another is safe; see
//! `flashsale::stores::mysql::schema` for the rollback and repair rules) and creates or
//! updates the application's own MySQL user with only the rights the functions use.
//! Delete leaves the data alone.
//!
//! It answers CloudFormation on every exit, so that no create, update, rollback or
//! delete waits out the resource's `ServiceTimeout`: the work is bounded by the
//! invocation's deadline less what answering needs, each answer attempt has its own
//! timeouts, and a panic (`panic = "abort"` in release builds: no unwinding, no drop)
//! answers FAILED from the panic hook before the process ends.
//!
//! Credentials come from Secrets Manager at run time (`FLASHSALE_DB_ADMIN_SECRET`, the
//! master user; `FLASHSALE_DB_APP_SECRET`, the application user), never from the
//! environment: `FLASHSALE_DATABASE_URL` names only the host and the database.

use std::future::Future;
use std::str::FromStr;
use std::time::{Duration, Instant};

use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceRequest as Request, CloudFormationCustomResourceResponse as Response,
    CloudFormationCustomResourceResponseStatus as Status,
};
use flashsale::stores::access;
use flashsale::stores::mysql::{schema, Mysql};
use flashsale::Secret;
use flashsale::{Config, Error, Result};
use serde::Deserialize;
use sqlx::migrate::Migrator;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::ConnectOptions;

pub mod panics;

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
    migrations: Migrator,
    /// `FLASHSALE_DB_FUNCTION_SECRETS`: each function's MySQL user, one secret each.
    function_secrets: Vec<String>,
}

/// Kept back from the invocation's deadline for answering CloudFormation.
const ANSWER_RESERVE: Duration = Duration::from_secs(20);
/// One attempt at the answer, connecting included; then another, within the reserve.
const ANSWER_ATTEMPT: Duration = Duration::from_secs(5);

/// Names go into SQL as identifiers: letters, digits and `_` only.
fn identifier(name: &str) -> Result<&str> {
    let valid = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(name).ok_or_else(|| Error::Config(format!("{name:?} is not a plain MySQL name")))
}

/// A string literal for SQL that cannot be a bound parameter (`IDENTIFIED BY`).
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// When the work must stop to leave its answer time: the reserve, or half of what is
/// left if that is less.
fn work_until(deadline: Instant) -> Instant {
    let left = deadline.saturating_duration_since(Instant::now());
    deadline - ANSWER_RESERVE.min(left / 2)
}

fn required(name: &str) -> Result<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| Error::Config(format!("{name} must be set")))
}

impl Migrate {
    pub fn new(config: &Config, sdk: &aws_config::SdkConfig, admin_secret: String, app_secret: String) -> Self {
        flashsale::stores::aws::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(ANSWER_ATTEMPT)
            .timeout(ANSWER_ATTEMPT)
            .build()
            .expect("a client with timeouts builds");
        Migrate {
            config: config.clone(),
            sdk: sdk.clone(),
            admin_secret,
            app_secret,
            http,
            migrations: schema::migrations(),
            function_secrets: Vec::new(),
        }
    }

    /// The same function, creating too the functions' own users these secrets hold
    /// (see `flashsale::stores::access`).
    pub fn with_function_users(mut self, secrets: Vec<String>) -> Self {
        self.function_secrets = secrets;
        self
    }

    /// The same function with another set of migrations (another release's, in tests).
    pub fn with_migrations(mut self, migrations: Migrator) -> Self {
        self.migrations = migrations;
        self
    }

    pub async fn from_env(config: &Config) -> Result<Self> {
        let (admin, app) = (required("FLASHSALE_DB_ADMIN_SECRET")?, required("FLASHSALE_DB_APP_SECRET")?);
        let functions: Vec<String> = std::env::var("FLASHSALE_DB_FUNCTION_SECRETS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Ok(Migrate::new(config, &flashsale::stores::aws::sdk_config(config).await, admin, app)
            .with_function_users(functions))
    }

    /// Does the work the request asks for and reports to CloudFormation, all before
    /// `deadline` (the invocation's).
    pub async fn handle(&self, request: Request, deadline: Instant) -> Result<()> {
        let work = async {
            match &request {
                // Boxed: the whole future nested in `answering` is deeper than rustc's layout limit.
                Request::Create(_) | Request::Update(_) => Box::pin(self.apply()).await,
                // The schema and its data outlive the resource: nothing to undo.
                Request::Delete(_) => Ok(()),
                _ => Err(Error::Internal("unknown request type".into())),
            }
        };
        self.answering(&request, deadline, work).await
    }

    /// Runs `work` for `request` and answers CloudFormation with its outcome: FAILED if
    /// it fails, outlasts `deadline` less the answer's reserve, or panics.
    pub async fn answering(
        &self,
        request: &Request,
        deadline: Instant,
        work: impl Future<Output = Result<()>>,
    ) -> Result<()> {
        let mut response = Response::default();
        let (response_url, physical_id) = match request {
            Request::Create(r) => {
                (response.stack_id, response.request_id) = (r.stack_id.clone(), r.request_id.clone());
                response.logical_resource_id = r.logical_resource_id.clone();
                (&r.response_url, None)
            }
            Request::Update(r) => {
                (response.stack_id, response.request_id) = (r.stack_id.clone(), r.request_id.clone());
                response.logical_resource_id = r.logical_resource_id.clone();
                (&r.response_url, Some(&r.physical_resource_id))
            }
            Request::Delete(r) => {
                (response.stack_id, response.request_id) = (r.stack_id.clone(), r.request_id.clone());
                response.logical_resource_id = r.logical_resource_id.clone();
                (&r.response_url, Some(&r.physical_resource_id))
            }
            _ => return Err(Error::Internal("a request of an unknown type names no one to answer".into())),
        };
        // One physical id for the life of the resource: an update never replaces it.
        response.physical_resource_id =
            physical_id.cloned().unwrap_or_else(|| format!("{}-schema", response.logical_resource_id));

        let armed = panics::arm(response_url, &response);
        let outcome = panics::ANSWERING
            .scope(armed.id(), tokio::time::timeout_at(work_until(deadline).into(), work))
            .await
            .unwrap_or_else(|_| {
                Err(Error::Internal(
                    "the migrations did not finish within the invocation; the next run repairs what they left".into(),
                ))
            });
        drop(armed);
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "migration failed");
        }
        response.status = if outcome.is_ok() { Status::Success } else { Status::Failed };
        response.reason = outcome.as_ref().err().map(|e| format!("{e} (see the function's log)"));
        self.answer(response_url, &response, deadline).await?;
        outcome
    }

    /// PUTs `response` to the pre-signed URL, attempt after attempt until one is taken
    /// or `deadline` comes.
    async fn answer(&self, url: &str, response: &Response, deadline: Instant) -> Result<()> {
        let body = serde_json::to_vec(response).map_err(|e| Error::Internal(e.to_string()))?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // The pre-signed URL is signed for no content type: send none.
            let sent = self.http.put(url).timeout(left.min(ANSWER_ATTEMPT)).body(body.clone()).send().await;
            let error = match sent.and_then(|r| r.error_for_status()) {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            tracing::warn!(error = %error, "answering CloudFormation failed");
            if deadline.saturating_duration_since(Instant::now()) < Duration::from_secs(1) {
                return Err(Error::Internal(format!("could not answer CloudFormation: {error}")));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Creates the database if missing, applies the migrations, and creates (or sets
    /// the password and rights of) the application user.
    pub async fn apply(&self) -> Result<()> {
        let admin = self.user_secret(&self.admin_secret).await?;
        let app = self.user_secret(&self.app_secret).await?;
        let target = MySqlConnectOptions::from_str(self.config.mysql.url.expose())?
            .username(&admin.username)
            .password(admin.password.expose());
        let database = identifier(target.get_database().unwrap_or("flashsale"))?.to_string();
        // This connection sends the application user's password (`IDENTIFIED BY`): none
        // of its statements may reach the log, slow ones included.
        let mut server = target.clone().database("information_schema").disable_statement_logging().connect().await?;
        sqlx::raw_sql(&format!("CREATE DATABASE IF NOT EXISTS `{database}`")).execute(&mut server).await?;

        Mysql::connect_with(&self.config, target.database(&database)).migrate_with(&self.migrations).await?;
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

        // Each function's own user, with the rights of what it runs: granted afresh, so a
        // right a release no longer lists is taken back.
        for id in &self.function_secrets {
            let secret = self.user_secret(id).await?;
            let access = access::of_mysql_user(&secret.username).ok_or_else(|| {
                Error::Config(format!("secret {id} names {:?}, which is no function's MySQL user", secret.username))
            })?;
            // The master user is never narrowed to a function's rights.
            if access.mysql_user == admin.username {
                return Err(Error::Config(format!("{} is the master user, not a function's", admin.username)));
            }
            let user = identifier(access.mysql_user)?;
            let password = literal(secret.password.expose());
            let grants: String = access
                .mysql_grants
                .iter()
                .map(|grant| {
                    let (privileges, table) = grant.split_once(" ON ").unwrap_or((grant, ""));
                    format!(
                        "GRANT {privileges} ON `{database}`.`{}` TO '{user}'@'%'; ",
                        identifier(table).unwrap_or("-")
                    )
                })
                .collect();
            sqlx::raw_sql(&format!(
                "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY {password}; \
                 ALTER USER '{user}'@'%' IDENTIFIED BY {password}; \
                 REVOKE ALL PRIVILEGES, GRANT OPTION FROM '{user}'@'%'; {grants}"
            ))
            .execute(&mut server)
            .await?;
            tracing::info!(user, function = access.function, "function user ready");
        }
        Ok(())
    }

    async fn user_secret(&self, id: &str) -> Result<UserSecret> {
        let text = flashsale::stores::aws::secret_string(&self.sdk, id).await?;
        serde_json::from_str(text.expose())
            .map_err(|_| Error::Config(format!("secret {id} is not {{\"username\", \"password\"}} JSON")))
    }
}
