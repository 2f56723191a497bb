//! The `producer` Lambda function: configuration and clients once at init, then
//! `lambda_runtime::run`. A missing or malformed setting fails the init phase.
// The runtime's service stack nests deeply enough to need a higher limit.
#![recursion_limit = "256"]

use fanout_common::aws::{sdk_config, SqsDeadLetters};
use fanout_common::env::ProcessEnv;
use fanout_producer::config::Settings;
use fanout_producer::s3::S3Objects;
use fanout_producer::sns::SnsPublisher;
use fanout_producer::{lambda, LambdaContinuer, Producer};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::value::RawValue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = Settings::from_env(&ProcessEnv).map_err(|e| format!("configuration: {e}"))?;
    let sdk = sdk_config().await;
    let producer = Producer::new(
        SnsPublisher::new(aws_sdk_sns::Client::new(&sdk), settings.topic_arn),
        SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), settings.dead_letter_queue_url),
        settings.producer,
    )
    .with_objects(S3Objects::from_sdk(&sdk));
    let continuer = settings.self_invoke.then(|| LambdaContinuer::new(aws_sdk_lambda::Client::new(&sdk)));
    tracing::info!(version = lambda::VERSION, self_invoke = settings.self_invoke, "producer ready");
    let (producer, continuer) = (&producer, continuer.as_ref());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| async move {
        lambda::handle(producer, continuer, event).await
    }))
    .await
}
