#!/usr/bin/env bash
# The project's test command: everything the tests need is installed from here, then
# formatting, lints and every test of the workspace run. CI (.ci/run) calls this script.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Rust toolchain is the machine's (rustup, with rustfmt and clippy); crates come from
# crates.io at the versions pinned in Cargo.lock.
for tool in cargo rustfmt cargo-clippy; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is missing: install the Rust toolchain with rustup" >&2; exit 2; }
done

echo "== format"
cargo fmt --all -- --check
echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
mkdir -p target
cargo test --workspace --locked 2>&1 | tee target/test-output.log
echo "== end to end on a local AWS emulator"
bash scripts/e2e-emulator.sh
echo "== infrastructure (CDK) checks, offline"
case "$(uname -m)" in aarch64) infra_arch=arm64 ;; *) infra_arch=x86_64 ;; esac
ZIPS="target/lambda-$(uname -m)" ARCH="$infra_arch" bash scripts/infra-check.sh 2>&1 | tee target/infra-output.log
echo "== the CDK template deployed to the emulator, a job through it"
bash scripts/e2e-deploy.sh

# One closing line for all of it: the Rust tests and the CDK assertion tests (the end-to-end
# scripts fail the run themselves on any broken expectation).
read -r passed failed < <(
  { grep -hE '^test result:' target/test-output.log | awk '{p += $4; f += $6} END {print p + 0, f + 0}'
    grep -hE '^# (pass|fail) ' target/infra-output.log | awk '$2 == "pass" {p += $3} $2 == "fail" {f += $3} END {print p + 0, f + 0}'
  } | awk '{p += $1; f += $2} END {print p, f}')
echo "summary: $passed passed, $failed failed"
