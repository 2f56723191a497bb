//! The webhook deliverer against the sink: status classes, Retry-After, idempotency key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fanout_common::{BatchId, Channel, FailureClass, JobId, Recipient};
use fanout_loadtest::faults::FaultPlan;
use fanout_loadtest::ledger::Ledger;
use fanout_loadtest::sink::Sink;
use fanout_worker::{Deliverer, Delivery, Outcome, WebhookDeliverer};
use serde_json::value::RawValue;

async fn deliver_once(plan: FaultPlan, url: Option<&str>) -> (Outcome, Arc<Ledger>) {
    let ledger = Arc::new(Ledger::new(Instant::now()));
    let sink = Sink::start(ledger.clone(), plan).await.unwrap();
    let address = url.map_or_else(|| sink.url(), str::to_owned);
    let job = JobId::parse("job").unwrap();
    let recipient = Recipient::new("r1", address);
    let payload = RawValue::from_string("{\"a\":1}".into()).unwrap();
    let batch = BatchId::new("job-00000000");
    let d = Delivery {
        job_id: &job,
        batch_id: &batch,
        attempt: 1,
        channel: Channel::Webhook,
        payload: &payload,
        recipient: &recipient,
        key: recipient.key(&job),
    };
    let out = WebhookDeliverer::new(Duration::from_secs(5)).unwrap().deliver(d).await;
    sink.stop().await;
    (out, ledger)
}

#[tokio::test]
async fn accepted_deliveries_are_recorded_by_idempotency_key() {
    let (out, ledger) = deliver_once(FaultPlan::default(), None).await;
    assert_eq!(out, Outcome::Delivered);
    let key = Recipient::new("r1", "").key(&JobId::parse("job").unwrap());
    assert_eq!(ledger.count(key), 1);
}

#[tokio::test]
async fn statuses_map_to_failure_classes() {
    let (out, _) = deliver_once(FaultPlan { transient: 1.0, ..FaultPlan::default() }, None).await;
    assert_eq!(out, Outcome::Failed { class: FailureClass::Transient, reason: "http 503".into() });
    let (out, _) = deliver_once(FaultPlan { permanent: 1.0, ..FaultPlan::default() }, None).await;
    assert_eq!(out, Outcome::Failed { class: FailureClass::Permanent, reason: "http 410".into() });
    let plan = FaultPlan { throttle: 1.0, retry_after: Duration::from_secs(9), ..FaultPlan::default() };
    let (out, _) = deliver_once(plan, None).await;
    assert_eq!(
        out,
        Outcome::Failed {
            class: FailureClass::Throttled { retry_after: Some(Duration::from_secs(9)) },
            reason: "http 429".into()
        }
    );
}

#[tokio::test]
async fn an_unreachable_receiver_is_transient() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let (out, _) = deliver_once(FaultPlan::default(), Some(&url)).await;
    match out {
        Outcome::Failed { class: FailureClass::Transient, reason } => {
            assert!(reason.contains("error sending request"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}
