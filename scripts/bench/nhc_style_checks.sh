#!/usr/bin/env bash
# The quick tier's checks written the way NHC writes them (bash, one function per
# check, as in mej/nhc's check_hw_*, check_fs_mount, check_file_test), as the baseline
# for scripts/bench/hook_latency. NHC itself is not packaged for Debian 12.
# Usage: nhc_style_checks.sh VERDICT_FILE DEVICE_GLOB EXPECTED MUNGE_SOCKET [MOUNT...]
set -u
verdict=$1 devglob=$2 expected=$3 munge=$4; shift 4
fail() { echo "ERROR: $*"; exit 1; }

check_verdict() {
  [ -f "$verdict" ] || return 0
  local age=$(( $(date +%s) - $(stat -c %Y "$verdict") ))
  [ "$age" -le 120 ] || return 0
  grep -q '"status": "fail"' "$verdict" && fail "agent verdict: fail"
  return 0
}
check_gpu_devices() {
  local n; n=$(compgen -G "$devglob" | wc -l)
  [ "$n" -ge "$expected" ] || fail "$n of $expected GPU device files present"
}
check_fs_mount() {
  local m
  for m in "$@"; do
    timeout 1 stat "$m" >/dev/null 2>&1 || fail "mount $m did not answer"
    mountpoint -q "$m" || fail "mount $m missing"
  done
}
check_file_test() { [ -z "$munge" ] || [ -S "$munge" ] || fail "munge socket $munge missing"; }

check_verdict
check_gpu_devices
check_fs_mount "$@"
check_file_test
echo ok
