//! The wire format, pinned by fixtures. `recipient_batch_v1.json` is the v1 message body as
//! the producer writes it; if this test has to change, the change is a new version.

use fanout_common::{Channel, DeadCause, DeadLetter, DeadLetterRecord, FanoutRequest, RecipientBatch, RecipientSource};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn v1_batch_decodes_and_re_encodes_byte_for_byte() {
    let text = fixture("recipient_batch_v1.json");
    let text = text.trim_end();
    let batch = RecipientBatch::from_json(text).unwrap();
    assert_eq!(batch.job_id.as_str(), "daily-digest-2026-11-26");
    assert_eq!(batch.batch_id.as_str(), "daily-digest-2026-11-26-00000003");
    assert_eq!(batch.attempt, 2);
    assert_eq!(batch.channel, Channel::Webhook);
    assert_eq!(batch.payload.get(), r#"{"title":"Your digest","items":[1,2,3]}"#);
    assert_eq!(batch.recipients.len(), 2);
    assert_eq!(batch.recipients[1].address, "https://hooks.example.com/b");
    assert_eq!(batch.to_json(), text);
}

#[test]
fn other_versions_and_bad_fields_are_refused_with_the_field_named() {
    let text = fixture("recipient_batch_v1.json");
    let v2 = text.replacen("\"v\":1", "\"v\":2", 1);
    assert_eq!(RecipientBatch::from_json(&v2).unwrap_err().to_string(), "v: unsupported message version 2");
    let bad = text.replacen("\"channel\":\"webhook\"", "\"channel\":\"pigeon\"", 1);
    let e = RecipientBatch::from_json(&bad).unwrap_err().to_string();
    assert!(e.starts_with("channel: unknown variant `pigeon`"), "{e}");
    let bad = text.replacen("\"id\":\"u-2\"", "\"id\":2", 1);
    let e = RecipientBatch::from_json(&bad).unwrap_err().to_string();
    assert!(e.starts_with("recipients[1].id: invalid type: integer `2`"), "{e}");
    let zero = text.replacen("\"attempt\":2", "\"attempt\":0", 1);
    assert_eq!(RecipientBatch::from_json(&zero).unwrap_err().to_string(), "attempt: must be at least 1");
}

#[test]
fn requests_decode_and_validate() {
    let r = FanoutRequest::from_json(&fixture("fanout_request_inline.json")).unwrap();
    assert_eq!(r.job_id.as_ref().unwrap().as_str(), "welcome-42");
    assert_eq!(r.limits.max_recipients, 500);
    assert_eq!(r.limits.max_bytes, 65536, "unset limits keep their defaults");
    r.validate().unwrap();
    let s = FanoutRequest::from_json(&fixture("fanout_request_synthetic.json")).unwrap();
    assert!(s.job_id.is_none());
    assert_eq!(s.payload_json(), "null");
    match &s.recipients {
        RecipientSource::Synthetic(g) => assert_eq!((g.count, g.id_prefix.as_str()), (1_000_000, "r")),
        other => panic!("{other:?}"),
    }
    s.validate().unwrap();
}

#[test]
fn request_errors_name_the_field() {
    let base = fixture("fanout_request_inline.json");
    let cases = [
        (base.replace("https://hooks.example.com/2", "not a url"), "recipients.inline[1].address: not an absolute URL"),
        (
            base.replace("https://hooks.example.com/2", "ftp://x.example.com/"),
            "recipients.inline[1].address: scheme \"ftp\" is not http or https",
        ),
        (base.replace("\"acct-2\"", "\"acct-1\""), "recipients.inline[1].id: duplicate of recipients.inline[0].id"),
        (
            base.replace("\"max_recipients\": 500", "\"max_recipients\": 0"),
            "limits.max_recipients: must be 1 to 10000, got 0",
        ),
    ];
    for (text, want) in cases {
        let r = FanoutRequest::from_json(&text).unwrap();
        let e = r.validate().unwrap_err().to_string();
        assert!(e.starts_with(want), "{e:?} should start with {want:?}");
    }
    let e = FanoutRequest::from_json(&base.replace("\"channel\"", "\"chanel\"")).unwrap_err().to_string();
    assert!(e.contains("unknown field `chanel`"), "{e}");
    let e = FanoutRequest::from_json(&base.replace("\"welcome-42\"", "\"welcome 42\"")).unwrap_err().to_string();
    assert!(e.starts_with("job_id: ' ' is not allowed"), "{e}");
    let big = format!(
        r#"{{"channel":"log","payload":"{}","recipients":{{"inline":[{{"id":"a","address":"b"}}]}}}}"#,
        "x".repeat(200_000)
    );
    let e = FanoutRequest::from_json(&big).unwrap().validate().unwrap_err().to_string();
    assert!(e.starts_with("payload: 200002 bytes is over the 131072 byte limit"), "{e}");
}

#[test]
fn dead_letter_record_v1_round_trips() {
    let text = fixture("dead_letter_recipients_v1.json");
    let rec = DeadLetterRecord::from_json(text.trim_end()).unwrap();
    match &rec.record {
        DeadLetter::Recipients { recipients, .. } => {
            assert_eq!(recipients[0].cause, DeadCause::Permanent);
            assert_eq!(recipients[0].recipient.id.as_str(), "acct-2");
        }
        other => panic!("{other:?}"),
    }
    let again = DeadLetterRecord::from_json(&rec.to_json()).unwrap();
    assert_eq!(again.to_json(), rec.to_json());
    let poison = DeadLetterRecord::poison("m-1", "not json".into(), &"é".repeat(20_000));
    match DeadLetterRecord::from_json(&poison.to_json()).unwrap().record {
        DeadLetter::Poison { body, .. } => assert!(body.len() <= 16 * 1024 && body.chars().all(|c| c == 'é')),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dead_letter_records_are_split_to_stay_inside_an_sqs_message() {
    use fanout_common::{DeadRecipient, Recipient};
    let batch = RecipientBatch::from_json(fixture("recipient_batch_v1.json").trim_end()).unwrap();
    let dead: Vec<DeadRecipient> = (0..3000)
        .map(|i| {
            let r = Recipient::new(format!("user-{i}"), format!("https://hooks.example.com/{}", "x".repeat(400)));
            DeadRecipient {
                idempotency_key: r.key(&batch.job_id),
                recipient: r,
                cause: DeadCause::Permanent,
                reason: "http 410".into(),
                attempt: 1,
            }
        })
        .collect();
    let records = DeadLetterRecord::recipients(&batch, dead);
    assert!(records.len() >= 3, "about 1.4 MB of recipients: {} records", records.len());
    let mut total = 0;
    for r in &records {
        assert!(r.to_json().len() < 1024 * 1024, "inside the SQS message limit");
        if let DeadLetter::Recipients { recipients, batch_id, .. } = &r.record {
            assert_eq!(batch_id, &batch.batch_id);
            total += recipients.len();
        }
    }
    assert_eq!(total, 3000, "no one left out");
}

#[test]
fn an_s3_source_decodes_with_defaults_and_bad_ones_name_the_field() {
    let r = FanoutRequest::from_json(
        r#"{"channel":"noop","recipients":{"s3":{"bucket":"people","key":"2026/list.csv","format":"csv"}}}"#,
    )
    .unwrap();
    let fanout_common::RecipientSource::S3(o) = &r.recipients else { panic!() };
    assert_eq!(
        (o.id_field.as_str(), o.address_field.as_str(), o.url()),
        ("id", "address", "s3://people/2026/list.csv".into())
    );
    r.validate().unwrap();

    let bad = FanoutRequest::from_json(
        r#"{"channel":"noop","recipients":{"s3":{"bucket":"people","key":"k","format":"jsonl","id_field":"x","address_field":"x"}}}"#,
    )
    .unwrap();
    assert_eq!(bad.validate().unwrap_err().to_string(), "recipients.s3.address_field: must differ from id_field");
    let e = FanoutRequest::from_json(
        r#"{"channel":"noop","recipients":{"s3":{"bucket":"people","key":"k","format":"xml"}}}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("recipients.s3.format"), "{e}");
}
