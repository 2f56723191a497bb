//! The three ways the producer is triggered, all reaching the same handler:
//!
//! - a direct invoke whose payload is a [`FanoutRequest`] (an application, the load test);
//! - an EventBridge event (a rule on application events) whose `detail` is one;
//! - a scheduled invocation (EventBridge Scheduler or a scheduled rule) whose target has a
//!   constant input: EventBridge then sends that input as it is, i.e. a direct request.
//!   A scheduled event *without* constant input carries no request and is refused.

use fanout_common::FanoutRequest;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::Error;

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(rename = "detail-type", default)]
    detail_type: Option<String>,
    #[serde(borrow, default)]
    detail: Option<&'a RawValue>,
    #[serde(default)]
    source: Option<String>,
}

/// The request carried by an invocation payload, whichever trigger sent it.
pub fn request_from_event(payload: &str) -> Result<FanoutRequest, Error> {
    let peek: Peek<'_> =
        serde_json::from_str(payload).map_err(|e| Error::Decode(fanout_common::Error::Decode(e.to_string())))?;
    match (peek.detail_type, peek.source, peek.detail) {
        (Some(kind), Some(_), Some(detail)) => {
            if detail.get().trim() == "{}" {
                return Err(Error::Decode(fanout_common::Error::Decode(format!(
                    "detail: the {kind:?} event carries no FanoutRequest (give the schedule's target a constant input, or put the request in the event's detail)"
                ))));
            }
            FanoutRequest::from_json(detail.get())
                .map_err(|e| Error::Decode(fanout_common::Error::Decode(format!("in detail: {e}"))))
        }
        _ => FanoutRequest::from_json(payload).map_err(Error::Decode),
    }
}
