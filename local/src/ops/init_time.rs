//! A function's local init time: from starting its bootstrap until it first asks the
//! Lambda Runtime API for work, i.e. until its clients are built, its extensions are
//! registered and it is ready.

use std::path::Path;
use std::time::Duration;

use flashsale::{Error, Result};

use crate::aws::runtime_api::RuntimeApi;

pub async fn measure(binary: &Path) -> Result<f64> {
    let api = RuntimeApi::start().await?;
    let mut child = tokio::process::Command::new(binary)
        .envs(api.variables("init-time"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Internal(format!("{}: {e}", binary.display())))?;
    let ready = tokio::select! {
        ready = api.ready(Duration::from_secs(30)) => ready,
        exited = child.wait() => Err(Error::Internal(format!("exited during init ({exited:?})"))),
    };
    let _ = child.kill().await;
    let ready = ready.map_err(|e| Error::Internal(format!("{}: {e}", binary.display())))?;
    Ok(ready.as_secs_f64() * 1000.0)
}
