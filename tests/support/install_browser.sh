#!/usr/bin/env bash
# Headless Chromium for the console's browser tests (tests/gateway/test_console_browser.py),
# from Debian's archive, installed only when missing. Playwright (a dev extra in
# pyproject.toml) drives it through `executable_path`: Playwright's own browser download
# needs a network these machines do not have. Run by `make test`; safe to run again.
set -euo pipefail
if command -v chromium >/dev/null; then
    exit 0
fi
echo "install-browser: chromium (Debian package)"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || {
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
}
chromium --version
