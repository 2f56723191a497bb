//! The `worker` binary.
//!
//! - `worker`: the Lambda function behind the SQS event source mapping.
//! - `worker consume --queue-url URL [--max-in-flight N] [--visibility-timeout SECS]`: a
//!   long-lived SQS consumer; SIGTERM or Ctrl-C stops it after the batches in hand.
//!
//! Configuration and clients are built once; a missing or malformed setting fails at start.
// The runtime's service stack nests deeply enough to need a higher limit.
#![recursion_limit = "256"]

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use fanout_common::aws::{sdk_config, SqsDeadLetters};
use fanout_common::env::ProcessEnv;
use fanout_worker::config::Settings;
use fanout_worker::consumer::{self, ConsumerConfig};
use fanout_worker::sqs::SqsRequeue;
use fanout_worker::{lambda, Channels, WebhookDeliverer, Worker};
use lambda_runtime::{service_fn, Error, LambdaEvent};

const USAGE: &str = "usage: worker [consume --queue-url URL [--max-in-flight N] [--visibility-timeout SECONDS]]";

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let consumer = match args.first().map(String::as_str) {
        None => None,
        Some("consume") => Some(consumer_config(&args[1..])?),
        Some(other) => return Err(format!("unknown command {other:?}; {USAGE}").into()),
    };
    let settings = Settings::from_env(&ProcessEnv, consumer.as_ref().map(|c| c.queue_url.clone()))
        .map_err(|e| format!("configuration: {e}"))?;
    let sdk = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let webhook = WebhookDeliverer::new(settings.webhook_timeout).map_err(|e| format!("http client: {e}"))?;
    let worker = Worker::new(
        Channels::new(webhook),
        SqsRequeue::new(sqs.clone(), settings.queue_url.clone()),
        SqsDeadLetters::new(sqs.clone(), settings.dead_letter_queue_url.clone()),
        settings.worker,
    );
    tracing::info!(
        version = lambda::VERSION,
        mode = if consumer.is_some() { "consume" } else { "lambda" },
        "worker ready"
    );
    match consumer {
        None => {
            let worker = &worker;
            lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
                lambda::handle(worker, event).await
            }))
            .await
        }
        Some(config) => {
            let (stop, stopped) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutting down: finishing the batches in hand");
                let _ = stop.send(true);
            });
            let stats = consumer::run(&worker, &sqs, &config, stopped).await;
            tracing::info!(?stats, "consumer stopped");
            Ok(())
        }
    }
}

fn consumer_config(args: &[String]) -> Result<ConsumerConfig, Error> {
    let mut queue_url = None;
    let mut config = ConsumerConfig::new("");
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value; {USAGE}"))?;
        match flag.as_str() {
            "--queue-url" => queue_url = Some(value.clone()),
            "--max-in-flight" => {
                config.max_in_flight =
                    value.parse().map_err(|_| format!("--max-in-flight: {value:?} is not a whole number"))?;
            }
            "--visibility-timeout" => {
                let secs: u64 =
                    value.parse().map_err(|_| format!("--visibility-timeout: {value:?} is not a whole number"))?;
                config.visibility_timeout = Duration::from_secs(secs);
            }
            other => return Err(format!("unknown flag {other:?}; {USAGE}").into()),
        }
    }
    config.queue_url = queue_url.ok_or_else(|| format!("--queue-url is required; {USAGE}"))?;
    Ok(config)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
