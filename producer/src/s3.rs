//! The object-store edge on AWS: S3 `GetObject` through the AWS SDK, the body streamed as
//! it arrives, ranged from the cursor's byte offset and pinned with `If-Match` to the ETag
//! the job started with.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use fanout_common::ObjectSource;
use futures::stream::{self, StreamExt};

use crate::source::{ObjectBody, Objects, SourceError};

/// Reads recipient objects from S3.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
}

impl S3Objects {
    /// Reads through `client`.
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self { client }
    }

    /// Reads through a client from the shared SDK configuration ([`client`]).
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        Self::new(client(sdk))
    }
}

/// An S3 client from the shared SDK configuration; path-style addressing when an endpoint
/// is set (local emulators serve no per-bucket host names).
pub fn client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some()).build();
    aws_sdk_s3::Client::from_conf(config)
}

impl Objects for S3Objects {
    async fn open(&self, object: &ObjectSource, from: u64, etag: Option<&str>) -> Result<ObjectBody, SourceError> {
        let url = object.url();
        let mut request = self
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .set_if_match(etag.map(str::to_owned));
        if from > 0 {
            request = request.range(format!("bytes={from}-"));
        }
        let out = match request.send().await {
            Ok(out) => out,
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let no_such_key = e.as_service_error().is_some_and(|s| s.is_no_such_key());
                let code = if no_such_key { Some("NoSuchKey") } else { e.code() };
                return match (code, status) {
                    (Some("NoSuchKey" | "NoSuchBucket" | "NoSuchVersion"), _) | (_, Some(404)) => {
                        Err(SourceError::NotFound(url))
                    }
                    (Some("AccessDenied"), _) | (_, Some(403)) => Err(SourceError::AccessDenied(url)),
                    (Some("PreconditionFailed"), _) | (_, Some(412)) => {
                        Err(SourceError::Changed(url, etag.unwrap_or_default().to_owned()))
                    }
                    // The offset is at the end: nothing is left to read.
                    (Some("InvalidRange"), _) | (_, Some(416)) => Ok(ObjectBody::empty(etag.map(str::to_owned))),
                    _ => Err(SourceError::Read(url, format!("s3 GetObject: {}", DisplayErrorContext(&e)))),
                };
            }
        };
        let etag = out.e_tag.clone().or_else(|| etag.map(str::to_owned));
        let chunks = stream::unfold(Some((out.body, url)), |state| async move {
            let (mut body, url) = state?;
            match body.next().await? {
                Ok(bytes) => Some((Ok(bytes), Some((body, url)))),
                Err(e) => Some((Err(SourceError::Read(url, e.to_string())), None)),
            }
        })
        .boxed();
        Ok(ObjectBody { etag, chunks })
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::error::NoSuchKey;
    use aws_sdk_s3::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use fanout_common::{ObjectFormat, ObjectSource};
    use futures::StreamExt;

    use super::*;

    fn object() -> ObjectSource {
        ObjectSource {
            bucket: "recipients".into(),
            key: "jobs/1.jsonl".into(),
            version_id: Some("v7".into()),
            format: ObjectFormat::Jsonl,
            id_field: "id".into(),
            address_field: "address".into(),
        }
    }

    #[tokio::test]
    async fn a_continuation_reads_a_range_of_the_same_version_pinned_to_its_etag() {
        let rule = mock!(Client::get_object)
            .match_requests(|r| {
                r.bucket() == Some("recipients")
                    && r.key() == Some("jobs/1.jsonl")
                    && r.version_id() == Some("v7")
                    && r.range() == Some("bytes=1000-")
                    && r.if_match() == Some("\"abc\"")
            })
            .then_output(|| GetObjectOutput::builder().e_tag("\"abc\"").body(ByteStream::from_static(b"rest")).build());
        let store = S3Objects::new(mock_client!(aws_sdk_s3, [&rule]));
        let body = store.open(&object(), 1000, Some("\"abc\"")).await.unwrap();
        assert_eq!(body.etag.as_deref(), Some("\"abc\""));
        let bytes: Vec<u8> = body.chunks.map(|c| c.unwrap().to_vec()).concat().await;
        assert_eq!(bytes, b"rest");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn errors_name_the_object_and_what_is_wrong() {
        let missing = mock!(Client::get_object).then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()));
        let store = S3Objects::new(mock_client!(aws_sdk_s3, [&missing]));
        let e = store.open(&object(), 0, None).await.err().unwrap();
        assert_eq!(e.to_string(), "s3://recipients/jobs/1.jsonl?versionId=v7: no such object");

        for (status, expected) in [
            (403, "access denied (the producer's role needs s3:GetObject"),
            (412, "the object changed since the job started"),
        ] {
            let rule = mock!(Client::get_object).sequence().http_status(status, None).repeatedly().build();
            let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&rule], |c| c
                .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled()));
            let e = S3Objects::new(client).open(&object(), 10, Some("\"abc\"")).await.err().unwrap();
            assert!(e.to_string().contains(expected), "{status}: {e}");
        }

        // A continuation whose offset is the object's end reads nothing.
        let rule = mock!(Client::get_object).sequence().http_status(416, None).repeatedly().build();
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled()));
        let body = S3Objects::new(client).open(&object(), 10, None).await.unwrap();
        assert_eq!(body.chunks.count().await, 0);
    }
}
