#!/usr/bin/env bash
# Installs Debian's headless browser and its WebDriver for the review-page browser test
# (tests/e2e/test_review_browser.py): `chromium` and `chromium-driver` from apt, nothing else.
# Selenium is pointed at /usr/bin/chromedriver and /usr/bin/chromium, so selenium-manager
# never downloads a browser. Idempotent: does nothing when both are installed.
set -euo pipefail
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "browser.sh: no apt-get here; install chromium and chromedriver by hand (the browser test skips without them)" >&2
  exit 0
fi
sudo=""
[[ "$(id -u)" == 0 ]] || sudo="sudo"
echo "==> installing chromium and chromium-driver (Debian packages) for the browser test"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "==> chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}') ready"
