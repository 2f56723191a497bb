//! The queue edge on AWS: re-enqueueing with SQS `SendMessageBatch` and `DelaySeconds`.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use fanout_common::aws::edge_error;
use fanout_common::{EdgeError, FailureClass};

use crate::requeue::{Outgoing, Requeue};

/// Sends batches back to one SQS queue.
#[derive(Debug, Clone)]
pub struct SqsRequeue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsRequeue {
    /// A re-enqueue edge on the queue at `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }
}

impl Requeue for SqsRequeue {
    async fn enqueue(&self, messages: Vec<Outgoing>) -> Result<(), EdgeError> {
        let mut request = self.client.send_message_batch().queue_url(&self.queue_url);
        for (i, m) in messages.into_iter().enumerate() {
            let entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(m.body)
                .delay_seconds(i32::try_from(m.delay_seconds).unwrap_or(i32::MAX))
                .build()
                .map_err(|e| EdgeError::permanent(format!("sqs SendMessageBatch entry: {e}")))?;
            request = request.entries(entry);
        }
        let out = request.send().await.map_err(|e| edge_error("sqs SendMessageBatch", e))?;
        match out.failed().first() {
            None => Ok(()),
            Some(f) => Err(EdgeError {
                class: if f.sender_fault() { FailureClass::Permanent } else { FailureClass::Transient },
                message: format!(
                    "sqs SendMessageBatch: entry {} failed: {}: {}",
                    f.id(),
                    f.code(),
                    f.message().unwrap_or_default()
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::operation::send_message_batch::{SendMessageBatchError, SendMessageBatchOutput};
    use aws_sdk_sqs::types::error::BatchRequestTooLong;
    use aws_sdk_sqs::types::BatchResultErrorEntry;
    use aws_sdk_sqs::Client;
    use aws_smithy_mocks::{mock, mock_client};

    use super::*;

    fn two() -> Vec<Outgoing> {
        vec![Outgoing { body: "a".into(), delay_seconds: 7 }, Outgoing { body: "b".into(), delay_seconds: 0 }]
    }

    #[tokio::test]
    async fn messages_are_sent_with_their_delays() {
        let rule = mock!(Client::send_message_batch)
            .match_requests(|r| {
                let e = r.entries();
                r.queue_url() == Some("https://sqs/q")
                    && e.len() == 2
                    && e[0].delay_seconds() == Some(7)
                    && e[0].message_body() == "a"
                    && e[1].id() == "1"
            })
            .then_output(|| {
                SendMessageBatchOutput::builder().set_successful(Some(vec![])).set_failed(Some(vec![])).build().unwrap()
            });
        let q = SqsRequeue::new(mock_client!(aws_sdk_sqs, [&rule]), "https://sqs/q");
        q.enqueue(two()).await.unwrap();
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_failed_entry_fails_the_enqueue() {
        let rule = mock!(Client::send_message_batch).then_output(|| {
            SendMessageBatchOutput::builder()
                .set_successful(Some(vec![]))
                .failed(
                    BatchResultErrorEntry::builder().id("1").code("InternalError").sender_fault(false).build().unwrap(),
                )
                .build()
                .unwrap()
        });
        let q = SqsRequeue::new(mock_client!(aws_sdk_sqs, [&rule]), "q");
        let e = q.enqueue(two()).await.unwrap_err();
        assert_eq!(e.class, FailureClass::Transient);
        assert!(e.message.contains("entry 1 failed: InternalError"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_refused_request_is_permanent() {
        let rule = mock!(Client::send_message_batch)
            .then_error(|| SendMessageBatchError::BatchRequestTooLong(BatchRequestTooLong::builder().build()));
        let q = SqsRequeue::new(mock_client!(aws_sdk_sqs, [&rule]), "q");
        assert_eq!(q.enqueue(two()).await.unwrap_err().class, FailureClass::Permanent);
    }
}
