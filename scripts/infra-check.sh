#!/usr/bin/env bash
# Offline checks of the CDK app in infra/: the locked npm install, the type check, the
# assertion tests, `cdk synth` with no AWS credentials (cdk-nag's AwsSolutions checks run
# during synthesis and fail it on any unacknowledged finding), and cfn-lint on the template.
# ZIPS (default target/lambda) and ARCH (default arm64) name the cargo lambda zips to package.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-tools.sh >/dev/null
zips=${ZIPS:-target/lambda}
arch=${ARCH:-arm64}
for bin in producer worker; do
  [ -f "$zips/$bin/bootstrap.zip" ] || { echo "infra-check: $zips/$bin/bootstrap.zip is missing (cargo lambda build first)" >&2; exit 2; }
done

cd infra
echo "== npm ci"
npm ci --no-audit --no-fund --loglevel=error
echo "== typecheck"
npx tsc --noEmit
echo "== assertion tests"
npx tsx --test test/*.test.ts
echo "== cdk synth (no AWS credentials) with cdk-nag AwsSolutions checks"
rm -rf cdk.out
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_ENDPOINT_URL \
  npx cdk synth --quiet -c zips="../$zips" -c architecture="$arch"
python3 - <<'PY'
import json
report = json.load(open("cdk.out/validation-report.json"))
for plugin in report["pluginReports"]:
    open_findings = len(plugin["violations"])
    acknowledged = len(plugin.get("suppressedViolations", []))
    print(f"  {plugin['pluginName']}: {plugin['conclusion']}, {open_findings} open, {acknowledged} acknowledged with reasons")
    assert open_findings == 0 and plugin["conclusion"] == "success"
    assert all(v.get("reason") for v in plugin.get("suppressedViolations", [])), "every acknowledgement has a reason"
PY
echo "== cfn-lint"
set +e
../.tools/venv/bin/cfn-lint cdk.out/*.template.json
rc=$?
set -e
# cfn-lint's exit code is a bit mask: 2 errors, 4 warnings, 8 informational. Errors fail.
if [ $((rc & 2)) -ne 0 ] || [ $rc -eq 1 ]; then
  echo "infra-check: cfn-lint found errors" >&2
  exit 1
fi
echo "infra-check: passed"
