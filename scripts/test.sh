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
cargo test --workspace --locked
echo "== end to end on a local AWS emulator"
bash scripts/e2e-emulator.sh
echo "== infrastructure (CDK) checks, offline"
case "$(uname -m)" in aarch64) infra_arch=arm64 ;; *) infra_arch=x86_64 ;; esac
ZIPS="target/lambda-$(uname -m)" ARCH="$infra_arch" bash scripts/infra-check.sh
echo "== the CDK template deployed to the emulator, a job through it"
bash scripts/e2e-deploy.sh
