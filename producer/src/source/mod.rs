//! Recipient sources as streams: the producer reads recipients one at a time and never
//! holds a whole set. Every item carries the position after it, so the producer can stop
//! at a batch boundary and hand on a cursor.
//!
//! [`objects`] is the object-store edge (S3 in [`crate::s3`], files for the embedded
//! engine), [`lines`] turns an object's bytes into recipients.

pub mod lines;
pub mod objects;

use fanout_common::{Cursor, FanoutRequest, ObjectFormat, ObjectSource, Recipient, RecipientSource, RejectedLine};
use futures::stream::{self, BoxStream, StreamExt};

use self::lines::{Columns, LineDecoder, MAX_LINE_BYTES};
pub use self::objects::{FileObjects, NoObjects, ObjectBody, Objects, SourceError};

/// A position in a source: where the next read starts, and how many lines lie before it
/// (for inline and synthetic sources both count recipients; for an object, bytes and lines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// Recipients, or bytes of an object.
    pub offset: u64,
    /// Lines before `offset`.
    pub line: u64,
}

/// What one step of a source yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A valid recipient.
    Recipient(Recipient),
    /// A line of an object that is not one.
    Rejected(RejectedLine),
}

/// An item and the position right after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The item.
    pub item: Item,
    /// Where reading goes on after it.
    pub end: Position,
}

/// An open source.
pub struct Opened {
    /// The items from the cursor on. An `Err` ends the stream.
    pub items: BoxStream<'static, Result<Read, SourceError>>,
    /// The object's ETag (objects only), to pin continuations to the same object.
    pub etag: Option<String>,
}

/// Opens the source of `request` at `cursor`. A missing object, a refused read or a CSV
/// header without the named columns fails here, before anything is published.
pub async fn open<O: Objects>(objects: &O, request: &FanoutRequest, cursor: &Cursor) -> Result<Opened, SourceError> {
    let items = match &request.recipients {
        RecipientSource::Inline(list) => {
            let skip = usize::try_from(cursor.offset).unwrap_or(usize::MAX);
            let list = list.get(skip..).unwrap_or_default().to_vec();
            let base = cursor.offset;
            stream::iter(list.into_iter().zip(base + 1..).map(|(r, n)| Ok(counted(r, n)))).boxed()
        }
        RecipientSource::Synthetic(gen) => {
            let gen = gen.clone();
            stream::iter((cursor.offset.min(gen.count)..gen.count).map(move |n| Ok(counted(gen.recipient(n), n + 1))))
                .boxed()
        }
        RecipientSource::S3(object) => return open_object(objects, object, request, cursor).await,
    };
    Ok(Opened { items, etag: None })
}

fn counted(r: Recipient, n: u64) -> Read {
    Read { item: Item::Recipient(r), end: Position { offset: n, line: n } }
}

async fn open_object<O: Objects>(
    objects: &O,
    object: &ObjectSource,
    request: &FanoutRequest,
    cursor: &Cursor,
) -> Result<Opened, SourceError> {
    let start = Position { offset: cursor.offset, line: cursor.line };
    let columns = match object.format {
        ObjectFormat::Csv if start.offset > 0 => Some(read_header(objects, object, cursor.etag.as_deref()).await?),
        _ => None,
    };
    let body = objects.open(object, start.offset, cursor.etag.as_deref()).await?;
    let decoder = LineDecoder::new(object, request.channel, start, columns);
    let items = stream::unfold(Some((body.chunks, decoder)), |state| async move {
        let (mut chunks, mut decoder) = state?;
        let mut out = Vec::new();
        let (result, more) = match chunks.next().await {
            Some(Ok(bytes)) => (decoder.feed(&bytes, &mut out), true),
            Some(Err(e)) => (Err(e), false),
            None => (decoder.finish(&mut out), false),
        };
        let mut step: Vec<Result<Read, SourceError>> = out.into_iter().map(Ok).collect();
        let go_on = match result {
            Ok(()) => more,
            Err(e) => {
                step.push(Err(e));
                false
            }
        };
        Some((step, go_on.then_some((chunks, decoder))))
    })
    .flat_map(stream::iter)
    .boxed();
    Ok(Opened { items, etag: body.etag })
}

/// The columns of a CSV object, from its first line (a continuation starts further on).
async fn read_header<O: Objects>(
    objects: &O,
    object: &ObjectSource,
    etag: Option<&str>,
) -> Result<Columns, SourceError> {
    let mut body = objects.open(object, 0, etag).await?;
    let mut head = Vec::new();
    while let Some(chunk) = body.chunks.next().await {
        head.extend_from_slice(&chunk?);
        if let Some(end) = memchr::memchr(b'\n', &head) {
            head.truncate(end);
            break;
        }
        if head.len() > MAX_LINE_BYTES {
            break;
        }
    }
    Columns::from_header(object, &head[..head.len().min(MAX_LINE_BYTES)])
}
