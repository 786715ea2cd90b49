//! The S3 handle: the bucket of rendered pages that CloudFront serves.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use crate::error::{Error, Result};

pub struct Bucket {
    client: Client,
    name: String,
}

/// An object as stored, with the headers CloudFront passes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
}

/// S3 clients for the local stand-in need path-style addressing (no bucket subdomains).
pub fn client(sdk: &aws_config::SdkConfig) -> Client {
    let path_style = std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty());
    Client::from_conf(aws_sdk_s3::config::Builder::from(sdk).force_path_style(path_style).build())
}

impl Bucket {
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Bucket { client, name: name.into() }
    }

    /// The SHA-256 a page was stored with (in its metadata), to skip unchanged writes.
    pub async fn sha256(&self, key: &str) -> Result<Option<String>> {
        match self.client.head_object().bucket(&self.name).key(key).send().await {
            Ok(out) => Ok(out.metadata().and_then(|m| m.get("sha256")).cloned()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(Error::aws("s3", e)),
        }
    }

    pub async fn put_with_sha256(&self, key: &str, object: Object, sha256: &str) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .metadata("sha256", sha256)
            .body(ByteStream::from(object.body))
            .set_content_type(object.content_type)
            .set_cache_control(object.cache_control)
            .send()
            .await
            .map_err(|e| Error::aws("s3", e))?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Object>> {
        let out = match self.client.get_object().bucket(&self.name).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(Error::aws("s3", e)),
        };
        let content_type = out.content_type().map(str::to_string);
        let cache_control = out.cache_control().map(str::to_string);
        let body = out.body.collect().await.map_err(|e| Error::aws("s3", e))?.to_vec();
        Ok(Some(Object { body, content_type, cache_control }))
    }
}
