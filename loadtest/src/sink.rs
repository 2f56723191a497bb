//! The receivers of a load test: an HTTP webhook sink on 127.0.0.1 and its in-process twin
//! for the `noop` and `log` channels. Both record every accepted delivery in the
//! [`Ledger`] by idempotency key and apply the same [`FaultPlan`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use fanout_common::IdempotencyKey;
use fanout_worker::webhook::{ATTEMPT_HEADER, IDEMPOTENCY_KEY_HEADER};
use fanout_worker::{Deliverer, Delivery, Outcome};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::faults::{FaultPlan, Verdict};
use crate::ledger::Ledger;

/// The webhook sink: answers `POST /hook` by the fault plan.
pub struct Sink {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

struct Receiver {
    ledger: Arc<Ledger>,
    plan: FaultPlan,
}

impl Receiver {
    /// The verdict on one attempt, recorded.
    async fn judge(&self, key: IdempotencyKey, attempt: u32) -> Verdict {
        if !self.plan.latency.is_zero() {
            tokio::time::sleep(self.plan.latency).await;
        }
        let v = self.plan.decide(key, attempt);
        match v {
            Verdict::Accept => self.ledger.delivered(key),
            _ => self.ledger.refused(),
        }
        v
    }
}

fn respond(status: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

async fn handle(rx: Arc<Receiver>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let key = header(IDEMPOTENCY_KEY_HEADER).and_then(|k| k.parse::<IdempotencyKey>().ok());
    let attempt = header(ATTEMPT_HEADER).and_then(|a| a.parse().ok()).unwrap_or(1);
    // Read the body so the connection can be kept alive.
    let _ = req.into_body().collect().await;
    let Some(key) = key else { return Ok(respond(StatusCode::BAD_REQUEST)) };
    Ok(match rx.judge(key, attempt).await {
        Verdict::Accept => respond(StatusCode::OK),
        Verdict::Transient => respond(StatusCode::SERVICE_UNAVAILABLE),
        Verdict::Permanent => respond(StatusCode::GONE),
        Verdict::Throttle => {
            let mut r = respond(StatusCode::TOO_MANY_REQUESTS);
            let secs = rx.plan.retry_after.as_secs().to_string();
            if let Ok(v) = hyper::header::HeaderValue::from_str(&secs) {
                r.headers_mut().insert(hyper::header::RETRY_AFTER, v);
            }
            r
        }
    })
}

impl Sink {
    /// Starts the sink on 127.0.0.1 on a free port.
    pub async fn start(ledger: Arc<Ledger>, plan: FaultPlan) -> std::io::Result<Self> {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), ledger, plan).await
    }

    /// Starts the sink listening on `bind` (for a load test on AWS, an address Lambda can
    /// reach).
    pub async fn start_at(bind: SocketAddr, ledger: Arc<Ledger>, plan: FaultPlan) -> std::io::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let (stop, mut stopped) = watch::channel(false);
        let rx = Arc::new(Receiver { ledger, plan });
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let _ = stream.set_nodelay(true);
                        let rx = rx.clone();
                        conns.spawn(async move {
                            let svc = hyper::service::service_fn(move |req| handle(rx.clone(), req));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .keep_alive(true)
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    _ = stopped.changed() => break,
                }
            }
            conns.abort_all();
        });
        Ok(Self { addr, stop, task })
    }

    /// The URL recipients are given.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Stops accepting and closes every connection.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The in-process receiver for the `noop` and `log` channels: the channel's own deliverer
/// runs, then the fault plan and the ledger apply as at the webhook sink.
pub struct InProcessSink<D> {
    inner: D,
    rx: Receiver,
}

impl<D> InProcessSink<D> {
    /// Wraps `inner`.
    pub fn new(inner: D, ledger: Arc<Ledger>, plan: FaultPlan) -> Self {
        Self { inner, rx: Receiver { ledger, plan } }
    }
}

impl<D: Deliverer> Deliverer for InProcessSink<D> {
    async fn deliver(&self, d: Delivery<'_>) -> Outcome {
        if let Outcome::Failed { class, reason } = self.inner.deliver(d).await {
            return Outcome::Failed { class, reason };
        }
        let v = self.rx.judge(d.key, d.attempt).await;
        match self.rx.plan.class(v) {
            None => Outcome::Delivered,
            Some(class) => Outcome::Failed { class, reason: format!("injected {v:?}") },
        }
    }
}
