#!/usr/bin/env bash
# The CDK template, deployed: synthesize infra/ for the emulator (x86_64 or arm64 zips of
# this machine), deploy it through the emulator's CloudFormation API with the zips uploaded
# where the template expects them, then run a 1,000-recipient webhook job with faults through
# the deployed stack. Proves the template wires what the binaries expect (environment names,
# event source, DLQ). Run after scripts/e2e-emulator.sh (its zips) and infra-check (npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-tools.sh >/dev/null
export PATH="$PWD/.tools/venv/bin:$PATH"
case "$(uname -m)" in aarch64) arch=arm64 ;; *) arch=x86_64 ;; esac
zips=target/lambda-$(uname -m)

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint=http://127.0.0.1:$port
log=target/ministack-deploy-$port.log
echo "== ministack on 127.0.0.1:$port (log $log)"
BIND_HOST=127.0.0.1 GATEWAY_PORT=$port SERVICES=sns,sqs,lambda,iam,sts,logs,s3,kms,events,cloudwatch,cloudformation \
  ministack > "$log" 2>&1 &
ministack_pid=$!
stop() {
  kill "$ministack_pid" 2>/dev/null || true
  wait "$ministack_pid" 2>/dev/null || true
}
trap stop EXIT
for _ in $(seq 1 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('$endpoint/_ministack/health', timeout=1)" 2>/dev/null && break
  sleep 0.2
done

echo "== cdk synth for the emulator"
out=target/cdk.out.emulator
rm -rf "$out"
(cd infra && env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_ENDPOINT_URL \
  npx cdk synth --quiet --output "../$out" -c zips="../$zips" -c architecture="$arch" -c synthesizer=emulator \
  -c stackName=FanoutE2E -c environment="{\"AWS_ENDPOINT_URL\":\"$endpoint\",\"FANOUT_RETRY_BASE_DELAY_MS\":\"1000\"}")

echo "== deploy through CloudFormation"
export AWS_ENDPOINT_URL=$endpoint AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
outputs=$(.tools/venv/bin/python scripts/deploy_emulator.py "$out" FanoutE2E)
echo "   outputs: $outputs"
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$outputs" "$1"; }

echo "== a job through the deployed stack"
cargo build --locked -p fanout-loadtest
target/debug/fanout-loadtest --target aws --channel webhook --recipients 1000 --fail-transient 0.05 --fail-permanent 0.01 \
  --producer-function "$(field ProducerFunctionName)" --queue-url "$(field QueueUrl)" \
  --dead-letter-queue-url "$(field DeadLetterQueueUrl)" --max-wall-secs 300 --json > target/e2e-deploy.json
python3 - target/e2e-deploy.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"  recipients {r['recipients']}, delivered {r['delivered']}, dead-lettered {r['dead_lettered']} "
      f"(expected permanent {r['expected_permanent']}), lost {r['lost']}, {r['wall_seconds']:.1f} s")
assert r["lost"] == 0 and r["dead_lettered"] == r["expected_permanent"]
PY
echo "e2e-deploy: passed"
