//! Continuing a job past one invocation. When the deadline stops the producer, the
//! summary carries the rest of the job as a request with a cursor; the Lambda function
//! hands it to a [`Continuer`], which on AWS invokes the function itself asynchronously
//! ([`LambdaContinuer`]). Batch ids come from the cursor, so a continuation (or a retry of
//! one) publishes the same ids an uninterrupted run would.

use std::future::Future;
use std::sync::Mutex;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use fanout_common::aws::edge_error;
use fanout_common::{EdgeError, FanoutRequest};

/// Starts the next invocation of a job.
pub trait Continuer: Send + Sync {
    /// Invokes `function` (name, ARN or qualified ARN) with `request`, not waiting for it.
    fn continue_job(
        &self,
        function: &str,
        request: &FanoutRequest,
    ) -> impl Future<Output = Result<(), EdgeError>> + Send;
}

/// Asynchronous Lambda `Invoke` (`InvocationType: Event`): Lambda queues the event, runs
/// it, and retries it twice on error.
#[derive(Debug, Clone)]
pub struct LambdaContinuer {
    client: aws_sdk_lambda::Client,
}

impl LambdaContinuer {
    /// Invokes through `client`.
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        Self { client }
    }
}

impl Continuer for LambdaContinuer {
    async fn continue_job(&self, function: &str, request: &FanoutRequest) -> Result<(), EdgeError> {
        let payload = serde_json::to_vec(request).map_err(|e| EdgeError::permanent(e.to_string()))?;
        self.client
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| edge_error("lambda Invoke (continuation)", e))?;
        Ok(())
    }
}

/// Keeps the continuations it is given: for tests, and for callers that run the
/// continuations themselves.
#[derive(Debug, Default)]
pub struct MemoryContinuer {
    started: Mutex<Vec<(String, FanoutRequest)>>,
}

impl MemoryContinuer {
    /// The continuations started so far, oldest first, and removes them.
    pub fn take(&self) -> Vec<(String, FanoutRequest)> {
        std::mem::take(&mut *self.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl Continuer for MemoryContinuer {
    async fn continue_job(&self, function: &str, request: &FanoutRequest) -> Result<(), EdgeError> {
        self.started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((function.to_owned(), request.clone()));
        Ok(())
    }
}
