//! Recipients streamed from an object (files standing in for S3, as in the embedded
//! engine): rejected lines, missing objects, and jobs split over many invocations.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use fanout_common::{DeadLetter, FanoutRequest, MemoryDeadLetters, RecipientBatch};
use fanout_producer::{Error, FileObjects, MemoryPublisher, Producer, ProducerConfig, SourceError, Summary};

/// A fresh folder of objects for one test, with `bucket/key` holding `text`.
fn objects(test: &str, key: &str, text: &str) -> (FileObjects, PathBuf) {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("objects").join(test);
    let _ = std::fs::remove_dir_all(&root);
    let path = root.join("bucket").join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    (FileObjects::new(&root), path)
}

fn request(key: &str, format: &str, max_recipients: usize) -> FanoutRequest {
    FanoutRequest::from_json(&format!(
        r#"{{"job_id":"obj","channel":"webhook","payload":{{"msg":"hi"}},"limits":{{"max_recipients":{max_recipients}}},
            "recipients":{{"s3":{{"bucket":"bucket","key":"{key}","format":"{format}","address_field":"url"}}}}}}"#
    ))
    .unwrap()
}

/// `n` recipients as JSON Lines, with a malformed line after every 700th.
fn jsonl(n: u64) -> (String, Vec<u64>) {
    let (mut text, mut bad, mut line) = (String::new(), Vec::new(), 0);
    for i in 0..n {
        line += 1;
        text.push_str(&format!("{{\"id\":\"r{i}\",\"url\":\"https://hooks.example.com/{i}\"}}\n"));
        if i % 700 == 699 {
            line += 1;
            bad.push(line);
            text.push_str("{\"id\":\"oops\"\n");
        }
    }
    (text, bad)
}

fn producer(
    objects: FileObjects,
    max_invocation: Option<Duration>,
) -> Producer<MemoryPublisher, MemoryDeadLetters, FileObjects> {
    let config = ProducerConfig { max_invocation, ..ProducerConfig::default() };
    Producer::new(MemoryPublisher::default(), MemoryDeadLetters::default(), config).with_objects(objects)
}

/// Runs the job to the end, continuation after continuation, as the self-invocation does.
async fn run_to_end<O: fanout_producer::Objects>(
    p: &Producer<MemoryPublisher, MemoryDeadLetters, O>,
    request: FanoutRequest,
) -> Vec<Summary> {
    let mut summaries = Vec::new();
    let mut next = Some(request);
    while let Some(req) = next.take() {
        let s = p.handle(req, None).await.unwrap();
        next = s.continuation.clone();
        summaries.push(s);
    }
    summaries
}

fn published(p: &MemoryPublisher) -> BTreeMap<String, String> {
    p.published().into_iter().map(|e| (e.id, e.body)).collect()
}

fn rejected_lines(d: &MemoryDeadLetters) -> Vec<u64> {
    d.records()
        .iter()
        .flat_map(|r| match &r.record {
            DeadLetter::Rejected { source, lines, job_id } => {
                assert_eq!((source.as_str(), job_id.as_str()), ("s3://bucket/people.jsonl", "obj"));
                lines.iter().map(|l| l.line).collect::<Vec<_>>()
            }
            other => panic!("unexpected record {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn a_json_lines_object_is_published_and_its_bad_lines_dead_lettered_by_number() {
    let (text, bad) = jsonl(5_000);
    let (store, _) = objects("jsonl", "people.jsonl", &text);
    let p = producer(store, None);
    let s = p.handle(request("people.jsonl", "jsonl", 10_000), None).await.unwrap();
    assert_eq!((s.recipients, s.rejected_lines, s.continuation.is_none()), (5_000, 7, true));
    let ids: BTreeSet<String> = p
        .publisher()
        .published()
        .iter()
        .flat_map(|e| RecipientBatch::from_json(&e.body).unwrap().recipients)
        .map(|r| r.id.0)
        .collect();
    assert_eq!(ids, (0..5_000).map(|i| format!("r{i}")).collect());
    assert_eq!(rejected_lines(p.dead_letters()), bad);
}

#[tokio::test]
async fn a_missing_object_is_a_clear_error_before_anything_is_published() {
    let (store, _) = objects("missing", "other.jsonl", "");
    let p = producer(store, None);
    let e = p.handle(request("people.jsonl", "jsonl", 100), None).await.unwrap_err();
    assert!(matches!(&e, Error::Source(SourceError::NotFound(_))), "{e:?}");
    assert_eq!(e.to_string(), "recipient source: s3://bucket/people.jsonl: no such object");
    assert!(p.publisher().published().is_empty());

    let (store, _) = objects("no-columns", "people.csv", "id,email\nu1,https://x.example\n");
    let e = producer(store, None).handle(request("people.csv", "csv", 100), None).await.unwrap_err();
    assert!(e.to_string().contains("the header row has no column \"url\""), "{e}");
}

#[tokio::test]
async fn a_job_split_over_many_invocations_publishes_what_one_invocation_would() {
    let (text, bad) = jsonl(10_000);
    let (store, _) = objects("split", "people.jsonl", &text);

    let whole = producer(store.clone(), None);
    let one = run_to_end(&whole, request("people.jsonl", "jsonl", 100)).await;
    assert_eq!(one.len(), 1);

    let split = producer(store, Some(Duration::from_millis(1)));
    let many = run_to_end(&split, request("people.jsonl", "jsonl", 100)).await;
    assert!(many.len() > 5, "only {} invocations", many.len());
    assert!(many.iter().all(|s| s.batches > 0), "every invocation publishes");
    assert_eq!(published(split.publisher()), published(whole.publisher()), "same batch ids, same bodies");
    assert_eq!(split.publisher().published().len(), whole.publisher().published().len(), "no batch twice");
    assert_eq!(many.iter().map(|s| s.recipients).sum::<u64>(), 10_000);
    assert_eq!(rejected_lines(split.dead_letters()), bad, "each rejected line once");
}

#[tokio::test]
async fn a_csv_job_resumed_mid_object_reads_the_header_again() {
    let mut text = String::from("url,id\n");
    for i in 0..2_000 {
        text.push_str(&format!("https://hooks.example.com/{i},r{i}\n"));
    }
    let (store, _) = objects("csv", "people.csv", &text);
    let whole = producer(store.clone(), None);
    run_to_end(&whole, request("people.csv", "csv", 20)).await;
    let split = producer(store, Some(Duration::from_millis(1)));
    let many = run_to_end(&split, request("people.csv", "csv", 20)).await;
    assert!(many.len() > 3, "only {} invocations", many.len());
    assert_eq!(published(split.publisher()), published(whole.publisher()));
}

#[tokio::test]
async fn a_continuation_refuses_an_object_that_changed() {
    let (text, _) = jsonl(3_000);
    let (store, path) = objects("changed", "people.jsonl", &text);
    let p = producer(store, Some(Duration::from_millis(1)));
    let first = p.handle(request("people.jsonl", "jsonl", 10), None).await.unwrap();
    let next = first.continuation.expect("a 1 ms invocation does not finish 300 batches");
    assert!(next.resume.as_ref().unwrap().etag.is_some());
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&path, format!("{text}{{\"id\":\"late\",\"url\":\"https://x.example\"}}\n")).unwrap();
    let e = p.handle(next, None).await.unwrap_err();
    assert!(matches!(e, Error::Source(SourceError::Changed(..))), "{e:?}");
}
