//! The AWS SDK side of the shared edges (feature `aws`): how SDK errors become
//! [`EdgeError`]s, the dead-letter writer on an SQS queue, and the SDK configuration.
//!
//! The endpoint honours the standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SNS` /
//! `AWS_ENDPOINT_URL_SQS` settings, so the same binaries talk to a local emulator.

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::edge::{DeadLetters, EdgeError};
use crate::message::DeadLetterRecord;
use crate::retry::FailureClass;

/// Error codes AWS services answer when a caller goes too fast.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "Throttled",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "KMSThrottlingException",
    "KMSThrottling",
];

/// Classifies an SDK error (after the SDK's own retries): throttling is throttled; time-outs,
/// connection failures, unreadable responses and 5xx are transient; the rest permanent.
pub fn edge_error<E>(operation: &str, e: SdkError<E, HttpResponse>) -> EdgeError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let class = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            FailureClass::Transient
        }
        SdkError::ServiceError(_) if e.code().is_some_and(|c| THROTTLING_CODES.contains(&c)) => {
            FailureClass::Throttled { retry_after: None }
        }
        SdkError::ServiceError(_) if e.raw_response().is_some_and(|r| r.status().as_u16() >= 500) => {
            FailureClass::Transient
        }
        _ => FailureClass::Permanent,
    };
    EdgeError { class, message: format!("{operation}: {}", DisplayErrorContext(&e)) }
}

/// Loads the SDK configuration from the environment (region, credentials, endpoint).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
}

/// Dead-letter records as messages on an SQS queue (one `SendMessage` each).
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsDeadLetters {
    /// A writer to the queue at `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }
}

impl DeadLetters for SqsDeadLetters {
    async fn write(&self, record: DeadLetterRecord) -> Result<(), EdgeError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(record.to_json())
            .send()
            .await
            .map(drop)
            .map_err(|e| edge_error("sqs SendMessage (dead letter)", e))
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::operation::send_message::{SendMessageError, SendMessageOutput};
    use aws_sdk_sqs::types::error::QueueDoesNotExist;
    use aws_sdk_sqs::Client;
    use aws_smithy_mocks::{mock, mock_client};

    use super::*;
    use crate::message::DeadLetterRecord;

    #[tokio::test]
    async fn dead_letters_are_sent_to_the_queue_as_json() {
        let rule = mock!(Client::send_message)
            .match_requests(|r| {
                r.queue_url() == Some("https://sqs.local/dlq")
                    && r.message_body().is_some_and(|b| b.contains("\"kind\":\"poison\""))
            })
            .then_output(|| SendMessageOutput::builder().message_id("m-1").build());
        let client = mock_client!(aws_sdk_sqs, [&rule]);
        let dl = SqsDeadLetters::new(client, "https://sqs.local/dlq");
        dl.write(DeadLetterRecord::poison("m-0", "bad".into(), "{")).await.unwrap();
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_missing_queue_is_a_permanent_error_naming_the_operation() {
        let rule = mock!(Client::send_message)
            .then_error(|| SendMessageError::QueueDoesNotExist(QueueDoesNotExist::builder().build()));
        let client = mock_client!(aws_sdk_sqs, [&rule]);
        let e =
            SqsDeadLetters::new(client, "q").write(DeadLetterRecord::poison("m", "r".into(), "b")).await.unwrap_err();
        assert_eq!(e.class, FailureClass::Permanent);
        assert!(e.message.starts_with("sqs SendMessage (dead letter): "), "{}", e.message);
    }

    #[tokio::test]
    async fn throttling_and_server_errors_are_retryable() {
        let throttled = mock!(Client::send_message)
            .sequence()
            .http_status(
                400,
                Some(r#"{"__type":"com.amazonaws.sqs#ThrottlingException","message":"slow down"}"#.into()),
            )
            .repeatedly()
            .build();
        let client = mock_client!(aws_sdk_sqs, aws_smithy_mocks::RuleMode::MatchAny, [&throttled], |c| c
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled()));
        let e =
            SqsDeadLetters::new(client, "q").write(DeadLetterRecord::poison("m", "r".into(), "b")).await.unwrap_err();
        assert!(matches!(e.class, FailureClass::Throttled { .. }), "{e:?}");

        let broken = mock!(Client::send_message).sequence().http_status(503, None).repeatedly().build();
        let client = mock_client!(aws_sdk_sqs, aws_smithy_mocks::RuleMode::MatchAny, [&broken], |c| c
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled()));
        let e =
            SqsDeadLetters::new(client, "q").write(DeadLetterRecord::poison("m", "r".into(), "b")).await.unwrap_err();
        assert_eq!(e.class, FailureClass::Transient, "{e:?}");
    }
}
