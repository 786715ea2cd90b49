//! A function's local init time: from starting its bootstrap until it first asks the
//! Lambda Runtime API for work, i.e. until its clients are built and it is ready.

use std::path::Path;
use std::time::{Duration, Instant};

use flashsale::{Error, Result};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

pub async fn measure(binary: &Path) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| Error::Internal(e.to_string()))?;
    let addr = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "init-time")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "init-time")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "init-time")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Internal(format!("{}: {e}", binary.display())))?;
    let accepted = tokio::time::timeout(Duration::from_secs(30), listener.accept()).await;
    let elapsed = started.elapsed();
    let (mut socket, _) = accepted
        .map_err(|_| Error::Internal(format!("{} never asked for work", binary.display())))?
        .map_err(|e| Error::Internal(e.to_string()))?;
    // Read the request line so the measurement ends at a real GET /next.
    let mut buf = [0u8; 64];
    let _ = socket.read(&mut buf).await;
    let _ = child.kill().await;
    if !buf.starts_with(b"GET /2018-06-01/runtime/invocation/next") {
        return Err(Error::Internal(format!("{} sent {:?}", binary.display(), String::from_utf8_lossy(&buf))));
    }
    Ok(elapsed.as_secs_f64() * 1000.0)
}
