//! Creating a stack in a local emulator with the SDK, for the end-to-end tests: DLQ, queue
//! with its redrive policy, topic, raw-delivery subscription, the two functions from the
//! `cargo lambda` zips, the worker's event source mapping with `ReportBatchItemFailures`,
//! and a bucket for recipient objects. (On AWS the stack comes from `infra/`.)

use std::path::PathBuf;

use anyhow::Context;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, Environment, FunctionCode, FunctionResponseType, Runtime, ScalingConfig};
use aws_sdk_sqs::types::QueueAttributeName;

/// Names and addresses of a deployed stack: what the `aws` target needs.
#[derive(Debug, Clone)]
pub struct StackNames {
    /// The producer function.
    pub producer_function: String,
    /// The worker function (empty when the worker runs as a consumer).
    pub worker_function: String,
    /// The topic.
    pub topic_arn: String,
    /// The work queue.
    pub queue_url: String,
    /// The dead-letter queue.
    pub dead_letter_queue_url: String,
}

/// What to create.
#[derive(Debug, Clone)]
pub struct Provision {
    /// Prefix of every resource name.
    pub name: String,
    /// Folder of the `cargo lambda build --output-format zip` output (`<bin>/bootstrap.zip`).
    pub zips: PathBuf,
    /// The endpoint the functions must call (emulators do not inject it).
    pub endpoint: String,
    /// The region.
    pub region: String,
    /// The worker's timeout; the queue's visibility timeout is six times it.
    pub function_timeout_secs: i32,
    /// Receives before a message moves to the DLQ.
    pub max_receive_count: u32,
    /// The event source mapping's batch size.
    pub batch_size: i32,
    /// The event source mapping's maximum concurrency.
    pub max_concurrency: i32,
    /// Create the event source mapping (off when a consumer process does the polling).
    pub event_source_mapping: bool,
    /// Extra environment for both functions (retry policy overrides …).
    pub env: Vec<(String, String)>,
    /// Extra environment for the producer only.
    pub producer_env: Vec<(String, String)>,
    /// Create this bucket for recipient objects.
    pub bucket: Option<String>,
}

/// Creates the stack and returns its names.
pub async fn provision(sdk: &aws_config::SdkConfig, p: &Provision) -> anyhow::Result<StackNames> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let sns = aws_sdk_sns::Client::new(sdk);
    let lambda = aws_sdk_lambda::Client::new(sdk);

    let dlq_url = create_queue(&sqs, &format!("{}-dlq", p.name), vec![]).await?;
    let dlq_arn = queue_arn(&sqs, &dlq_url).await?;
    let redrive =
        serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": p.max_receive_count.to_string()});
    let queue_url = create_queue(
        &sqs,
        &format!("{}-queue", p.name),
        vec![
            (QueueAttributeName::VisibilityTimeout, (6 * p.function_timeout_secs).to_string()),
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        ],
    )
    .await?;
    let queue_arn = queue_arn(&sqs, &queue_url).await?;

    let topic_arn = sns
        .create_topic()
        .name(format!("{}-topic", p.name))
        .send()
        .await
        .context("sns CreateTopic")?
        .topic_arn
        .context("sns CreateTopic returned no TopicArn")?;
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .return_subscription_arn(true)
        .send()
        .await
        .context("sns Subscribe")?;

    let mut common = vec![
        ("AWS_ENDPOINT_URL".to_owned(), p.endpoint.clone()),
        ("AWS_REGION".to_owned(), p.region.clone()),
        ("FANOUT_DEAD_LETTER_QUEUE_URL".to_owned(), dlq_url.clone()),
        ("RUST_LOG".to_owned(), "info".to_owned()),
    ];
    common.extend(p.env.iter().cloned());
    let producer_function = format!("{}-producer", p.name);
    if let Some(bucket) = &p.bucket {
        fanout_producer::s3::client(sdk)
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .with_context(|| format!("s3 CreateBucket {bucket}"))?;
    }
    let mut env = common.clone();
    env.push(("FANOUT_TOPIC_ARN".into(), topic_arn.clone()));
    env.extend(p.producer_env.iter().cloned());
    create_function(&lambda, &producer_function, &p.zips.join("producer/bootstrap.zip"), env, 900).await?;
    let worker_function = format!("{}-worker", p.name);
    let mut env = common;
    env.push(("FANOUT_QUEUE_URL".into(), queue_url.clone()));
    create_function(&lambda, &worker_function, &p.zips.join("worker/bootstrap.zip"), env, p.function_timeout_secs)
        .await?;
    if p.event_source_mapping {
        lambda
            .create_event_source_mapping()
            .event_source_arn(&queue_arn)
            .function_name(&worker_function)
            .batch_size(p.batch_size)
            .function_response_types(FunctionResponseType::ReportBatchItemFailures)
            .scaling_config(ScalingConfig::builder().maximum_concurrency(p.max_concurrency).build())
            .enabled(true)
            .send()
            .await
            .context("lambda CreateEventSourceMapping")?;
    }
    Ok(StackNames { producer_function, worker_function, topic_arn, queue_url, dead_letter_queue_url: dlq_url })
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: Vec<(QueueAttributeName, String)>,
) -> anyhow::Result<String> {
    let mut req = sqs.create_queue().queue_name(name);
    for (k, v) in attributes {
        req = req.attributes(k, v);
    }
    req.send().await.with_context(|| format!("sqs CreateQueue {name}"))?.queue_url.context("no QueueUrl")
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<String> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .with_context(|| format!("sqs GetQueueAttributes {url}"))?;
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .with_context(|| format!("no QueueArn for {url}"))
}

async fn create_function(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    zip: &std::path::Path,
    env: Vec<(String, String)>,
    timeout: i32,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(zip).with_context(|| format!("reading {}", zip.display()))?;
    let mut vars = Environment::builder();
    for (k, v) in env {
        vars = vars.variables(k, v);
    }
    lambda
        .create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .role("arn:aws:iam::000000000000:role/fanout-local")
        .architectures(if cfg!(target_arch = "aarch64") { Architecture::Arm64 } else { Architecture::X8664 })
        .code(FunctionCode::builder().zip_file(Blob::new(bytes)).build())
        .environment(vars.build())
        .timeout(timeout)
        .memory_size(512)
        .send()
        .await
        .with_context(|| format!("lambda CreateFunction {name}"))?;
    Ok(())
}
