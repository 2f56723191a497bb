#!/usr/bin/env bash
# End to end on a local AWS emulator (ministack), through the real AWS SDK and the real
# `bootstrap` binaries built by cargo lambda:
#   1. producer and worker as Lambda functions, the worker behind the emulator's SQS event
#      source mapping with ReportBatchItemFailures;
#   2. the same job with the worker in consumer mode instead of the event source mapping;
#   3. both binaries under `cargo lambda watch`, invoked with the fixture events (the three
#      producer triggers; an SQS event with raw, SNS-envelope and poison records);
#   4. recipients read from an S3 object with malformed lines, the producer limited to 5 ms
#      per invocation so the job goes on by its own asynchronous self-invocation many times:
#      every recipient delivered exactly once, every malformed line dead-lettered;
#   5. the producer alone on 1,000,000 recipients from S3 (its figures and peak memory).
# Runs 1 and 2 are 10,000-recipient webhook jobs with transient and permanent faults injected
# at the sink; they must lose no one and dead-letter exactly the permanent failures.
# The emulator listens on 127.0.0.1 on a free port and is stopped by its process id.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-tools.sh
export PATH="$PWD/.tools/venv/bin:$PATH"

# The emulator runs bootstrap binaries as local processes: build them for this machine.
arch=$(uname -m)
case "$arch" in
  x86_64) lambda_arch=--x86-64; triple=x86_64-unknown-linux-gnu ;;
  aarch64) lambda_arch=--arm64; triple=aarch64-unknown-linux-gnu ;;
  *) echo "e2e: unsupported machine $arch" >&2; exit 2 ;;
esac
zips=target/lambda-$arch
echo "== cargo lambda build --release $lambda_arch (zips in $zips)"
cargo lambda build --release "$lambda_arch" --output-format zip --bin producer --bin worker --lambda-dir "$zips"
worker_bin=target/$triple/release/worker
cargo build --locked -p fanout-loadtest
loadtest=target/debug/fanout-loadtest

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=target/ministack-$port.log
echo "== ministack on 127.0.0.1:$port (log $log)"
BIND_HOST=127.0.0.1 GATEWAY_PORT=$port SERVICES=sns,sqs,lambda,iam,sts,logs,s3 \
  ministack > "$log" 2>&1 &
ministack_pid=$!
stop() {
  kill "$ministack_pid" 2>/dev/null || true
  wait "$ministack_pid" 2>/dev/null || true
  # Function processes started by the emulator end with it; make sure none is left.
  pkill -f "ministack-provided-code-$port" 2>/dev/null || true
}
trap stop EXIT
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/_ministack/health', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.2
done

export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
# The consumer process inherits this: warnings and errors only, to keep the output readable.
export AWS_LAMBDA_LOG_LEVEL=warn
check() {
  python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"  {sys.argv[1]}: recipients {r['recipients']}, delivered {r['delivered']}, dead-lettered {r['dead_lettered']} "
      f"(expected permanent {r['expected_permanent']}), lost {r['lost']}, retries {r['retries']}, "
      f"duplicates {r['duplicates']}, {r['wall_seconds']:.1f} s")
assert r["lost"] == 0, "recipients lost"
assert r["delivered"] + r["dead_lettered"] == r["recipients"]
assert r["dead_lettered"] == r["expected_permanent"] == r["dead_letter_causes"]["permanent"], "dead letters != permanent failures"
assert r["retries"] > 0, "no retries observed"
PY
}
job=(--target aws --provision-emulator --zips "$zips" --channel webhook --recipients 10000
     --fail-transient 0.05 --fail-permanent 0.01 --max-concurrency 4 --max-wall-secs 600 --json)

echo "== 1. event source mapping"
start=$(date +%s)
"$loadtest" "${job[@]}" > target/e2e-esm.json
check target/e2e-esm.json
echo "   $(( $(date +%s) - start )) s"

echo "== 2. consumer mode"
start=$(date +%s)
"$loadtest" "${job[@]}" --consumer-bin "$worker_bin" > target/e2e-consumer.json
check target/e2e-consumer.json
echo "   $(( $(date +%s) - start )) s"
echo "== 3. cargo lambda watch with fixture events"
.tools/venv/bin/python scripts/e2e_watch.py

echo "== 4. recipients from S3, the producer continuing itself (5 ms per invocation)"
start=$(date +%s)
"$loadtest" --target aws --provision-emulator --zips "$zips" --channel webhook --recipients 10000 \
  --source jsonl --malformed-lines 20 --batch-recipients 20 --producer-invocation-ms 5 \
  --max-concurrency 4 --max-wall-secs 600 --json > target/e2e-s3.json
.tools/venv/bin/python - target/e2e-s3.json <<'PY'
import json, os, sys, botocore.session
r = json.load(open(sys.argv[1]))
logs = botocore.session.get_session().create_client(
    "logs", region_name=os.environ["AWS_REGION"], endpoint_url=os.environ["AWS_ENDPOINT_URL"])
starts, token = 0, None
while True:
    kw = {"logGroupName": f"/aws/lambda/{r['producer_function']}", "filterPattern": "START"}
    if token:
        kw["nextToken"] = token
    page = logs.filter_log_events(**kw)
    starts += sum(1 for e in page["events"] if e["message"].startswith("START"))
    token = page.get("nextToken")
    if not token:
        break
print(f"  {sys.argv[1]}: {r['source']}: delivered {r['delivered']} of {r['recipients']}, lost {r['lost']}, "
      f"duplicates {r['duplicates']}, rejected lines {r['rejected_lines']}, producer invocations {starts} "
      f"(self-invoked {r['producer_self_invoked']}), {r['wall_seconds']:.1f} s")
assert r["source"].startswith("s3://"), r["source"]
assert (r["delivered"], r["lost"], r["duplicates"]) == (r["recipients"], 0, 0), "not exactly once"
assert r["rejected_lines"] == 20, "malformed lines not dead-lettered"
assert r["producer_self_invoked"] and starts >= 5, f"the job did not go on by self-invocation ({starts} invocations)"
PY
echo "   $(( $(date +%s) - start )) s"

echo "== 5. the producer alone: 1,000,000 recipients from S3"
python3 scripts/peak_rss.py 'AWS_LAMBDA_FUNCTION_NAME=fanout-[0-9a-f]{8}-producer\x00' > target/e2e-producer-rss.txt &
sampler=$!
"$loadtest" --target aws --provision-emulator --zips "$zips" --producer-only --channel webhook \
  --recipients 1000000 --source jsonl --malformed-lines 100 --max-wall-secs 900 --json > target/e2e-producer.json
kill -TERM "$sampler"; wait "$sampler" || true
python3 - target/e2e-producer.json target/e2e-producer-rss.txt <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rss = dict(zip(*[iter(open(sys.argv[2]).read().split())] * 2))
print(f"  {sys.argv[1]}: published {r['delivered']} of {r['recipients']}, lost {r['lost']}, duplicates {r['duplicates']}, "
      f"rejected lines {r['rejected_lines']}, {r['recipients_per_sec']:.0f} recipients/s over {r['wall_seconds']:.1f} s, "
      f"batches {r['batches']}, producer peak RSS {int(rss['peak_rss_kib']) / 1024:.1f} MiB over {rss['processes']} process(es)")
assert (r["delivered"], r["lost"], r["duplicates"], r["rejected_lines"]) == (r["recipients"], 0, 0, 100)
PY
echo "e2e: passed"
