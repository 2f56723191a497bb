//! Recipient objects for load tests: `count` recipients `r0`, `r1`, … (the ids the
//! accounting walks) written as JSON Lines or CSV, with malformed lines spread among them,
//! to a local file (the embedded engine's S3) or uploaded to a bucket.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use fanout_common::{ObjectFormat, ObjectSource};

use crate::accounting::ID_PREFIX;

/// What to write.
#[derive(Debug, Clone)]
pub struct ObjectSpec {
    /// Line format.
    pub format: ObjectFormat,
    /// Recipients.
    pub count: u64,
    /// The address every recipient gets.
    pub address: String,
    /// Malformed lines, spread evenly between recipients.
    pub malformed: u64,
}

impl ObjectSpec {
    /// The request's source for this object at `bucket`/`key`.
    pub fn source(&self, bucket: &str, key: &str) -> ObjectSource {
        ObjectSource {
            bucket: bucket.into(),
            key: key.into(),
            version_id: None,
            format: self.format,
            id_field: "id".into(),
            address_field: "address".into(),
        }
    }

    /// A key for a fresh object of this format.
    pub fn fresh_key(&self) -> String {
        let ext = match self.format {
            ObjectFormat::Jsonl => "jsonl",
            ObjectFormat::Csv => "csv",
        };
        format!("loadtest/{}.{ext}", uuid::Uuid::new_v4().simple())
    }

    /// Writes the object to `path` (its folder is created); returns its size in bytes.
    pub fn write(&self, path: &Path) -> anyhow::Result<u64> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let address = match self.format {
            ObjectFormat::Jsonl => serde_json::to_string(&self.address)?,
            ObjectFormat::Csv => csv_field(&self.address),
        };
        if self.format == ObjectFormat::Csv {
            out.write_all(b"id,address\n")?;
        }
        // Malformed line k goes after recipient (k + 1) · count / (malformed + 1).
        let mut bad = 0;
        let next_bad = |k: u64| (k + 1).saturating_mul(self.count) / (self.malformed + 1);
        for n in 0..self.count {
            match self.format {
                ObjectFormat::Jsonl => writeln!(out, "{{\"id\":\"{ID_PREFIX}{n}\",\"address\":{address}}}")?,
                ObjectFormat::Csv => writeln!(out, "{ID_PREFIX}{n},{address}")?,
            }
            while bad < self.malformed && next_bad(bad) <= n + 1 {
                match self.format {
                    ObjectFormat::Jsonl => writeln!(out, "{{\"id\":\"broken-{bad}\",")?,
                    ObjectFormat::Csv => writeln!(out, "broken-{bad}")?,
                }
                bad += 1;
            }
        }
        out.flush()?;
        Ok(std::fs::metadata(path)?.len())
    }
}

/// The bucket load-test objects are written to.
pub const LOADTEST_BUCKET: &str = "fanout-loadtest";

/// Recipients read from a generated object, in the embedded engine a file under `dir`
/// (`<dir>/<bucket>/<key>`).
#[derive(Debug, Clone)]
pub struct ObjectRun {
    /// Line format.
    pub format: ObjectFormat,
    /// Malformed lines among the recipients.
    pub malformed: u64,
    /// Folder of the embedded engine's objects.
    pub dir: PathBuf,
}

/// An object written for one run; the file is removed when this is dropped.
#[derive(Debug)]
pub struct WrittenObject {
    /// The request's source.
    pub source: ObjectSource,
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// How long writing it took.
    pub write_time: std::time::Duration,
}

impl ObjectRun {
    /// Writes `count` recipients at `address` to a fresh file.
    pub fn write(&self, count: u64, address: &str) -> anyhow::Result<WrittenObject> {
        let spec = ObjectSpec { format: self.format, count, address: address.into(), malformed: self.malformed };
        let key = spec.fresh_key();
        let path = self.dir.join(LOADTEST_BUCKET).join(&key);
        let started = std::time::Instant::now();
        let bytes = spec.write(&path)?;
        Ok(WrittenObject { source: spec.source(LOADTEST_BUCKET, &key), path, bytes, write_time: started.elapsed() })
    }
}

impl Drop for WrittenObject {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_hold_every_recipient_and_the_malformed_lines_asked_for() {
        let dir = std::env::temp_dir().join(format!("fanout-objects-{}", uuid::Uuid::new_v4().simple()));
        for format in [ObjectFormat::Jsonl, ObjectFormat::Csv] {
            let spec = ObjectSpec { format, count: 1000, address: "https://x.example/a,b".into(), malformed: 7 };
            let path = dir.join(spec.fresh_key());
            spec.write(&path).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            let broken = text.lines().filter(|l| l.contains("broken-")).count();
            let good = text.lines().filter(|l| l.contains("\"r") || l.starts_with('r')).count();
            assert_eq!((good, broken), (1000, 7), "{format:?}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
