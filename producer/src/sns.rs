//! The topic edge on AWS: SNS `PublishBatch` through the AWS SDK.

use aws_sdk_sns::types::PublishBatchRequestEntry;
use fanout_common::aws::edge_error;
use fanout_common::EdgeError;

use crate::publish::{EntryFailure, PublishEntry, Publisher};

/// Publishes to one SNS topic.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsPublisher {
    /// A publisher to `topic_arn`.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self { client, topic_arn: topic_arn.into() }
    }
}

impl Publisher for SnsPublisher {
    async fn publish_batch(&self, entries: Vec<PublishEntry>) -> Result<Vec<EntryFailure>, EdgeError> {
        let mut request = self.client.publish_batch().topic_arn(&self.topic_arn);
        for e in entries {
            let entry = PublishBatchRequestEntry::builder()
                .id(e.id)
                .message(e.body)
                .build()
                .map_err(|err| EdgeError::permanent(format!("sns PublishBatch entry: {err}")))?;
            request = request.publish_batch_request_entries(entry);
        }
        let out = request.send().await.map_err(|e| edge_error("sns PublishBatch", e))?;
        Ok(out
            .failed()
            .iter()
            .map(|f| EntryFailure {
                id: f.id().to_owned(),
                code: f.code().to_owned(),
                message: f.message().unwrap_or_default().to_owned(),
                sender_fault: f.sender_fault(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sns::operation::publish_batch::{PublishBatchError, PublishBatchOutput};
    use aws_sdk_sns::types::error::NotFoundException;
    use aws_sdk_sns::types::{BatchResultErrorEntry, PublishBatchResultEntry};
    use aws_sdk_sns::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use fanout_common::FailureClass;

    use super::*;

    fn entries() -> Vec<PublishEntry> {
        vec![
            PublishEntry { id: "job-00000000".into(), body: "{\"a\":1}".into() },
            PublishEntry { id: "job-00000001".into(), body: "{\"a\":2}".into() },
        ]
    }

    #[tokio::test]
    async fn all_entries_published() {
        let rule = mock!(Client::publish_batch)
            .match_requests(|r| {
                r.topic_arn() == Some("arn:aws:sns:eu-west-1:1:t")
                    && r.publish_batch_request_entries().len() == 2
                    && r.publish_batch_request_entries()[1].message() == "{\"a\":2}"
            })
            .then_output(|| {
                PublishBatchOutput::builder()
                    .successful(PublishBatchResultEntry::builder().id("job-00000000").message_id("m0").build())
                    .successful(PublishBatchResultEntry::builder().id("job-00000001").message_id("m1").build())
                    .build()
            });
        let p = SnsPublisher::new(mock_client!(aws_sdk_sns, [&rule]), "arn:aws:sns:eu-west-1:1:t");
        assert!(p.publish_batch(entries()).await.unwrap().is_empty());
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn failed_entries_come_back_with_code_and_sender_fault() {
        let rule = mock!(Client::publish_batch).then_output(|| {
            PublishBatchOutput::builder()
                .successful(PublishBatchResultEntry::builder().id("job-00000000").message_id("m0").build())
                .failed(
                    BatchResultErrorEntry::builder()
                        .id("job-00000001")
                        .code("InternalError")
                        .message("try again")
                        .sender_fault(false)
                        .build()
                        .unwrap(),
                )
                .build()
        });
        let p = SnsPublisher::new(mock_client!(aws_sdk_sns, [&rule]), "t");
        let failed = p.publish_batch(entries()).await.unwrap();
        assert_eq!(
            failed,
            vec![EntryFailure {
                id: "job-00000001".into(),
                code: "InternalError".into(),
                message: "try again".into(),
                sender_fault: false
            }]
        );
    }

    #[tokio::test]
    async fn a_failed_request_is_an_edge_error_with_its_class() {
        let rule = mock!(Client::publish_batch).then_error(|| {
            PublishBatchError::NotFoundException(NotFoundException::builder().message("no topic").build())
        });
        let p = SnsPublisher::new(mock_client!(aws_sdk_sns, [&rule]), "t");
        let e = p.publish_batch(entries()).await.unwrap_err();
        assert_eq!(e.class, FailureClass::Permanent);
        assert!(e.message.contains("sns PublishBatch") && e.message.contains("no topic"), "{}", e.message);

        let rule = mock!(Client::publish_batch).sequence().http_status(500, None).repeatedly().build();
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled()));
        let e = SnsPublisher::new(client, "t").publish_batch(entries()).await.unwrap_err();
        assert_eq!(e.class, FailureClass::Transient);
    }
}
