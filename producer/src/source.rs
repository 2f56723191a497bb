//! Recipient sources as streams: the producer reads recipients one at a time and never
//! holds a whole set.

use fanout_common::{Recipient, RecipientSource};
use futures::stream::{self, BoxStream, StreamExt};

/// The recipients of `source`, skipping the first `offset` (a continuation's cursor).
pub fn recipients(source: &RecipientSource, offset: u64) -> BoxStream<'static, Recipient> {
    match source {
        RecipientSource::Inline(list) => {
            let skip = usize::try_from(offset).unwrap_or(usize::MAX);
            stream::iter(list.clone().into_iter().skip(skip)).boxed()
        }
        RecipientSource::Synthetic(gen) => {
            let gen = gen.clone();
            stream::iter((offset.min(gen.count)..gen.count).map(move |n| gen.recipient(n))).boxed()
        }
    }
}
