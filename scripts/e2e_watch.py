"""Step 3 of the emulator end to end: both binaries under `cargo lambda watch` (the Lambda
Invoke API on 127.0.0.1), invoked with the fixture events; responses checked.

Needs AWS_ENDPOINT_URL (the emulator) in the environment and cargo-lambda on PATH. The
SNS topic and SQS queues the binaries need are created in the emulator with botocore.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import botocore.session

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENDPOINT = os.environ["AWS_ENDPOINT_URL"]


def client(service):
    return botocore.session.get_session().create_client(
        service, endpoint_url=ENDPOINT, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def invoke(port, function, payload, timeout=300):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/2015-03-31/functions/{function}/invocations",
        data=payload.encode(), method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def fixture(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def main():
    sqs, sns = client("sqs"), client("sns")
    queue = sqs.create_queue(QueueName="watch-queue")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="watch-dlq")["QueueUrl"]
    topic = sns.create_topic(Name="watch-topic")["TopicArn"]
    port = free_port()
    env = {
        "FANOUT_TOPIC_ARN": topic, "FANOUT_QUEUE_URL": queue, "FANOUT_DEAD_LETTER_QUEUE_URL": dlq,
        "AWS_ENDPOINT_URL": ENDPOINT, "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
    }
    cmd = ["cargo", "lambda", "watch", "--ignore-changes", "-A", "127.0.0.1", "-P", str(port)]
    for k, v in env.items():
        cmd += ["--env-var", f"{k}={v}"]
    watch = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True,
                             stdout=(log := open(os.path.join(ROOT, "target/cargo-lambda-watch.log"), "w")), stderr=log)
    failures = []

    def expect(what, ok, detail):
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(f"{what}: {detail}")

    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        started = time.time()
        status, body = invoke(port, "producer", fixture("producer/tests/fixtures/direct_invoke.json"))
        print(f"  (first invoke, build included: {time.time() - started:.1f} s)")
        summary = json.loads(body) if status == 200 else {}
        expect("producer: direct invoke", summary.get("recipients") == 2 and summary.get("batches") == 1, body)
        status, body = invoke(port, "producer", fixture("producer/tests/fixtures/eventbridge_application_event.json"))
        summary = json.loads(body) if status == 200 else {}
        expect("producer: EventBridge application event", summary.get("recipients") == 2500, body)
        status, body = invoke(port, "producer", fixture("producer/tests/fixtures/scheduled_constant_input.json"))
        summary = json.loads(body) if status == 200 else {}
        expect("producer: schedule with constant input", summary.get("job_id") == "daily-digest" and summary.get("recipients") == 100, body)
        status, body = invoke(port, "producer", fixture("producer/tests/fixtures/scheduled_event_without_input.json"))
        expect("producer: scheduled event without input is refused",
               "InvalidRequest" in body and "carries no FanoutRequest" in body, f"{status} {body}")
        status, body = invoke(port, "worker", fixture("worker/tests/fixtures/sqs_event_raw_envelope_poison.json"))
        expect("worker: raw, SNS envelope and poison records", status == 200 and json.loads(body) == {"batchItemFailures": []}, f"{status} {body}")
        msgs = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
        expect("worker: the poison record is in the dead-letter queue",
               any('"kind":"poison"' in m["Body"] for m in msgs), msgs)
        status, body = invoke(port, "worker", '{"Records": "not a list"}')
        expect("worker: a malformed event is an error response, not a crash", status != 200 or "errorType" in body, f"{status} {body}")
        status, body = invoke(port, "worker", fixture("worker/tests/fixtures/sqs_event_raw_envelope_poison.json"))
        expect("worker: still serving after the malformed event", status == 200, f"{status} {body}")
    finally:
        os.killpg(watch.pid, signal.SIGTERM)
        try:
            watch.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(watch.pid, signal.SIGKILL)
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
