#!/usr/bin/env bash
# Install (when missing) what the buyer-side tests need: Debian's chromium, which
# bench/browser drives headless through chromedp; a CJK font (fonts-wqy-zenhei), so that
# WeChat's Chinese messages are readable in the screenshots; and Node.js (Debian's nodejs),
# which runs examples/miniprogram/test with its built-in test runner. See README.md here.
#
#   browser.sh install   apt-get update + install of whatever is missing; a no-op otherwise
#   browser.sh status    one line: the Chromium and Node versions (exit 0), or what is missing (exit 1)
#   browser.sh path      the Chromium binary, for WXPAYD_CHROMIUM
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
LOG_PREFIX=browser

CJK_FONT=/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc

chromium_bin() {
  local n
  for n in chromium chromium-browser; do
    command -v "$n" 2>/dev/null && return 0
  done
  return 1
}

missing() {
  local m=()
  chromium_bin >/dev/null || m+=(chromium)
  [[ -e $CJK_FONT ]] || m+=(fonts-wqy-zenhei)
  command -v node >/dev/null 2>&1 || m+=(nodejs)
  printf '%s\n' "${m[@]}"
}

do_install() {
  local pkgs
  mapfile -t pkgs < <(missing)
  if [[ ${#pkgs[@]} -eq 0 || -z ${pkgs[0]} ]]; then
    log "already installed: $(status_line)"
    return 0
  fi
  apt_install "${pkgs[@]}"
  [[ -z "$(missing)" ]] || die "apt-get succeeded but still missing: $(missing | tr '\n' ' ')"
  log "installed ${pkgs[*]}: $(status_line)"
}

status_line() {
  # Debian's /usr/bin/chromium wrapper prints a harmless shell warning on some machines.
  printf '%s; node %s' "$("$(chromium_bin)" --version 2>/dev/null)" "$(node --version)"
}

install() {
  mkdir -p "$WXPAYD_SERVICES_DIR/browser"
  with_lock "$WXPAYD_SERVICES_DIR/browser" do_install
}

status() {
  if [[ -n "$(missing)" ]]; then
    echo "missing: $(missing | tr '\n' ' ')"
    return 1
  fi
  status_line
  echo
}

case "${1:-}" in
  install) install ;;
  status) status ;;
  path) chromium_bin || die "Chromium is not installed: bash $0 install" ;;
  *) usage ;;
esac
