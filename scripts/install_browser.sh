#!/bin/sh
# Headless Chromium for the real-browser test (tests/test_ui_browser.py), driven by Python playwright.
# playwright cannot download its own browser here, so Debian's `chromium` package is used; it is
# installed only when /usr/bin/chromium is missing (CI runs as root on Debian, with apt access).
set -e
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "layerlab: error: /usr/bin/chromium is missing and apt-get is not available; install Chromium so that /usr/bin/chromium exists (the browser test needs it)." >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
