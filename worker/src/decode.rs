//! Reading a record body: a raw `RecipientBatch` (raw message delivery, the recommended
//! subscription setting) or one wrapped in the SNS notification envelope.

use fanout_common::RecipientBatch;
use serde::Deserialize;

#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: String,
}

/// Decodes a record body; the error says what is wrong with it (a poison message).
pub fn decode_body(body: &str) -> Result<RecipientBatch, String> {
    let raw_err = match RecipientBatch::from_json(body) {
        Ok(b) => return Ok(b),
        Err(e) => e,
    };
    match serde_json::from_str::<SnsEnvelope>(body) {
        Ok(env) if env.kind == "Notification" => {
            RecipientBatch::from_json(&env.message).map_err(|e| format!("sns envelope: Message: {e}"))
        }
        Ok(env) => Err(format!("sns envelope: Type {:?} is not a Notification", env.kind)),
        Err(_) => Err(raw_err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = r#"{"v":1,"job_id":"j","batch_id":"j-00000000","attempt":1,"channel":"noop","payload":null,"recipients":[{"id":"a","address":"x"}]}"#;

    #[test]
    fn raw_and_enveloped_bodies_decode_alike() {
        let env = serde_json::json!({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:eu-west-1:1:t", "Message": RAW}).to_string();
        assert_eq!(decode_body(RAW).unwrap().to_json(), decode_body(&env).unwrap().to_json());
    }

    #[test]
    fn poison_says_why() {
        assert!(decode_body("hello").unwrap_err().contains("expected value"));
        let e = decode_body(r#"{"Type":"SubscriptionConfirmation","Message":"x"}"#).unwrap_err();
        assert_eq!(e, "sns envelope: Type \"SubscriptionConfirmation\" is not a Notification");
        let e = decode_body(r#"{"Type":"Notification","Message":"{}"}"#).unwrap_err();
        assert!(e.starts_with("sns envelope: Message: missing field"), "{e}");
    }
}
