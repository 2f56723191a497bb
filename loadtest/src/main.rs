//! `fanout-loadtest`: runs the whole pipeline and prints the report. Exit status 1 when any
//! recipient was lost, 2 when the run could not be made.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fanout_common::{BatchLimits, Channel, RetryPolicy};
use fanout_loadtest::engine::EsmConfig;
use fanout_loadtest::faults::FaultPlan;
use fanout_loadtest::harness::{check, run, RunConfig};

/// mimalloc instead of the system allocator: under many concurrent connections glibc's
/// arena locks were the largest cost of the webhook path (see the README's figures).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TargetArg {
    /// Everything in this process (SNS, SQS and Lambda modelled by the embedded engine).
    Embedded,
    /// A deployed stack, on AWS or an emulator (`AWS_ENDPOINT_URL`).
    Aws,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ChannelArg {
    Webhook,
    Log,
    Noop,
}

/// Run the fanout pipeline end to end and report throughput, latency, loss, duplicates and cost.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where the pipeline runs.
    #[arg(long, value_enum, default_value = "embedded")]
    target: TargetArg,
    /// aws target: the producer function's name.
    #[arg(long, env = "FANOUT_PRODUCER_FUNCTION")]
    producer_function: Option<String>,
    /// aws target: the work queue's URL.
    #[arg(long, env = "FANOUT_QUEUE_URL")]
    queue_url: Option<String>,
    /// aws target: the dead-letter queue's URL.
    #[arg(long, env = "FANOUT_DEAD_LETTER_QUEUE_URL")]
    dead_letter_queue_url: Option<String>,
    /// aws target: first create the stack in a local emulator (at AWS_ENDPOINT_URL) from the
    /// `cargo lambda` zips.
    #[arg(long)]
    provision_emulator: bool,
    /// aws target: where the `cargo lambda build --output-format zip` output is.
    #[arg(long, default_value = "target/lambda")]
    zips: std::path::PathBuf,
    /// aws target: run this `worker` binary as a consumer instead of the event source mapping.
    #[arg(long)]
    consumer_bin: Option<std::path::PathBuf>,
    /// aws target: where the webhook sink listens (default 127.0.0.1 on a free port).
    #[arg(long)]
    sink_bind: Option<std::net::SocketAddr>,
    /// aws target: the URL recipients are given when Lambda reaches the sink through another
    /// address (e.g. http://<public address>:8080/hook).
    #[arg(long)]
    sink_url: Option<String>,
    /// Recipients in the job.
    #[arg(long, default_value_t = 100_000)]
    recipients: u64,
    /// How recipients are reached: webhook (HTTP to a local sink), log, noop.
    #[arg(long, value_enum, default_value = "noop")]
    channel: ChannelArg,
    /// Share of delivery attempts failed transiently (HTTP 503).
    #[arg(long, default_value_t = 0.0)]
    fail_transient: f64,
    /// Share of recipients refused on every attempt (HTTP 410).
    #[arg(long, default_value_t = 0.0)]
    fail_permanent: f64,
    /// Share of delivery attempts throttled (HTTP 429 with Retry-After).
    #[arg(long, default_value_t = 0.0)]
    throttle: f64,
    /// Retry-After a throttle asks for, in seconds.
    #[arg(long, default_value_t = 1)]
    retry_after_secs: u64,
    /// Share of messages the queue delivers twice (at-least-once).
    #[arg(long, default_value_t = 0.0)]
    duplicates: f64,
    /// Share of PublishBatch entries failed with Throttled.
    #[arg(long, default_value_t = 0.0)]
    publish_throttle: f64,
    /// Extra latency of every receiver response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Seed of the fault decisions.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Event source mapping batch size (above 10 needs --batching-window-secs ≥ 1).
    #[arg(long, default_value_t = 10)]
    batch_size: usize,
    /// Event source mapping batching window, in seconds.
    #[arg(long, default_value_t = 0)]
    batching_window_secs: u64,
    /// Event source mapping maximum concurrency.
    #[arg(long, default_value_t = 8)]
    max_concurrency: usize,
    /// Worker function timeout, in seconds (the queue's visibility timeout is six times it).
    #[arg(long, default_value_t = 30)]
    function_timeout_secs: u64,
    /// Worker and producer memory, in MB (for GB-seconds).
    #[arg(long, default_value_t = 1024)]
    memory_mb: u32,
    /// Deliveries in flight per worker invocation.
    #[arg(long, default_value_t = 64)]
    worker_concurrency: usize,
    /// Attempts per recipient before it is dead-lettered.
    #[arg(long, default_value_t = 6)]
    max_attempts: u32,
    /// Receives before the queue moves a message to the DLQ.
    #[arg(long, default_value_t = 5)]
    max_receive_count: u32,
    /// Deliver the SNS envelope instead of raw messages.
    #[arg(long)]
    sns_envelope: bool,
    /// Most encoded bytes per batch.
    #[arg(long, default_value_t = 65_536)]
    batch_bytes: usize,
    /// Most recipients per batch.
    #[arg(long, default_value_t = 10_000)]
    batch_recipients: usize,
    /// Simulated seconds per real second (delays, timeouts, windows).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Give up after this many seconds; unsettled recipients count as lost.
    #[arg(long, default_value_t = 1800)]
    max_wall_secs: u64,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

impl Args {
    fn config(&self) -> RunConfig {
        RunConfig {
            recipients: self.recipients,
            channel: match self.channel {
                ChannelArg::Webhook => Channel::Webhook,
                ChannelArg::Log => Channel::Log,
                ChannelArg::Noop => Channel::Noop,
            },
            faults: FaultPlan {
                transient: self.fail_transient,
                permanent: self.fail_permanent,
                throttle: self.throttle,
                retry_after: Duration::from_secs(self.retry_after_secs),
                latency: Duration::from_millis(self.latency_ms),
                seed: self.seed,
            },
            duplicates: self.duplicates,
            publish_throttle: self.publish_throttle,
            time_scale: self.time_scale,
            esm: EsmConfig {
                batch_size: self.batch_size,
                batching_window: Duration::from_secs(self.batching_window_secs),
                maximum_concurrency: self.max_concurrency,
                function_timeout: Duration::from_secs(self.function_timeout_secs),
                memory_mb: self.memory_mb,
            },
            worker_concurrency: self.worker_concurrency,
            retry: RetryPolicy { max_attempts: self.max_attempts, ..RetryPolicy::default() },
            max_receive_count: self.max_receive_count,
            raw_delivery: !self.sns_envelope,
            batch_limits: BatchLimits { max_recipients: self.batch_recipients, max_bytes: self.batch_bytes },
            producer_timeout: Duration::from_secs(900),
            max_wall: Duration::from_secs(self.max_wall_secs),
            progress: true,
        }
    }
}

/// The `aws` target: optionally provision the emulator stack, then drive it.
async fn run_aws(args: &Args, config: RunConfig) -> anyhow::Result<fanout_loadtest::Report> {
    use anyhow::Context;
    use fanout_loadtest::aws::{self, AwsRunConfig, ConsumerProcess, Provision, StackNames};

    if !matches!(args.channel, ChannelArg::Webhook) {
        anyhow::bail!("--target aws needs --channel webhook: only webhook deliveries reach this machine's sink");
    }
    let sdk = fanout_common::aws::sdk_config().await;
    let stack = if args.provision_emulator {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").context("--provision-emulator needs AWS_ENDPOINT_URL")?;
        let p = Provision {
            name: format!("fanout-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            zips: args.zips.clone(),
            endpoint,
            region: sdk.region().map_or_else(|| "us-east-1".to_owned(), ToString::to_string),
            function_timeout_secs: args.function_timeout_secs as i32,
            max_receive_count: args.max_receive_count,
            batch_size: args.batch_size as i32,
            max_concurrency: args.max_concurrency as i32,
            event_source_mapping: args.consumer_bin.is_none(),
            env: vec![
                ("FANOUT_RETRY_MAX_ATTEMPTS".into(), args.max_attempts.to_string()),
                ("FANOUT_RETRY_BASE_DELAY_MS".into(), "1000".into()),
            ],
        };
        aws::provision(&sdk, &p).await?
    } else {
        StackNames {
            producer_function: args.producer_function.clone().context("--producer-function is required")?,
            worker_function: String::new(),
            topic_arn: String::new(),
            queue_url: args.queue_url.clone().context("--queue-url is required")?,
            dead_letter_queue_url: args.dead_letter_queue_url.clone().context("--dead-letter-queue-url is required")?,
        }
    };
    let run = AwsRunConfig {
        recipients: config.recipients,
        faults: config.faults,
        batch_limits: config.batch_limits,
        max_wall: config.max_wall,
        sink_bind: args.sink_bind,
        sink_url: args.sink_url.clone(),
        consumer: args.consumer_bin.clone().map(|binary| ConsumerProcess {
            binary,
            max_in_flight: args.max_concurrency,
            env: vec![
                ("FANOUT_RETRY_MAX_ATTEMPTS".into(), args.max_attempts.to_string()),
                ("FANOUT_RETRY_BASE_DELAY_MS".into(), "1000".into()),
            ],
        }),
    };
    aws::run(&sdk, &stack, &run).await
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into()))
        .init();
    let config = args.config();
    if let Err(e) = check(&config) {
        eprintln!("fanout-loadtest: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fanout-loadtest: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match args.target {
        TargetArg::Embedded => runtime.block_on(run(config)),
        TargetArg::Aws => runtime.block_on(run_aws(&args, config)),
    };
    let report = match outcome {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fanout-loadtest: {e:#}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        match serde_json::to_string(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("fanout-loadtest: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        println!("{report}");
    }
    if report.lost > 0 {
        eprintln!("fanout-loadtest: {} recipients lost", report.lost);
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
