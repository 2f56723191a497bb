#!/usr/bin/env bash
# Installs the tools the end-to-end tests need, pinned, into .tools/ (git-ignored):
#   - ministack: a local AWS emulator (SNS, SQS, Lambda running provided.al2023 bootstrap
#     binaries as local processes, CloudFormation);
#   - cargo-lambda (brings zig): builds the deployable Lambda zips and serves binaries under
#     the Lambda Invoke API (`cargo lambda watch`);
#   - cfn-lint: lints the synthesized CloudFormation template.
# Idempotent: a second run only checks the versions.
set -euo pipefail
cd "$(dirname "$0")/.."

MINISTACK_VERSION=1.5.33
CARGO_LAMBDA_VERSION=1.9.2
CFN_LINT_VERSION=1.58.0
VENV=.tools/venv

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
want="ministack==$MINISTACK_VERSION cargo-lambda==$CARGO_LAMBDA_VERSION cfn-lint==$CFN_LINT_VERSION"
have=$("$VENV/bin/python" -m pip freeze 2>/dev/null | grep -Ei '^(ministack|cargo-lambda|cfn-lint)==' | tr '\n' ' ' || true)
if [ "$(echo "$have" | tr 'A-Z' 'a-z' | xargs -n1 | sort | xargs)" != "$(echo "$want" | xargs -n1 | sort | xargs)" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $want
fi
# The Rust standard library for the Lambda architectures (rustup, from its own mirror).
for target in aarch64-unknown-linux-gnu x86_64-unknown-linux-gnu; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done
echo "tools: ministack $MINISTACK_VERSION, cargo-lambda $CARGO_LAMBDA_VERSION, cfn-lint $CFN_LINT_VERSION in $VENV"
