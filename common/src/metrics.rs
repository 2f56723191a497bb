//! CloudWatch Embedded Metric Format: metrics as one JSON log line per invocation, which
//! CloudWatch Logs turns into metrics — no API call on the hot path. Written by hand: the
//! format is one small JSON object, and the `metrics`-facade crates would add a recorder and
//! a flush cycle for what is a single line.

use serde_json::{json, Map, Value};

/// The namespace of every fanout metric.
pub const NAMESPACE: &str = "fanout";

/// The unit of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// A duration in milliseconds.
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF line: `metrics` under the `fanout` namespace with `dimensions`, at `timestamp_ms`.
pub fn emf_line(dimensions: &[(&str, &str)], metrics: &[(&str, f64, Unit)], timestamp_ms: u64) -> String {
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()})).collect::<Vec<_>>(),
            }],
        }),
    );
    for (k, v) in dimensions {
        root.insert((*k).into(), Value::from(*v));
    }
    for (name, value, _) in metrics {
        root.insert((*name).into(), Value::from(*value));
    }
    Value::Object(root).to_string()
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_valid_emf() {
        let line = emf_line(
            &[("function", "worker")],
            &[("Delivered", 12.0, Unit::Count), ("BatchDuration", 3.5, Unit::Milliseconds)],
            1_764_151_200_000,
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_764_151_200_000u64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "fanout");
        assert_eq!(directive["Dimensions"], json!([["function"]]));
        assert_eq!(directive["Metrics"][1], json!({"Name": "BatchDuration", "Unit": "Milliseconds"}));
        assert_eq!(v["function"], "worker");
        assert_eq!(v["Delivered"], 12.0);
        assert!(!line.contains('\n'), "one line");
    }
}
