#!/usr/bin/env bash
# SFTP benchmark on loopback: plugsync vs rclone sync (an on-the-fly :sftp: remote) vs lftp's
# mirror over sftp:// (sequential and --parallel=4), against an OpenSSH sshd started from
# Tests/Fixtures/sshd-server. See bench/README.md.
#
#   bench/sftp.sh [-n N] [--trees LIST] [--tools LIST] [--files N] [--tmpfs]
#
#   -n N            repetitions (default 3); medians are reported
#   --trees LIST    small (10,000 files of 1-16 KiB in 200 folders) and/or mixed (2,000 files,
#                   20 of them 5-20 MiB, in 40 folders); default small,mixed
#   --tools LIST    of plugsync,rclone,lftp,lftp-p4 (default: all four)
#   --files N       files in the small tree (default 10000)
#   --tmpfs         keep the server's folder, the source copies and the downloads on a tmpfs
#                   (the generated trees stay on disk)
#
# Each repetition, per tree and tool (the order rotates): a fresh copy of the tree; upload into
# an empty folder (up-first), again (up-noop), rewrite 1% of the files with new content of the
# same size and mtime = now (the same minute as the upload) and upload again (up-1pct); then
# download a reference copy of the tree (put on the server's disk directly) into an empty folder
# (down-first) and again (down-noop). Every run records wall time, peak RSS (/usr/bin/time %M),
# the files transferred and the SFTP operations the server logged (sftp-server -l VERBOSE: opens,
# closes, stats, renames, attribute changes, folder opens), the changed files it missed (content
# compared with the source afterwards) and the % of files whose mtime equals the source's.
#
# Root only (sshd runs as root and switches to its login user). Environment: PLUGSYNC (binary;
# default: the release build with static stdlib, built into <repo>/.build-release), BENCH_DIR
# (default bench/data), BENCH_SEED (default 20240601), BENCH_TIMEOUT (seconds per run, default
# 1800; a run killed by it counts as failed, exit 124). The server runs with
# PLUGSYNC_SSH_PORT=2962 and state in /tmp/plugsync-sshd-bench, apart from the tests' sshd (both
# overridable), in the folder BENCH_SFTP_FOLDER (default plugsync-bench-sftp) of its login
# folder; logins by key only, the host key checked against the fixture's known_hosts.
set -euo pipefail
export LC_ALL=C

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
FIX=$REPO/Tests/Fixtures/sshd-server
CHECK="python3 $BENCH/ftpcheck.py"
GEN="python3 $BENCH/gentree.py"
GEN_VERSION=1

usage() { sed -n '2,23s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
die() { echo "bench: $*" >&2; exit 2; }

reps=3; trees=small,mixed; only=plugsync,rclone,lftp,lftp-p4; files=10000; tmpfs=no
while [ $# -gt 0 ]; do
  case "$1" in
    -n) [ $# -ge 2 ] || die "-n needs a number"; reps=$2; shift 2 ;;
    --trees) [ $# -ge 2 ] || die "--trees needs a list"; trees=$2; shift 2 ;;
    --tools) [ $# -ge 2 ] || die "--tools needs a list"; only=$2; shift 2 ;;
    --files) [ $# -ge 2 ] || die "--files needs a number"; files=$2; shift 2 ;;
    --tmpfs) tmpfs=yes; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || die "-n must be a positive integer, got '$reps'"
[[ "$files" =~ ^[1-9][0-9]*$ ]] || die "--files must be a positive integer, got '$files'"
IFS=, read -r -a TREES <<<"$trees"
IFS=, read -r -a TOOLS <<<"$only"
for t in "${TREES[@]}"; do case "$t" in small|mixed) ;; *) die "--trees: unknown '$t'" ;; esac; done
for t in "${TOOLS[@]}"; do case "$t" in plugsync|rclone|lftp|lftp-p4) ;; *) die "--tools: unknown '$t'" ;; esac; done
has() { local t; for t in "${TOOLS[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (sshd runs as root and switches to its login user)"
missing=()
[ -x /usr/bin/time ] || missing+=("/usr/bin/time")
command -v python3 >/dev/null || missing+=("python3")
[ -x /usr/sbin/sshd ] || missing+=("sshd (openssh-server)")
[ -x /usr/lib/openssh/sftp-server ] || missing+=("sftp-server (openssh-sftp-server)")
{ has lftp || has lftp-p4; } && ! command -v lftp >/dev/null && missing+=("lftp")
{ has lftp || has lftp-p4; } && ! command -v ssh >/dev/null && missing+=("ssh (openssh-client)")
has rclone && ! command -v rclone >/dev/null && missing+=("rclone")
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

export PLUGSYNC_SSH_PORT=${PLUGSYNC_SSH_PORT:-2962}
export PLUGSYNC_SSH_STATE=${PLUGSYNC_SSH_STATE:-/tmp/plugsync-sshd-bench}
# OpenSSH's sftp-server, logging every open, close, stat, rename and attribute change.
export PLUGSYNC_SSH_SFTP_LOG=VERBOSE
BENCH_DIR=${BENCH_DIR:-$BENCH/data}
TIMEOUT=${BENCH_TIMEOUT:-1800}
SEED=${BENCH_SEED:-20240601}
mkdir -p "$BENCH_DIR" "$BENCH/results"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
RUN=$BENCH_DIR/sftp-run
mountpoint -q "$RUN/mem" 2>/dev/null && umount "$RUN/mem"
rm -rf "$RUN"; mkdir -p "$RUN"
STATE=$(mktemp -d /tmp/plugsync-bench-state.XXXXXX)
WORK=$RUN
if [ "$tmpfs" = yes ]; then
  WORK=$RUN/mem; mkdir -p "$WORK"
  mount -t tmpfs -o size=8g,mode=0755 plugsync-bench "$WORK" || die "--tmpfs: cannot mount a tmpfs on $WORK"
fi
ROOT=""
cleanup() {
  "$FIX" stop >/dev/null 2>&1 || true
  rm -rf "$STATE"
  if [ -n "$ROOT" ]; then
    mountpoint -q "$ROOT" && umount "$ROOT"
    rm -rf "$ROOT"
  fi
  if [ "$WORK" != "$RUN" ]; then umount "$WORK" 2>/dev/null || true; fi
}
trap cleanup EXIT
RAW=$RUN/raw.tsv; : >"$RAW"
LOG=$RUN/tools.log; : >"$LOG"

tree_for() {  # name -> generated tree path (cached under BENCH_DIR; the same trees as ftp.sh)
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

# cmd_for TOOL DIRECTION LOCAL REMOTE_DIR -> CMD array (REMOTE_DIR relative to the login folder)
cmd_for() {
  local tool=$1 dir=$2 local=$3 remote=$4 par=1
  case "$tool" in
    plugsync)
      local name=bench-up; [ "$dir" = down ] && name=bench-down
      CMD=("$PLUGSYNC" run "$name" --config "$RUN/plugsync.yaml") ;;
    lftp | lftp-p4)
      [ "$tool" = lftp-p4 ] && par=4
      local mirror="mirror --delete --parallel=$par"
      if [ "$dir" = up ]; then mirror="$mirror -R $local $BASE/$remote"; else mirror="$mirror $BASE/$remote $local"; fi
      CMD=(lftp -c "set sftp:connect-program 'ssh -a -x -i $KEY -o UserKnownHostsFile=$KNOWN_HOSTS \
-o StrictHostKeyChecking=yes -o BatchMode=yes'; set net:max-retries 3; set net:reconnect-interval-base 1; \
open -u $SSH_USER, -p $PORT sftp://127.0.0.1; $mirror") ;;
    rclone)
      # --sftp-disable-hashcheck: the server runs no shell commands (sftp only), so rclone's probe
      # for md5sum/sha1sum would only cost it a few sessions.
      if [ "$dir" = up ]; then CMD=(rclone sync "$local" ":sftp:$BASE/$remote"); else CMD=(rclone sync ":sftp:$BASE/$remote" "$local"); fi
      CMD+=(--config /dev/null -q --sftp-host 127.0.0.1 --sftp-port "$PORT" --sftp-user "$SSH_USER"
        --sftp-key-file "$KEY" --sftp-known-hosts-file "$KNOWN_HOSTS" --sftp-disable-hashcheck) ;;
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
      sftp:
        server: 127.0.0.1:$PORT
        username: $SSH_USER
        key_file: $KEY
        known_hosts: $KNOWN_HOSTS
        directory: $BASE/$remote
    parallel: 4
  - name: bench-down
    type: mirror
    source:
      sftp:
        server: 127.0.0.1:$PORT
        username: $SSH_USER
        key_file: $KEY
        known_hosts: $KNOWN_HOSTS
        directory: $BASE/ref
    destination: { local: $local_down }
    parallel: 4
EOF
}

# run_one TREE SCENARIO REP TOOL DIRECTION LOCAL REMOTE EXPECTED
run_one() {
  local tree=$1 sc=$2 rep=$3 tool=$4 dir=$5 local=$6 remote=$7 expected=$8
  local tf=$RUN/time.out t0 t1 rc=0 secs rss offset xf ops missed content extra mtime
  cmd_for "$tool" "$dir" "$local" "$remote"
  offset=$(stat -c %s "$SFTPLOG" 2>/dev/null || echo 0)
  echo "=== $tree $sc rep $rep $tool: ${CMD[*]}" >>"$LOG"
  # Settle first: the previous steps' writes (a fresh tree, deleted folders) are flushed now, not
  # during the timed run, and the last run's sessions have ended.
  sync; sleep 1
  t0=$EPOCHREALTIME
  PLUGSYNC_STATE_DIR=$STATE/$tool \
    /usr/bin/time -f '%e %M' -o "$tf" timeout -k 10 "$TIMEOUT" "${CMD[@]}" >>"$LOG" 2>&1 </dev/null || rc=$?
  t1=$EPOCHREALTIME
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  rss=$(tail -n 1 "$tf" 2>/dev/null | awk '{ print ($2 ~ /^[0-9]+$/) ? $2 : 0 }')
  sleep 0.2  # let the server's sessions write their last log lines
  read -r xf ops < <($CHECK sftpxfers "$SFTPLOG" "$offset" "$dir")
  read -r missed content extra mtime < <($CHECK compare "$SRC" "$([ "$dir" = up ] && echo "$ROOT/$remote" || echo "$local")" 0)
  missed=$((missed + content))
  printf '%s\tsshd\t%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\n' "$tree" "$sc" "$rep" "$tool" "$secs" \
    "${rss:-0}" "$rc" "$xf" "$expected" "$missed" "$extra" "$mtime" "$ops" >>"$RAW"
  local note=""; [ "$rc" = 0 ] || note="  FAILED (exit $rc; see $LOG)"
  printf 'bench: %-5s %-10s rep %d %-9s %8.2fs %6.1f MiB  xfers %5d (expected %5d)  ops %6d  missed %d  extra %d  mtime %s%%%s\n' \
    "$tree" "$sc" "$rep" "$tool" "$secs" "$(awk -v k="${rss:-0}" 'BEGIN { print k / 1024 }')" "$xf" "$expected" \
    "$ops" "$missed" "$extra" "$mtime" "$note" >&2
  [ "$rc" = 0 ] || tail -n 3 "$LOG" | sed 's/^/    /' >&2
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$FIX" stop >/dev/null 2>&1 || true  # a server left by an earlier run would keep its old configuration
info=$("$FIX" start) || die "could not start sshd (see $PLUGSYNC_SSH_STATE/sshd.log)"
field() { echo "$info" | sed -n "s/^$1=//p"; }
PORT=$(field PORT); SSH_USER=$(field USER); KEY=$(field KEY); KNOWN_HOSTS=$(field KNOWN_HOSTS)
SFTPLOG=$(field STATE)/sftp.log
: >"$SFTPLOG"  # this run's operations only
# The bench's folders, in the login folder (which the tests' sshd shares: they use others;
# BENCH_SFTP_FOLDER names another one, for two benches at once).
BASE=${BENCH_SFTP_FOLDER:-plugsync-bench-sftp}
ROOT=$(field HOME)/$BASE
rm -rf "$ROOT"; install -d -o "$SSH_USER" "$ROOT"
if [ "$tmpfs" = yes ]; then
  mount -t tmpfs -o size=8g,mode=0755 plugsync-bench-sftp "$ROOT" || die "--tmpfs: cannot mount a tmpfs on $ROOT"
  chown "$SSH_USER:" "$ROOT"
fi
echo "bench: sshd on 127.0.0.1:$PORT, folder $ROOT, load $load_before" >&2
for tname in "${TREES[@]}"; do
  pristine=$(tree_for "$tname")
  nfiles=$(find "$pristine" -type f | wc -l)
  change=$(( (nfiles + 50) / 100 )); [ "$change" -ge 1 ] || change=1
  # The download reference: the tree placed on the server's disk, owned by its login user.
  rm -rf "${ROOT:?}/ref"; cp -a "$pristine" "$ROOT/ref"; chown -R "$SSH_USER:" "$ROOT/ref"
  for ((rep = 1; rep <= reps; rep++)); do
    n=${#TOOLS[@]}
    for ((i = 0; i < n; i++)); do
      tool=${TOOLS[(i + rep) % n]}
      SRC=$WORK/src-$tool; DOWN=$WORK/down-$tool; remote=up-$tool
      rm -rf "$SRC" "$DOWN" "${ROOT:?}/$remote" "${STATE:?}/$tool"
      cp -a "$pristine" "$SRC"; mkdir -p "$DOWN" "$STATE/$tool"
      install -d -o "$SSH_USER" "$ROOT/$remote"
      [ "$tool" = plugsync ] && write_plugsync_config "$remote" "$SRC" "$DOWN"
      run_one "$tname" up-first "$rep" "$tool" up "$SRC" "$remote" "$nfiles"
      run_one "$tname" up-noop "$rep" "$tool" up "$SRC" "$remote" 0
      got=$($GEN mutate "$SRC" --count "$change" --seed "$((SEED * 100 + rep))")
      [ "$got" = "$change" ] || die "mutate changed $got files, wanted $change"
      run_one "$tname" up-1pct "$rep" "$tool" up "$SRC" "$remote" "$change"
      # Download: compared with the pristine tree (the reference on the server).
      SRC=$pristine
      run_one "$tname" down-first "$rep" "$tool" down "$DOWN" ref "$nfiles"
      run_one "$tname" down-noop "$rep" "$tool" down "$DOWN" ref 0
      rm -rf "$WORK/src-$tool" "$DOWN" "${ROOT:?}/$remote"
    done
  done
  rm -rf "${ROOT:?}/ref"
done

out=$BENCH/results/sftp-$(date +%Y-%m-%d-%H%M%S).txt
{
  echo "# date=$(date -Iseconds) host=$(uname -n) cpus=$(nproc) reps=$reps trees=$trees tools=$only tmpfs=$tmpfs files=$files"
  echo "# loadavg_before=$load_before loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# sshd=$(/usr/sbin/sshd -V 2>&1 | head -n 1) lftp=$(lftp --version 2>/dev/null | head -n 1) rclone=$(rclone version 2>/dev/null | head -n 1)"
  echo "# plugsync=$PLUGSYNC git=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)"
  echo "# xfers = files opened and written (up) or read (down) per sftp-server's log; ops = the SFTP"
  echo "# operations it logged (open, close, stat, setstat, rename, remove, mkdir, opendir, realpath)"
  echo "# missed = changed files left stale or missing afterwards; mtime% = files whose mtime equals"
  echo "# the source's to the second"
} >"$out"
echo
$CHECK summary "$RAW" "$out"
echo
echo "results: $out (raw runs: $RAW, tool output: $RUN/tools.log)"
