//! The object-store edge: open an object at a byte offset as a stream of chunks, pinned to
//! an ETag when a continuation asks for the object it started on.

use std::future::Future;
use std::io::SeekFrom;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use fanout_common::ObjectSource;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Why an object cannot be read. Each message names the object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The object (or its bucket, or the version) does not exist.
    #[error("{0}: no such object")]
    NotFound(String),
    /// The producer may not read it.
    #[error("{0}: access denied (the producer's role needs s3:GetObject on it, and s3:ListBucket on the bucket to tell a missing object from a forbidden one)")]
    AccessDenied(String),
    /// It changed since the job started: a continuation will not read another object's bytes.
    #[error("{0}: the object changed since the job started (ETag {1} expected)")]
    Changed(String, String),
    /// A CSV header without the named columns, or unreadable.
    #[error("{0}")]
    Header(String),
    /// Reading failed (network, throttling, a local I/O error).
    #[error("{0}: read failed: {1}")]
    Read(String, String),
    /// This producer has no object store.
    #[error("{0}: this producer reads no objects")]
    Unsupported(String),
}

/// An object opened at an offset.
pub struct ObjectBody {
    /// Its ETag, when the store has one.
    pub etag: Option<String>,
    /// The bytes from the offset on.
    pub chunks: BoxStream<'static, Result<Bytes, SourceError>>,
}

impl ObjectBody {
    /// An empty body (the offset is at or past the end).
    pub fn empty(etag: Option<String>) -> Self {
        Self { etag, chunks: stream::empty().boxed() }
    }
}

/// Where recipient objects are read from.
pub trait Objects: Send + Sync {
    /// Opens `object` at byte `from`; with `etag`, only if the object still has that ETag.
    fn open(
        &self,
        object: &ObjectSource,
        from: u64,
        etag: Option<&str>,
    ) -> impl Future<Output = Result<ObjectBody, SourceError>> + Send;
}

/// No object store: a request naming an object is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObjects;

impl Objects for NoObjects {
    async fn open(&self, object: &ObjectSource, _: u64, _: Option<&str>) -> Result<ObjectBody, SourceError> {
        Err(SourceError::Unsupported(object.url()))
    }
}

/// Objects as files under a folder, `<root>/<bucket>/<key>`: the embedded engine's S3.
/// The ETag is made of the file's size and modification time.
#[derive(Debug, Clone)]
pub struct FileObjects {
    root: PathBuf,
}

/// Bytes read from a file at a time.
const FILE_CHUNK_BYTES: usize = 64 * 1024;

impl FileObjects {
    /// Objects under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The file holding `bucket`/`key`; `None` for keys that would leave the folder.
    pub fn path(&self, bucket: &str, key: &str) -> Option<PathBuf> {
        let key = Path::new(key);
        let plain = key.components().all(|c| matches!(c, Component::Normal(_)));
        (plain && !bucket.contains(['/', '\\']) && bucket != "..").then(|| self.root.join(bucket).join(key))
    }
}

impl Objects for FileObjects {
    async fn open(&self, object: &ObjectSource, from: u64, etag: Option<&str>) -> Result<ObjectBody, SourceError> {
        let url = object.url();
        let path = self.path(&object.bucket, &object.key).ok_or_else(|| SourceError::NotFound(url.clone()))?;
        let io = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => SourceError::NotFound(url.clone()),
            std::io::ErrorKind::PermissionDenied => SourceError::AccessDenied(url.clone()),
            _ => SourceError::Read(url.clone(), e.to_string()),
        };
        let mut file = tokio::fs::File::open(&path).await.map_err(io)?;
        let meta = file.metadata().await.map_err(io)?;
        let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        let tag = format!("\"{:x}-{:x}\"", meta.len(), modified.map_or(0, |d| d.as_nanos()));
        if let Some(expected) = etag.filter(|e| *e != tag) {
            return Err(SourceError::Changed(url, expected.to_owned()));
        }
        if from >= meta.len() {
            return Ok(ObjectBody::empty(Some(tag)));
        }
        file.seek(SeekFrom::Start(from)).await.map_err(io)?;
        let chunks = stream::unfold(Some((file, url)), |state| async move {
            let (mut file, url) = state?;
            let mut buf = vec![0; FILE_CHUNK_BYTES];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some((file, url))))
                }
                Err(e) => Some((Err(SourceError::Read(url, e.to_string())), None)),
            }
        })
        .boxed();
        Ok(ObjectBody { etag: Some(tag), chunks })
    }
}
