//! AWS service limits the pipeline lives within, each with the figure it comes from.
//!
//! They are named here once so the producer, the worker and the embedded engine cannot
//! disagree about what AWS accepts.

/// SNS `PublishBatch`: at most 10 entries per request (`TooManyEntriesInBatchRequest`).
pub const SNS_PUBLISH_BATCH_MAX_ENTRIES: usize = 10;

/// SNS: the default topic `MaximumMessageSize`, 256 KiB (262,144 bytes). It bounds one
/// message *and* the sum of all messages of one `PublishBatch` request (`BatchRequestTooLong`).
pub const SNS_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// SNS `PublishBatch`: the aggregate size of all entries of one request.
pub const SNS_PUBLISH_BATCH_MAX_BYTES: usize = SNS_MAX_MESSAGE_BYTES;

/// SNS `PublishBatch` entry ids: at most 80 characters (alphanumerics, `-`, `_`).
pub const SNS_BATCH_ENTRY_ID_MAX_CHARS: usize = 80;

/// SNS and SQS bill every 64 KiB chunk of a payload as one request, so the default batch
/// target is exactly one chunk.
pub const BILLING_CHUNK_BYTES: usize = 64 * 1024;

/// SQS: the maximum message size (raised from 256 KiB to 1 MiB in 2025).
pub const SQS_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// SQS `SendMessageBatch` / `DeleteMessageBatch` / `ReceiveMessage`: at most 10 entries.
pub const SQS_BATCH_MAX_ENTRIES: usize = 10;

/// SQS `SendMessageBatch`: the aggregate size of all entries of one request.
pub const SQS_SEND_BATCH_MAX_BYTES: usize = 1024 * 1024;

/// SQS: `DelaySeconds` ranges from 0 to 900 seconds (15 minutes).
pub const SQS_MAX_DELAY_SECONDS: u32 = 900;

/// SQS: a visibility timeout ranges from 0 seconds to 12 hours.
pub const SQS_MAX_VISIBILITY_TIMEOUT_SECONDS: u32 = 12 * 60 * 60;

/// SQS: `maxReceiveCount` of a redrive policy ranges from 1 to 1,000.
pub const SQS_MAX_RECEIVE_COUNT: u32 = 1_000;

/// SQS `ReceiveMessage`: long polling waits at most 20 seconds.
pub const SQS_MAX_WAIT_SECONDS: u32 = 20;

/// Lambda SQS event source mapping: a standard queue's batch size ranges from 1 to 10,000.
pub const ESM_MAX_BATCH_SIZE: usize = 10_000;

/// Lambda SQS event source mapping: a batch size above 10 needs a batching window of at
/// least one second.
pub const ESM_BATCH_SIZE_WITHOUT_WINDOW: usize = 10;

/// Lambda SQS event source mapping: the batching window ranges from 0 to 300 seconds.
pub const ESM_MAX_BATCHING_WINDOW_SECONDS: u32 = 300;

/// Lambda SQS event source mapping: maximum concurrency ranges from 2 to 1,000.
pub const ESM_MIN_MAXIMUM_CONCURRENCY: usize = 2;

/// Lambda SQS event source mapping: the upper bound of maximum concurrency.
pub const ESM_MAX_MAXIMUM_CONCURRENCY: usize = 1_000;

/// Lambda: a synchronous invocation payload (what an event source mapping sends) is at most
/// 6 MB; the mapping shrinks a batch to stay under it.
pub const LAMBDA_SYNC_PAYLOAD_MAX_BYTES: usize = 6 * 1024 * 1024;

/// Lambda: an asynchronous invocation payload is at most 1 MB (since 2025: 1 MiB).
pub const LAMBDA_ASYNC_PAYLOAD_MAX_BYTES: usize = 1024 * 1024;

/// Lambda: a function times out after at most 900 seconds.
pub const LAMBDA_MAX_TIMEOUT_SECONDS: u32 = 900;

/// fanout: the largest `payload` a request may carry. It is repeated in every batch, so it
/// must leave room for recipients inside one SNS message.
pub const PAYLOAD_MAX_BYTES: usize = 128 * 1024;

/// fanout: the longest recipient id, in bytes.
pub const RECIPIENT_ID_MAX_BYTES: usize = 256;

/// fanout: the longest recipient address, in bytes (a URL for webhooks).
pub const RECIPIENT_ADDRESS_MAX_BYTES: usize = 2048;

/// fanout: the default most recipients per batch; the byte target usually binds first.
pub const DEFAULT_MAX_RECIPIENTS_PER_BATCH: usize = 10_000;

/// fanout: the upper bound a request may set for recipients per batch.
pub const MAX_RECIPIENTS_PER_BATCH: usize = 10_000;
