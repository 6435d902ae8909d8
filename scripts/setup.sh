#!/usr/bin/env bash
# Installs everything the codebase needs on a fresh Debian/Ubuntu machine:
# the headless OpenGL libraries MuJoCo renders with (and, with --test, the
# chromium the page tests drive), then the pinned Python
# packages (torch first, pinned, so no other package pulls a CUDA build).
# Usage: bash scripts/setup.sh [--test]   (--test also installs the test tools)
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

# g++: torch.compile builds its CPU kernels with it (fast.compile_behavior is on by default on CPU).
system_packages=(libegl1 libgl1-mesa-dri libopengl0 libosmesa6 g++)
# The tests drive the dream page (python -m dreamer.dream) in a real headless browser.
[ -n "$extras" ] && system_packages+=(chromium chromium-driver)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${system_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing system packages (headless rendering; for --test, a headless browser): ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

python=${PYTHON:-python3}
echo "[setup] installing Python packages with $($python --version)"
$python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
$python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
echo "[setup] done"
