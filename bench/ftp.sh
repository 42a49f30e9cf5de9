#!/usr/bin/env bash
# FTP benchmark on loopback: plugsync vs lftp (mirror, sequential and --parallel=4) vs rclone sync
# (--transfers 4), against the test servers of Tests/Fixtures/ftp-servers. See bench/README.md.
#
#   bench/ftp.sh [-n N] [--servers LIST] [--trees LIST] [--tools LIST] [--files N] [--tmpfs] [--rtt MS]
#                [--noop-only]
#
#   -n N            repetitions (default 3); medians are reported
#   --servers LIST  of vsftpd,proftpd,vsftpd-skew,proftpd-skew (default vsftpd,proftpd,vsftpd-skew)
#   --trees LIST    small (10,000 files of 1-16 KiB in 200 folders) and/or mixed (2,000 files,
#                   20 of them 5-20 MiB, in 40 folders); default small,mixed
#   --tools LIST    of plugsync,lftp,lftp-p4,rclone-t4,rclone-t4-mdtm (default: all but
#                   rclone-t4-mdtm; with --rtt: plugsync,lftp-p4,rclone-t4,rclone-t4-mdtm);
#                   rclone-t4-mdtm (--ftp-writing-mdtm) runs on the vsftpd servers only
#   --files N       files in the small tree (default 10000)
#   --tmpfs         keep the servers' roots, the source copies and the downloads on a tmpfs
#                   (the generated trees stay on disk): takes the disk's state out of the
#                   comparison (see bench/README.md, "FTP on a tmpfs")
#   --rtt MS        put bench/latency-proxy.py between every tool and the server, adding MS
#                   milliseconds of round-trip time, and report per run the proxy's counts:
#                   control connections, command lines, turns and data connections
#                   (see bench/LATENCY.md)
#   --noop-only     no transfers: put the tree on the server's disk and in the local folder
#                   (cp -a: same sizes and times), run each direction twice (up-warm, up-noop,
#                   down-warm, down-noop) and time both: a no-op without the first upload's and
#                   download's wait, for the long round trips
#
# Each repetition, per server, tree and tool: a fresh copy of the tree; upload into an empty
# folder (up-first), again (up-noop), rewrite 1% of the files with new content of the same size
# and a new mtime (now: the same minute as the upload) and upload again (up-1pct); then download
# a reference copy of the tree (put on the server's disk directly) into an empty folder
# (down-first) and again (down-noop). Every run records wall time, peak RSS (/usr/bin/time %M),
# the files transferred (from the server's transfer log), the changed files it missed (content
# compared with the source on local disk afterwards) and the % of files whose mtime equals the
# source's to the second (on the server's disk: the real instant, which a skewed server reports
# 3684 s later, as its own clock reads).
#
# Root only (the servers run as root and switch to their login user). Environment: PLUGSYNC
# (binary; default: the release build with static stdlib, built into <repo>/.build-release),
# BENCH_DIR (default bench/data), BENCH_SEED (default 20240601), BENCH_TIMEOUT (seconds per run,
# default 1800; a run killed by it counts as failed, exit 124). The servers run with
# PLUGSYNC_FTP_PORT_BASE=2127 (ports 2128-2130…) and state in /tmp/plugsync-bench-ftp, apart from
# the tests' servers (both overridable). With --rtt the proxy listens on BENCH_PROXY_PORT (default
# 30010) and takes its passive data ports from the 300 above it; BENCH_TRACE=1 keeps its trace
# (every connection and command line, timed) beside the results. No password is written to disk or put on a command line (env vars only).
set -euo pipefail
export LC_ALL=C

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
FIX=$REPO/Tests/Fixtures/ftp-servers
CHECK="python3 $BENCH/ftpcheck.py"
GEN="python3 $BENCH/gentree.py"
GEN_VERSION=1

usage() { sed -n '2,26s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
die() { echo "bench: $*" >&2; exit 2; }

reps=3; servers=vsftpd,proftpd,vsftpd-skew; trees=small,mixed; only=""; files=10000
tmpfs=no; rtt=""; noop_only=no
while [ $# -gt 0 ]; do
  case "$1" in
    -n) [ $# -ge 2 ] || die "-n needs a number"; reps=$2; shift 2 ;;
    --servers) [ $# -ge 2 ] || die "--servers needs a list"; servers=$2; shift 2 ;;
    --trees) [ $# -ge 2 ] || die "--trees needs a list"; trees=$2; shift 2 ;;
    --tools) [ $# -ge 2 ] || die "--tools needs a list"; only=$2; shift 2 ;;
    --files) [ $# -ge 2 ] || die "--files needs a number"; files=$2; shift 2 ;;
    --tmpfs) tmpfs=yes; shift ;;
    --noop-only) noop_only=yes; shift ;;
    --rtt) [ $# -ge 2 ] || die "--rtt needs milliseconds"; rtt=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || die "-n must be a positive integer, got '$reps'"
[[ "$files" =~ ^[1-9][0-9]*$ ]] || die "--files must be a positive integer, got '$files'"
[ -z "$rtt" ] || [[ "$rtt" =~ ^[0-9]+$ ]] || die "--rtt must be whole milliseconds, got '$rtt'"
if [ -z "$only" ]; then
  only=plugsync,lftp,lftp-p4,rclone-t4
  [ -n "$rtt" ] && only=plugsync,lftp-p4,rclone-t4,rclone-t4-mdtm
fi
IFS=, read -r -a SERVERS <<<"$servers"
IFS=, read -r -a TREES <<<"$trees"
IFS=, read -r -a TOOLS <<<"$only"
for s in "${SERVERS[@]}"; do case "$s" in vsftpd|proftpd|vsftpd-skew|proftpd-skew) ;; *) die "--servers: unknown '$s'" ;; esac; done
for t in "${TREES[@]}"; do case "$t" in small|mixed) ;; *) die "--trees: unknown '$t'" ;; esac; done
for t in "${TOOLS[@]}"; do case "$t" in plugsync|lftp|lftp-p4|rclone-t4|rclone-t4-mdtm) ;; *) die "--tools: unknown '$t'" ;; esac; done
has() { local t; for t in "${TOOLS[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (the FTP servers run as root and switch to their login user)"
missing=()
[ -x /usr/bin/time ] || missing+=("/usr/bin/time")
command -v python3 >/dev/null || missing+=("python3")
{ has lftp || has lftp-p4; } && ! command -v lftp >/dev/null && missing+=("lftp")
{ has rclone-t4 || has rclone-t4-mdtm; } && ! command -v rclone >/dev/null && missing+=("rclone")
[ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]} (run scripts/setup)"

# plugsync: a missing or failing binary is reported per cell; the peers' numbers still come out.
if has plugsync && [ -z "${PLUGSYNC:-}" ]; then
  echo "bench: building plugsync (release, static stdlib) into .build-release" >&2
  (cd "$REPO" && swift build -c release --product plugsync -Xswiftc -static-stdlib --scratch-path .build-release 2>&1 \
    | grep -E 'error|Build' >&2) || true
  PLUGSYNC=$REPO/.build-release/release/plugsync
fi
PLUGSYNC=${PLUGSYNC:-$REPO/.build-release/release/plugsync}
if has plugsync && [ ! -x "$PLUGSYNC" ]; then
  echo "bench: warning: no plugsync binary at $PLUGSYNC; its cells will show as failed" >&2
fi

export PLUGSYNC_FTP_PORT_BASE=${PLUGSYNC_FTP_PORT_BASE:-2127}
export PLUGSYNC_FTP_STATE=${PLUGSYNC_FTP_STATE:-/tmp/plugsync-bench-ftp}
BENCH_DIR=${BENCH_DIR:-$BENCH/data}
TIMEOUT=${BENCH_TIMEOUT:-1800}  # seconds per run; a run that takes longer is killed (exit 124)
SEED=${BENCH_SEED:-20240601}
mkdir -p "$BENCH_DIR" "$BENCH/results"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
RUN=$BENCH_DIR/ftp-run
mountpoint -q "$RUN/mem" 2>/dev/null && umount "$RUN/mem"
rm -rf "$RUN"; mkdir -p "$RUN"
STATE=$(mktemp -d /tmp/plugsync-bench-state.XXXXXX)
# Where the runs write: the servers' roots, the source copies, the downloads.
WORK=$RUN
if [ "$tmpfs" = yes ]; then
  WORK=$RUN/mem; mkdir -p "$WORK"
  mount -t tmpfs -o size=8g,mode=0755 plugsync-bench "$WORK" || die "--tmpfs: cannot mount a tmpfs on $WORK"
fi
PROXY_PID=""
stop_proxy() {
  [ -n "$PROXY_PID" ] || return 0
  kill -TERM "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID=""
}
cleanup() {
  local s
  stop_proxy
  for s in "${SERVERS[@]}"; do "$FIX" stop "$s" >/dev/null 2>&1 || true; done
  rm -rf "$STATE"
  if [ "$WORK" != "$RUN" ]; then umount "$WORK" 2>/dev/null || true; fi
}
trap cleanup EXIT
RAW=$RUN/raw.tsv; : >"$RAW"
COUNTS=$RUN/counts.jsonl; : >"$COUNTS"
PROXY_PORT=${BENCH_PROXY_PORT:-30010}
PROXY_COUNTERS=$RUN/proxy-counters.json

start_proxy() {  # in front of 127.0.0.1:$PORT; sets TPORT, the port the tools use
  TPORT=$PORT
  [ -n "$rtt" ] || return 0
  python3 "$BENCH/latency-proxy.py" --listen "$PROXY_PORT" --upstream "$PORT" --rtt "$rtt" \
    --data-ports "$((PROXY_PORT + 1))-$((PROXY_PORT + 300))" --counters "$PROXY_COUNTERS" \
    ${BENCH_TRACE:+--trace "$RUN/proxy-trace-$server.txt"} \
    2>>"$LOG" </dev/null &
  PROXY_PID=$!
  local _
  for _ in $(seq 1 100); do
    [ -s "$PROXY_COUNTERS" ] && (exec 3<>"/dev/tcp/127.0.0.1/$PROXY_PORT") 2>/dev/null && { TPORT=$PROXY_PORT; return 0; }
    kill -0 "$PROXY_PID" 2>/dev/null || break
    sleep 0.1
  done
  die "the latency proxy did not start on 127.0.0.1:$PROXY_PORT (see $LOG)"
}

snapshot() {  # the proxy's counters now, into $1 (a fresh dump: waits until the file changed)
  [ -n "$rtt" ] || return 0
  cp "$PROXY_COUNTERS" "$1.old"
  kill -USR1 "$PROXY_PID"
  local _
  for _ in $(seq 1 100); do
    cmp -s "$PROXY_COUNTERS" "$1.old" || { cp "$PROXY_COUNTERS" "$1"; return 0; }
    sleep 0.02
  done
  die "the latency proxy wrote no counters (see $LOG)"
}
LOG=$RUN/tools.log; : >"$LOG"

tree_for() {  # name -> generated tree path (cached under BENCH_DIR)
  local name=$1 key args stamp_text
  case "$name" in
    small) key="tree-${files}f-200d-4l-1-16k-s${SEED}"
      args=(--files "$files" --folders 200 --depth 4 --min-size 1024 --max-size 16384 --seed "$SEED") ;;
    mixed) key="tree-mixed-2000f-40d-big20-s${SEED}"
      args=(--files 2000 --folders 40 --depth 4 --min-size 1024 --max-size 16384 --seed "$SEED" --big 20) ;;
  esac
  stamp_text="gen=$GEN_VERSION ${args[*]}"
  if ! { [ -d "$BENCH_DIR/$key" ] && [ "$(cat "$BENCH_DIR/$key.stamp" 2>/dev/null)" = "$stamp_text" ]; }; then
    echo "bench: generating tree $name under $BENCH_DIR/$key ..." >&2
    rm -rf "${BENCH_DIR:?}/$key"
    $GEN gen "$BENCH_DIR/$key" "${args[@]}"
    echo "$stamp_text" >"$BENCH_DIR/$key.stamp"
  fi
  echo "$BENCH_DIR/$key"
}

# cmd_for TOOL DIRECTION LOCAL REMOTE_DIR -> CMD array (server info in PORT/USER)
cmd_for() {
  local tool=$1 dir=$2 local=$3 remote=$4 par=1
  case "$tool" in
    plugsync)
      local name=bench-up; [ "$dir" = down ] && name=bench-down
      CMD=("$PLUGSYNC" run "$name" --config "$RUN/plugsync.yaml") ;;
    lftp | lftp-p4)
      [ "$tool" = lftp-p4 ] && par=4
      local mirror="mirror --delete --parallel=$par"
      if [ "$dir" = up ]; then mirror="$mirror -R $local /$remote"; else mirror="$mirror /$remote $local"; fi
      CMD=(lftp -c "set ftp:ssl-allow no; set net:max-retries 3; set net:reconnect-interval-base 1; \
open --env-password -u $FTP_USER -p $TPORT 127.0.0.1; $mirror") ;;
    rclone-t4 | rclone-t4-mdtm)
      if [ "$dir" = up ]; then CMD=(rclone sync "$local" ":ftp:$remote"); else CMD=(rclone sync ":ftp:$remote" "$local"); fi
      CMD+=(--config /dev/null --transfers 4 -q)
      if [ "$tool" = rclone-t4-mdtm ]; then CMD+=(--ftp-writing-mdtm); fi ;;
  esac
}

write_plugsync_config() {  # remote folder, local source (up) / destination (down)
  local remote=$1 local_up=$2 local_down=$3
  cat >"$RUN/plugsync.yaml" <<EOF
definitions:
  - name: bench-up
    type: mirror
    source: { local: $local_up }
    destination:
      ftp:
        server: 127.0.0.1:$TPORT
        username: $FTP_USER
        password_env: PLUGSYNC_BENCH_PW
        directory: $remote
        clock_diff: auto
    parallel: 4
  - name: bench-down
    type: mirror
    source:
      ftp:
        server: 127.0.0.1:$TPORT
        username: $FTP_USER
        password_env: PLUGSYNC_BENCH_PW
        directory: ref
        clock_diff: auto
    destination: { local: $local_down }
    parallel: 4
EOF
}

# run_one TREE SERVER SCENARIO REP TOOL DIRECTION LOCAL REMOTE EXPECTED
run_one() {
  local tree=$1 server=$2 sc=$3 rep=$4 tool=$5 dir=$6 local=$7 remote=$8 expected=$9
  local tf=$RUN/time.out t0 t1 rc=0 secs rss offset xf cmp missed content extra mtime
  cmd_for "$tool" "$dir" "$local" "$remote"
  offset=$(stat -c %s "$XFERLOG" 2>/dev/null || echo 0)
  echo "=== $tree $server $sc rep $rep $tool: ${CMD[*]}" >>"$LOG"
  # Settle first: the previous steps' writes (a fresh tree, deleted folders) are flushed now, not
  # during the timed run; and proftpd 1.3.8's master accepts no connection for 2 x 200 ms after
  # each signal it gets (a pselect after every SIGCHLD; proftpd issue #1623, fixed in 1.3.9). Its
  # sessions exit about 100 ms after their client left, so a run started 0.5 s after the last
  # one could still wait up to 400 ms for its first login: charged to one tool for the last.
  # 1 s clears that. (The fixture turns off the master's timers, whose SIGALRM did the same to
  # any run every 5 s: Tests/Fixtures/ftp-servers.)
  sync; sleep 1
  snapshot "$RUN/counters.before"
  t0=$EPOCHREALTIME
  LFTP_PASSWORD=$PASSWORD RCLONE_FTP_HOST=127.0.0.1 RCLONE_FTP_PORT=$TPORT RCLONE_FTP_USER=$FTP_USER \
    RCLONE_FTP_PASS=$RCLONE_PASS PLUGSYNC_BENCH_PW=$PASSWORD PLUGSYNC_STATE_DIR=$STATE/$tool \
    /usr/bin/time -f '%e %M' -o "$tf" timeout -k 10 "$TIMEOUT" "${CMD[@]}" >>"$LOG" 2>&1 </dev/null || rc=$?
  t1=$EPOCHREALTIME
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  rss=$(tail -n 1 "$tf" 2>/dev/null | awk '{ print ($2 ~ /^[0-9]+$/) ? $2 : 0 }')
  sleep 0.2  # let the server's sessions write their last log lines
  local counts=""
  if [ -n "$rtt" ]; then
    snapshot "$RUN/counters.after"
    counts=$($CHECK counters "$RUN/counters.before" "$RUN/counters.after" "$COUNTS" \
      "$tree" "$server" "$sc" "$rep" "$tool")
  fi
  xf=$($CHECK xfers "$XFERLOG" "$offset" "$dir")
  if [ "$dir" = up ]; then
    # The server's disk holds the real instant; it reports disk time + SKEW (its clock), so a
    # disk time equal to the source's is the correct result on a skewed server too.
    read -r missed content extra mtime < <($CHECK compare "$SRC" "$ROOT/$remote" 0)
  else
    read -r missed content extra mtime < <($CHECK compare "$SRC" "$local" 0)
  fi
  missed=$((missed + content))
  printf '%s\t%s\t%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s%s\n' "$tree" "$server" "$sc" "$rep" "$tool" "$secs" \
    "${rss:-0}" "$rc" "$xf" "$expected" "$missed" "$extra" "$mtime" "${counts:+	$counts}" >>"$RAW"
  local note=""; [ "$rc" = 0 ] || note="  FAILED (exit $rc; see $LOG)"
  [ -n "$counts" ] && note="  logins/cmds/turns/data $(echo "$counts" | tr '\t' /)$note"
  printf 'bench: %-5s %-12s %-10s rep %d %-9s %8.2fs %6.1f MiB  xfers %5d (expected %5d)  missed %d  extra %d  mtime %s%%%s\n' \
    "$tree" "$server" "$sc" "$rep" "$tool" "$secs" "$(awk -v k="${rss:-0}" 'BEGIN { print k / 1024 }')" "$xf" "$expected" \
    "$missed" "$extra" "$mtime" "$note" >&2
  [ "$rc" = 0 ] || tail -n 3 "$LOG" | sed 's/^/    /' >&2
}

RCLONE_PASS=""
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for server in "${SERVERS[@]}"; do
  info=$("$FIX" start "$server" "$WORK/root-$server") || die "could not start $server"
  field() { echo "$info" | sed -n "s/^$1=//p"; }
  PORT=$(field PORT); FTP_USER=$(field USER); PASSWORD=$(field PASSWORD); ROOT=$(field ROOT)
  SKEW=$(field SKEW); XFERLOG=$(field LOG)
  has rclone-t4 && RCLONE_PASS=$(printf '%s' "$PASSWORD" | rclone obscure - 2>/dev/null)
  echo "bench: $server on 127.0.0.1:$PORT (root $ROOT, clock +$SKEW s)" >&2
  start_proxy
  [ -n "$rtt" ] && echo "bench: latency proxy on 127.0.0.1:$TPORT, round trip +$rtt ms" >&2
  for tname in "${TREES[@]}"; do
    pristine=$(tree_for "$tname")
    nfiles=$(find "$pristine" -type f | wc -l)
    change=$(( (nfiles + 50) / 100 )); [ "$change" -ge 1 ] || change=1
    # The download reference: the tree placed on the server's disk, owned by its login user.
    rm -rf "${ROOT:?}/ref"; cp -a "$pristine" "$ROOT/ref"; chown -R "$FTP_USER:" "$ROOT/ref"
    for ((rep = 1; rep <= reps; rep++)); do
      n=${#TOOLS[@]}
      for ((i = 0; i < n; i++)); do
        tool=${TOOLS[(i + rep) % n]}
        [ "$tool" = rclone-t4-mdtm ] && [ "${server#vsftpd}" = "$server" ] && continue
        SRC=$WORK/src-$tool; DOWN=$WORK/down-$tool; remote=up-$tool
        rm -rf "$SRC" "$DOWN" "${ROOT:?}/$remote" "${STATE:?}/$tool"
        cp -a "$pristine" "$SRC"; mkdir -p "$DOWN" "$STATE/$tool"
        install -d -o "$FTP_USER" "$ROOT/$remote"
        [ "$tool" = plugsync ] && write_plugsync_config "$remote" "$SRC" "$DOWN"
        if [ "$noop_only" = yes ]; then
          cp -a "$pristine/." "$ROOT/$remote/"; chown -R "$FTP_USER:" "$ROOT/$remote"
          run_one "$tname" "$server" up-warm "$rep" "$tool" up "$SRC" "$remote" 0
          run_one "$tname" "$server" up-noop "$rep" "$tool" up "$SRC" "$remote" 0
          SRC=$pristine
          rm -rf "$DOWN"; cp -a "$pristine" "$DOWN"
          run_one "$tname" "$server" down-warm "$rep" "$tool" down "$DOWN" ref 0
          run_one "$tname" "$server" down-noop "$rep" "$tool" down "$DOWN" ref 0
          rm -rf "$WORK/src-$tool" "$DOWN" "${ROOT:?}/$remote"
          continue
        fi
        run_one "$tname" "$server" up-first "$rep" "$tool" up "$SRC" "$remote" "$nfiles"
        run_one "$tname" "$server" up-noop "$rep" "$tool" up "$SRC" "$remote" 0
        got=$($GEN mutate "$SRC" --count "$change" --seed "$((SEED * 100 + rep))")
        [ "$got" = "$change" ] || die "mutate changed $got files, wanted $change"
        run_one "$tname" "$server" up-1pct "$rep" "$tool" up "$SRC" "$remote" "$change"
        # Download: compared with the pristine tree (the reference on the server).
        SRC=$pristine
        run_one "$tname" "$server" down-first "$rep" "$tool" down "$DOWN" ref "$nfiles"
        run_one "$tname" "$server" down-noop "$rep" "$tool" down "$DOWN" ref 0
        rm -rf "$WORK/src-$tool" "$DOWN" "${ROOT:?}/$remote"
      done
    done
    rm -rf "${ROOT:?}/ref"
  done
  stop_proxy
  "$FIX" stop "$server"
done

out=$BENCH/results/ftp-$(date +%Y-%m-%d-%H%M%S).txt
{
  echo "# date=$(date -Iseconds) host=$(uname -n) cpus=$(nproc) reps=$reps servers=$servers trees=$trees tools=$only tmpfs=$tmpfs files=$files rtt_ms=${rtt:-0} noop_only=$noop_only"
  echo "# loadavg_before=$load_before loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# lftp=$(lftp --version 2>/dev/null | head -n 1) rclone=$(rclone version 2>/dev/null | head -n 1)"
  echo "# plugsync=$PLUGSYNC git=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)"
  echo "# xfers = files transferred per the server's transfer log; missed = changed files left stale"
  echo "# or missing afterwards; mtime% = files whose mtime equals the source's to the second"
  if [ -n "$rtt" ]; then
    echo "# through bench/latency-proxy.py (+$rtt ms per round trip): logins = control connections,"
    echo "# cmds = command lines, turns = client bursts after a reply, data = data connections (medians)"
  fi
} >"$out"
echo
$CHECK summary "$RAW" "$out"
if [ -n "$rtt" ]; then
  echo; $CHECK verbs "$COUNTS" "$out"
  cp "$COUNTS" "${out%.txt}.counts.jsonl"
  if [ -n "${BENCH_TRACE:-}" ]; then for s in "${SERVERS[@]}"; do cp "$RUN/proxy-trace-$s.txt" "${out%.txt}.trace-$s.txt"; done; fi
fi
echo
echo "results: $out (raw runs: $RAW, tool output: $RUN/tools.log)"
