#!/usr/bin/env bash
# What versions cost on FTP: the 1 % changed run of the mixed tree (bench/ftp.sh's up-1pct) with
# `versions:` on against the same run without, interleaved, on loopback vsftpd and proftpd.
#
#   bench/ftp-versions.sh [-n N] [--servers LIST] [--kept K]
#
#   -n N            repetitions (default 20): each changes 1 % of the files (the same ones in both
#                   copies) and runs both definitions, their order alternating
#   --servers LIST  of vsftpd,proftpd (default both)
#   --kept K        run folders put in the versions folder before the first repetition (default
#                   0; 30 measures pruning beside a versions folder that already keeps much): each
#                   holds 1 % of the tree's files at their paths, as a run's would
#
# Prints each run's wall time, then per server the medians and their ratio (on / off).
# Root only (the servers run as root). Environment: PLUGSYNC (default: the release build in
# .build-bench), BENCH_DIR (default bench/data), BENCH_SEED, PLUGSYNC_FTP_PORT_BASE and
# PLUGSYNC_FTP_STATE (the test servers' ports and state; default 2127, /tmp/plugsync-bench-ftp).
set -euo pipefail
export LC_ALL=C

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
FIX=$REPO/Tests/Fixtures/ftp-servers
GEN="python3 $BENCH/gentree.py"
die() { echo "bench: $*" >&2; exit 2; }

reps=20; servers=vsftpd,proftpd; kept=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n) reps=$2; shift 2 ;;
    --servers) servers=$2; shift 2 ;;
    --kept) kept=$2; shift 2 ;;
    *) die "unknown argument: $1" ;;
  esac
done
[ "$(id -u)" -eq 0 ] || die "needs root (the FTP servers run as root)"
PLUGSYNC=${PLUGSYNC:-$REPO/.build-bench/release/plugsync}
[ -x "$PLUGSYNC" ] || die "no plugsync at $PLUGSYNC"
export PLUGSYNC_FTP_PORT_BASE=${PLUGSYNC_FTP_PORT_BASE:-2127}
export PLUGSYNC_FTP_STATE=${PLUGSYNC_FTP_STATE:-/tmp/plugsync-bench-ftp}
BENCH_DIR=${BENCH_DIR:-$BENCH/data}
SEED=${BENCH_SEED:-20240601}
mkdir -p "$BENCH_DIR"
key="tree-mixed-2000f-40d-big20-s${SEED}"
stamp_text="gen=1 --files 2000 --folders 40 --depth 4 --min-size 1024 --max-size 16384 --seed $SEED --big 20"
if [ "$(cat "$BENCH_DIR/$key.stamp" 2>/dev/null)" != "$stamp_text" ]; then
  rm -rf "${BENCH_DIR:?}/$key"
  $GEN gen "$BENCH_DIR/$key" --files 2000 --folders 40 --depth 4 --min-size 1024 --max-size 16384 --seed "$SEED" --big 20
  echo "$stamp_text" >"$BENCH_DIR/$key.stamp"
fi
pristine=$BENCH_DIR/$key
RUN=$BENCH_DIR/versions-run
rm -rf "$RUN"; mkdir -p "$RUN"
IFS=, read -r -a SERVERS <<<"$servers"
trap 'for s in "${SERVERS[@]}"; do "$FIX" stop "$s" >/dev/null 2>&1 || true; done' EXIT

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for server in "${SERVERS[@]}"; do
  info=$("$FIX" start "$server" "$RUN/root-$server") || die "could not start $server"
  field() { echo "$info" | sed -n "s/^$1=//p"; }
  PORT=$(field PORT); FTP_USER=$(field USER); PASSWORD=$(field PASSWORD); ROOT=$(field ROOT)
  cat >"$RUN/plugsync.yaml" <<EOF
definitions:
  - name: off
    type: mirror
    source: { local: $RUN/src-off }
    destination:
      ftp: { server: 127.0.0.1:$PORT, username: $FTP_USER, password_env: PLUGSYNC_BENCH_PW, directory: up-off }
    parallel: 4
  - name: on
    type: mirror
    source: { local: $RUN/src-on }
    destination:
      ftp: { server: 127.0.0.1:$PORT, username: $FTP_USER, password_env: PLUGSYNC_BENCH_PW, directory: up-on }
    parallel: 4
    versions: {}
EOF
  for side in off on; do
    rm -rf "$RUN/src-$side" "${ROOT:?}/up-$side" "$RUN/state-$side"
    cp -a "$pristine" "$RUN/src-$side"
    install -d -o "$FTP_USER" "$ROOT/up-$side"
    mkdir -p "$RUN/state-$side"
    PLUGSYNC_BENCH_PW=$PASSWORD PLUGSYNC_STATE_DIR=$RUN/state-$side \
      "$PLUGSYNC" run "$side" --config "$RUN/plugsync.yaml" >/dev/null || die "first upload ($side) failed"
  done
  if [ "$kept" -gt 0 ]; then
    # Run folders of the last hours, each with 1 % of the files, as runs would have left them.
    now=$(date +%s)
    for ((k = 1; k <= kept; k++)); do
      folder=$ROOT/up-on/.plugsync-versions/$(date -d "@$((now - (kept - k + 1) * 600))" +%Y-%m-%d_%H%M%S)
      (cd "$pristine" && find . -type f | sort | awk -v s="$k" 'BEGIN { srand(s) } rand() < 0.01' |
        while read -r f; do mkdir -p "$folder/$(dirname "$f")"; cp -p "$f" "$folder/$f"; done)
    done
    chown -R "$FTP_USER:" "$ROOT/up-on/.plugsync-versions"
  fi
  : >"$RUN/times-$server"
  for ((rep = 1; rep <= reps; rep++)); do
    for side in off on; do $GEN mutate "$RUN/src-$side" --count 20 --seed "$((SEED * 100 + rep))" >/dev/null; done
    order="off on"; [ $((rep % 2)) -eq 0 ] && order="on off"
    for side in $order; do
      sync; sleep 1
      t0=$EPOCHREALTIME
      PLUGSYNC_BENCH_PW=$PASSWORD PLUGSYNC_STATE_DIR=$RUN/state-$side \
        "$PLUGSYNC" run "$side" --config "$RUN/plugsync.yaml" >"$RUN/out-$side" 2>&1 || die "run $side failed: $(tail -n 3 "$RUN/out-$side")"
      t1=$EPOCHREALTIME
      secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
      echo "$side $secs" >>"$RUN/times-$server"
      printf 'bench: %-8s rep %2d %-3s %6.3f s  %s\n' "$server" "$rep" "$side" "$secs" "$(grep '^Done' "$RUN/out-$side" | cut -c1-60)" >&2
    done
  done
  off=$(awk '$1 == "off" { print $2 }' "$RUN/times-$server" | median)
  on=$(awk '$1 == "on" { print $2 }' "$RUN/times-$server" | median)
  runs=$(find "$ROOT/up-on/.plugsync-versions" -mindepth 1 -maxdepth 1 -type d | wc -l)
  awk -v s="$server" -v a="$off" -v b="$on" -v n="$reps" -v k="$kept" -v r="$runs" \
    'BEGIN { printf "%s: %d reps, %d run folders kept before, %d after: versions off %.3f s, on %.3f s (medians): %.2fx\n", s, n, k, r, a, b, b / a }'
  "$FIX" stop "$server" >/dev/null
done
