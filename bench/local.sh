#!/usr/bin/env bash
# Local-disk benchmark: plugsync vs rsync vs cp -a, same machine, same run. See bench/README.md.
#
#   bench/local.sh [-n N] [--quick] [--only TOOLS] [--files N] [--folders N]
#
#   -n N          repetitions per scenario (default 5); the median is reported
#   --quick       smoke test: -n 1 and 2,000 files (an explicit -n / --files still wins)
#   --only LIST   comma-separated subset of plugsync,rsync,cp,rclone (default: all four)
#   --files N     number of files in the tree (default 10000)
#   --folders N   number of folders (default 200)
#
# Environment: PLUGSYNC (binary; default: built by this script, release with static stdlib, into <repo>/.build-bench), BENCH_DIR (work dir,
# default bench/data), BENCH_SEED (tree seed, default 20240601), BENCH_DEFINITION (more lines for
# plugsync's definition, one field a line, e.g. 'verify: true' or 'versions: {}').
set -euo pipefail
export LC_ALL=C

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
GEN_VERSION=1   # bump when gentree.py's "gen" output changes

usage() { sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
die() { echo "bench: $*" >&2; exit 2; }

reps=5; files=10000; folders=200; quick=0; reps_set=0; files_set=0; only="plugsync,rsync,cp,rclone"
while [ $# -gt 0 ]; do
  case "$1" in
    -n) [ $# -ge 2 ] || die "-n needs a number"; reps=$2; reps_set=1; shift 2 ;;
    -n*) reps=${1#-n}; reps_set=1; shift ;;
    --quick) quick=1; shift ;;
    --only) [ $# -ge 2 ] || die "--only needs a list"; only=$2; shift 2 ;;
    --only=*) only=${1#--only=}; shift ;;
    --files) [ $# -ge 2 ] || die "--files needs a number"; files=$2; files_set=1; shift 2 ;;
    --folders) [ $# -ge 2 ] || die "--folders needs a number"; folders=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
if [ "$quick" = 1 ]; then
  [ "$reps_set" = 1 ] || reps=1
  [ "$files_set" = 1 ] || files=2000
fi
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || die "-n must be a positive integer, got '$reps'"
[[ "$files" =~ ^[1-9][0-9]*$ ]] || die "--files must be a positive integer, got '$files'"
[[ "$folders" =~ ^[1-9][0-9]*$ ]] || die "--folders must be a positive integer, got '$folders'"

tools=()
IFS=, read -r -a wanted <<<"$only"
for t in "${wanted[@]}"; do
  case "$t" in
    plugsync|rsync|cp|rclone) tools+=("$t") ;;
    "") ;;
    *) die "--only: unknown tool '$t' (known: plugsync, rsync, cp, rclone)" ;;
  esac
done
[ ${#tools[@]} -gt 0 ] || die "--only selected no tool"
has() { local t; for t in "${tools[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }

# --- prerequisites -------------------------------------------------------------------------
missing=()
[ -x /usr/bin/time ] || missing+=("/usr/bin/time (apt-get install -y time)")
command -v python3 >/dev/null || missing+=("python3")
command -v sync >/dev/null || missing+=("sync (coreutils)")
has rsync && ! command -v rsync >/dev/null && missing+=("rsync (apt-get install -y rsync, or --only plugsync,cp)")
has cp && ! command -v cp >/dev/null && missing+=("cp (coreutils)")
has rclone && ! command -v rclone >/dev/null && missing+=("rclone (apt-get install -y rclone, or --only plugsync,rsync,cp)")
# Without PLUGSYNC, measure what users get: the release build with the Swift standard library
# linked statically (as the Debian package ships it), built here into .build-bench.
if [ -z "${PLUGSYNC:-}" ] && has plugsync; then
  echo "bench: building plugsync (release, static stdlib) into .build-bench" >&2
  (cd "$REPO" && swift build -c release --product plugsync --scratch-path .build-bench -Xswiftc -static-stdlib 2>&1 \
    | grep -E 'error|Build' >&2) || true
  PLUGSYNC=$REPO/.build-bench/release/plugsync
fi
PLUGSYNC=${PLUGSYNC:-$REPO/.build-bench/release/plugsync}
if has plugsync; then
  if [[ "$PLUGSYNC" != */* ]]; then PLUGSYNC=$(command -v "$PLUGSYNC" || echo "$PLUGSYNC"); fi
  if [ -x "$PLUGSYNC" ] && [ -f "$PLUGSYNC" ]; then
    PLUGSYNC=$(cd "$(dirname "$PLUGSYNC")" && pwd)/$(basename "$PLUGSYNC")
  else
    missing+=("plugsync binary at $PLUGSYNC (the build failed; or set PLUGSYNC=...; or skip it: --only rsync,cp)")
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  for m in "${missing[@]}"; do echo "bench: missing: $m" >&2; done
  exit 2
fi

BENCH_DIR=${BENCH_DIR:-$BENCH/data}
SEED=${BENCH_SEED:-20240601}
mkdir -p "$BENCH_DIR" "$BENCH/results"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
GEN="python3 $BENCH/gentree.py"
change=$(( (files + 50) / 100 )); [ "$change" -ge 1 ] || change=1   # 1% of the files

# --- the tree: generated once per parameter set, reused afterwards -------------------------
key="tree-${files}f-${folders}d-4l-1-16k-s${SEED}"
tree=$BENCH_DIR/$key
stamp=$BENCH_DIR/$key.stamp
stamp_text="gen=$GEN_VERSION files=$files folders=$folders depth=4 min=1024 max=16384 seed=$SEED"
if [ -d "$tree" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_text" ]; then
  echo "bench: reusing tree $tree" >&2
else
  echo "bench: generating $files files in $folders folders under $tree ..." >&2
  rm -rf "$tree" "$stamp"
  $GEN gen "$tree" --files "$files" --folders "$folders" --depth 4 \
    --min-size 1024 --max-size 16384 --seed "$SEED"
  echo "$stamp_text" >"$stamp"
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${load_before%% *}" 'BEGIN { exit !(l >= 0.5) }'; then
  echo "bench: warning: load average is $load_before before starting; other work on this machine makes the times noisy (compare the paired ratios)" >&2
fi

# --- per-run work area ---------------------------------------------------------------------
RUN=$BENCH_DIR/run
rm -rf "$RUN"
mkdir -p "$RUN"
SRC=$RUN/src
cp -a "$tree" "$SRC"             # the scenarios change the source; keep the generated tree pristine
STATE=$(mktemp -d "${TMPDIR:-/tmp}/plugsync-bench-state.XXXXXX")
trap 'rm -rf "$STATE"' EXIT
export PLUGSYNC_STATE_DIR=$STATE
CFG=$RUN/plugsync.yaml
cat >"$CFG" <<EOF
definitions:
  - name: bench
    type: mirror
    max_delete: 100%
    source:
      local: $SRC
    destination:
      local: $RUN/dst-plugsync
EOF
if [ -n "${BENCH_DEFINITION:-}" ]; then
  while IFS= read -r line; do [ -z "$line" ] || printf '    %s\n' "$line" >>"$CFG"; done <<<"$BENCH_DEFINITION"
fi
RAW=$RUN/raw.tsv; : >"$RAW"
LOG=$RUN/stderr.log; : >"$LOG"
bad=0

cmd_for() { # tool -> array CMD
  local dst=$RUN/dst-$1
  case "$1" in
    plugsync) CMD=("$PLUGSYNC" run bench --config "$CFG") ;;
    rsync) CMD=(rsync -a --delete "$SRC/" "$dst/") ;;
    cp) CMD=(cp -a "$SRC/." "$dst/") ;;
    rclone) CMD=(rclone sync "$SRC/" "$dst/" --config /dev/null) ;;
  esac
}

# run_one SCENARIO REP TOOL EXPECTED: time one run, then count rewritten files and verify.
run_one() {
  local sc=$1 rep=$2 tool=$3 expected=$4 dst=$RUN/dst-$3 tf=$RUN/time.out t0 t1 rc=0 secs rss
  cmd_for "$tool"
  $GEN snap "$dst" "$RUN/before.snap"
  sync
  echo "=== $sc rep $rep $tool" >>"$LOG"
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%e %M' -o "$tf" "${CMD[@]}" >/dev/null 2>>"$LOG" || rc=$?
  t1=$EPOCHREALTIME
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  rss=$(tail -n 1 "$tf" | awk '{ print ($2 ~ /^[0-9]+$/) ? $2 : 0 }')
  $GEN snap "$dst" "$RUN/after.snap"
  read -r rewritten new_inode removed < <($GEN changed "$RUN/before.snap" "$RUN/after.snap")
  verify=$($GEN verify "$SRC" "$dst" 2>>"$LOG") || true
  if [ "$rc" != 0 ] || [ "$verify" != ok ]; then
    bad=1
    echo "bench: $sc rep $rep $tool: exit $rc, check: $verify (details in $LOG)" >&2
    tail -n 5 "$LOG" | sed 's/^/    /' >&2
  fi
  printf '%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n' "$sc" "$rep" "$tool" "$secs" "$rss" "$rc" \
    "$rewritten" "$new_inode" "$removed" "$expected" "$verify" >>"$RAW"
  printf 'bench: %-13s rep %d/%d %-9s %7.3fs %7.1f MiB  rewrote %d (expected %d)  %s\n' "$sc" "$rep" "$reps" \
    "$tool" "$secs" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$rewritten" "$expected" "$verify" >&2
}

# rotated TOOLS REP: tool order shifted by the repetition number, so no tool always goes first.
rotated() {
  local rep=$1; shift; local list=("$@") n=$# i
  for ((i = 0; i < n; i++)); do echo "${list[(i + rep) % n]}"; done
}

# (a) first copy into an empty destination (plugsync also starts with an empty state dir).
for ((rep = 1; rep <= reps; rep++)); do
  for tool in $(rotated "$rep" "${tools[@]}"); do
    rm -rf "$RUN/dst-$tool"; mkdir "$RUN/dst-$tool"
    if [ "$tool" = plugsync ]; then rm -rf "$STATE"; mkdir -p "$STATE"; fi
    run_one first-copy "$rep" "$tool" "$files"
  done
done

# (b) no-op re-run (cp would rewrite everything; (c) shows that cost).
noop_tools=(); for t in "${tools[@]}"; do [ "$t" = cp ] || noop_tools+=("$t"); done
if [ ${#noop_tools[@]} -gt 0 ]; then
  for ((rep = 1; rep <= reps; rep++)); do
    for tool in $(rotated "$rep" "${noop_tools[@]}"); do run_one no-op "$rep" "$tool" 0; done
  done
fi

# (c) 1% of the files rewritten (same size, new content, later mtime), different files each rep;
#     cp -a is the rewrite-everything reference.
for ((rep = 1; rep <= reps; rep++)); do
  n=$($GEN mutate "$SRC" --count "$change" --seed "$((SEED * 100 + rep))")
  [ "$n" = "$change" ] || die "mutate changed $n files, wanted $change"
  for tool in $(rotated "$rep" "${tools[@]}"); do run_one changed-1pct "$rep" "$tool" "$change"; done
done

# --- report --------------------------------------------------------------------------------
stamp_now=$(date +%Y-%m-%d-%H%M%S)
out=$BENCH/results/local-$stamp_now.txt
{
  echo "date=$(date -Iseconds)"
  echo "host=$(uname -n) kernel=$(uname -r) cpus=$(nproc) cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "filesystem=$(findmnt -n -o FSTYPE -T "$BENCH_DIR" 2>/dev/null || stat -f -c %T "$BENCH_DIR") dir=$BENCH_DIR"
  echo "tree: $stamp_text changed_per_rep=$change reps=$reps tools=$(IFS=,; echo "${tools[*]}")"
  has rsync && echo "rsync=$(rsync --version | head -n 1)"
  has cp && echo "cp=$(cp --version | head -n 1)"
  has rclone && echo "rclone=$(rclone version 2>/dev/null | head -n 1)"
  if has plugsync; then
    echo "plugsync=$PLUGSYNC sha256=$(sha256sum "$PLUGSYNC" | cut -c1-16) git=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)"
  fi
  echo "loadavg_before=$load_before loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "timing: wall from bash EPOCHREALTIME around /usr/bin/time; peak RSS = /usr/bin/time %M (largest single process)"
} >"$RUN/meta.txt"
echo
echo "plugsync local benchmark: $files files, $folders folders, $reps rep(s), median of each; $change files changed in (c)"
python3 "$BENCH/summarize.py" "$RAW" "$RUN/meta.txt" "$out"
echo
echo "results: $out"
if [ "$bad" != 0 ]; then
  echo "bench: some runs failed or left a destination different from the source (see above, $LOG)" >&2
  exit 1
fi
