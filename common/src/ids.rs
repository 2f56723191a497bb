//! Typed identifiers: a job, a batch of a job, a recipient, and the idempotency key of one
//! delivery. Typed so a batch id can never be passed where a job id is meant.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::FieldError;

/// The longest job id, in characters.
pub const JOB_ID_MAX_CHARS: usize = 64;

/// Identifies one fan-out job. Ascii letters, digits, `-` and `_`, 1 to 64 characters, so
/// it can appear inside batch ids, log fields and SNS batch entry ids unescaped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(String);

impl JobId {
    /// Checks `s` against the job id rules.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        if s.is_empty() || s.len() > JOB_ID_MAX_CHARS {
            return Err(FieldError::new(
                "job_id",
                format!("must be 1 to {JOB_ID_MAX_CHARS} characters, got {}", s.len()),
            ));
        }
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(FieldError::new("job_id", format!("{c:?} is not allowed (use letters, digits, '-' and '_')")));
        }
        Ok(Self(s.to_owned()))
    }

    /// A fresh random job id (a UUID v4), for requests that do not name one.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The deterministic id of batch number `seq` of this job: a re-run of the same job
    /// publishes the same batch ids.
    pub fn batch_id(&self, seq: u64) -> BatchId {
        BatchId(format!("{}-{seq:08}", self.0))
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for JobId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        JobId::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// Identifies one batch of a job: `<job id>-<sequence>` for batches the producer publishes,
/// with `.a<attempt>` (and a part number when a retry is split) appended for re-enqueued
/// retries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BatchId(String);

impl BatchId {
    /// Wraps an id read from elsewhere (a message, a log).
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The id of the retry batch holding the failed recipients of this batch at `attempt`.
    pub fn retry(&self, attempt: u32) -> BatchId {
        let base = self.0.split(".a").next().unwrap_or(&self.0);
        BatchId(format!("{base}.a{attempt}"))
    }

    /// The id of the batch continuing this one's unfinished recipients (deadline reached).
    pub fn continuation(&self) -> BatchId {
        BatchId(format!("{}.c", self.0))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies a recipient within a job (an account id, a subscription id …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecipientId(pub String);

impl RecipientId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecipientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The idempotency key of delivering job `j` to recipient `r`: the 128-bit XXH3 hash of
/// `j`, a NUL byte and `r`, written as 32 lower-case hex digits. Every attempt and every
/// duplicate delivery of the same recipient in the same job carries the same key, so a
/// receiver can recognise a repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(pub u128);

impl IdempotencyKey {
    /// The key for `recipient` in `job`.
    pub fn derive(job: &str, recipient: &str) -> Self {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(job.as_bytes());
        h.update(&[0]);
        h.update(recipient.as_bytes());
        Self(h.digest128())
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl FromStr for IdempotencyKey {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 {
            return Err(FieldError::new("idempotency_key", "must be 32 hex digits"));
        }
        u128::from_str_radix(s, 16).map(Self).map_err(|_| FieldError::new("idempotency_key", "must be 32 hex digits"))
    }
}

impl Serialize for IdempotencyKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IdempotencyKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(|e: FieldError| serde::de::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_id_rules_name_the_field() {
        assert!(JobId::parse("daily-digest_2026").is_ok());
        let e = JobId::parse("a b").unwrap_err();
        assert_eq!(e.to_string(), "job_id: ' ' is not allowed (use letters, digits, '-' and '_')");
        assert!(JobId::parse("").is_err());
        assert!(JobId::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn batch_ids_are_deterministic() {
        let job = JobId::parse("j1").unwrap();
        assert_eq!(job.batch_id(7).as_str(), "j1-00000007");
        assert_eq!(job.batch_id(7), job.batch_id(7));
        let b = job.batch_id(7);
        assert_eq!(b.retry(2).as_str(), "j1-00000007.a2");
        assert_eq!(b.retry(2).retry(3).as_str(), "j1-00000007.a3");
    }

    #[test]
    fn idempotency_key_is_stable_and_round_trips() {
        let k = IdempotencyKey::derive("job", "r1");
        assert_eq!(k, IdempotencyKey::derive("job", "r1"));
        assert_ne!(k, IdempotencyKey::derive("job", "r2"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(IdempotencyKey::derive("ab", "c"), IdempotencyKey::derive("a", "bc"));
        let text = k.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<IdempotencyKey>().unwrap(), k);
        // Pinned: a change here breaks every receiver's deduplication.
        assert_eq!(IdempotencyKey::derive("job", "r1").to_string(), PINNED_KEY);
    }

    const PINNED_KEY: &str = "3293201963edef12af5732da8b3dd9b4";
}
