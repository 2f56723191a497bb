//! Reading configuration from environment variables, once, at start-up: a missing or
//! malformed value is an error that names the variable, so the Lambda init phase fails
//! loudly instead of a handler failing later.

use std::str::FromStr;
use std::time::Duration;

use crate::error::FieldError;
use crate::retry::RetryPolicy;

/// A source of variables: the process environment, or a map in tests.
pub trait Vars {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Vars for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Vars for std::collections::HashMap<&str, &str> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| (*v).to_owned())
    }
}

/// A required, non-empty variable.
pub fn required(vars: &impl Vars, name: &str) -> Result<String, FieldError> {
    match vars.var(name) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        Some(_) => Err(FieldError::new(name, "is set but empty")),
        None => Err(FieldError::new(name, "is not set")),
    }
}

/// An optional variable parsed as `T`, or `default`.
pub fn parsed<T: FromStr>(vars: &impl Vars, name: &str, default: T) -> Result<T, FieldError> {
    match vars.var(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| FieldError::new(name, format!("{v:?} is not a valid {}", kind::<T>()))),
    }
}

/// An optional whole number that must lie in `range`.
pub fn number_in(
    vars: &impl Vars,
    name: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, FieldError> {
    let n = parsed(vars, name, default)?;
    if !range.contains(&n) {
        return Err(FieldError::new(name, format!("{n} is not between {} and {}", range.start(), range.end())));
    }
    Ok(n)
}

/// An optional duration in milliseconds.
pub fn millis(vars: &impl Vars, name: &str, default: Duration) -> Result<Duration, FieldError> {
    parsed(vars, name, default.as_millis() as u64).map(Duration::from_millis)
}

/// The retry policy from `FANOUT_RETRY_MAX_ATTEMPTS`, `FANOUT_RETRY_BASE_DELAY_MS` and
/// `FANOUT_RETRY_MAX_DELAY_MS`, each defaulting to `base`'s value.
pub fn retry_policy(vars: &impl Vars, base: RetryPolicy) -> Result<RetryPolicy, FieldError> {
    let p = RetryPolicy {
        max_attempts: number_in(vars, "FANOUT_RETRY_MAX_ATTEMPTS", u64::from(base.max_attempts), 1..=100)? as u32,
        base_delay: millis(vars, "FANOUT_RETRY_BASE_DELAY_MS", base.base_delay)?,
        max_delay: millis(vars, "FANOUT_RETRY_MAX_DELAY_MS", base.max_delay)?,
    };
    p.check().map_err(|e| FieldError::new("FANOUT_RETRY_*", e.to_string()))?;
    Ok(p)
}

fn kind<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    match name {
        "u8" | "u16" | "u32" | "u64" | "usize" => "whole number",
        "f32" | "f64" => "number",
        "bool" => "boolean (true or false)",
        _ => "value",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn errors_name_the_variable() {
        let vars: HashMap<&str, &str> = HashMap::from([("A", "12"), ("B", "twelve"), ("C", " "), ("D", "5000")]);
        assert_eq!(required(&vars, "A").unwrap(), "12");
        assert_eq!(required(&vars, "Z").unwrap_err().to_string(), "Z: is not set");
        assert_eq!(required(&vars, "C").unwrap_err().to_string(), "C: is set but empty");
        assert_eq!(parsed(&vars, "A", 1u32).unwrap(), 12);
        assert_eq!(parsed(&vars, "Z", 7u32).unwrap(), 7);
        assert_eq!(parsed(&vars, "B", 1u32).unwrap_err().to_string(), "B: \"twelve\" is not a valid whole number");
        assert_eq!(number_in(&vars, "D", 1, 1..=1000).unwrap_err().to_string(), "D: 5000 is not between 1 and 1000");
        assert_eq!(millis(&vars, "D", Duration::ZERO).unwrap(), Duration::from_secs(5));
    }

    #[test]
    fn retry_policy_overrides_and_checks() {
        let vars: HashMap<&str, &str> = HashMap::from([("FANOUT_RETRY_MAX_ATTEMPTS", "3")]);
        let p = retry_policy(&vars, RetryPolicy::default()).unwrap();
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.base_delay, RetryPolicy::default().base_delay);
        let vars: HashMap<&str, &str> = HashMap::from([("FANOUT_RETRY_BASE_DELAY_MS", "1000000000")]);
        assert!(retry_policy(&vars, RetryPolicy::default()).unwrap_err().to_string().contains("base_delay"));
    }
}
