#!/usr/bin/env bash
# Agent benchmark: over N plug-ins (default 10), the time from mount(2) returning to the first
# file written on the drive by `plugsync agent`. Needs root (loop devices, mounts, udevd).
#
# Each plug-in: a fresh ext4 image with a label and a File Check file, attached as a loop device,
# announced to udevd (`udevadm trigger` + `settle`, as when a drive is plugged in), then mounted
# with mount(8). The clock starts when mount returns; the first file is seen by polling the
# destination folder every 0.5 ms from this script. Then unmount, detach, next.
#
# Usage: bench/agent.sh [-n N]
# Environment: PLUGSYNC (binary; default: the release build into <repo>/.build-bench, as local.sh)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
n=10
while [ $# -gt 0 ]; do
  case "$1" in
    -n) n=$2; shift 2 ;;
    *) echo "usage: bench/agent.sh [-n N]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench/agent.sh: needs root (loop devices, mounts)" >&2; exit 2; }
if [ -z "${PLUGSYNC:-}" ]; then
  echo "bench: building plugsync (release, static stdlib) into .build-bench" >&2
  (cd "$REPO" && swift build -c release --product plugsync --scratch-path .build-bench -Xswiftc -static-stdlib 2>&1 \
    | tail -1) >&2
  PLUGSYNC=$REPO/.build-bench/release/plugsync
fi
if ! udevadm control --ping --timeout=2 >/dev/null 2>&1; then
  echo "bench: starting systemd-udevd --daemon" >&2
  /lib/systemd/systemd-udevd --daemon
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/plugsync-bench-agent.XXXXXX")
AGENT_PID=
cleanup() {
  [ -n "$AGENT_PID" ] && kill -TERM "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null || true
  mountpoint -q "$WORK/mnt" && umount "$WORK/mnt" || true
  [ -f "$WORK/dev" ] && losetup -d "$(cat "$WORK/dev")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/src" "$WORK/mnt" "$WORK/state"
for i in $(seq 1 20); do head -c 4096 /dev/urandom > "$WORK/src/file$i.bin"; done
LABEL=PSBENCH$$
cat > "$WORK/plugsync.yaml" <<YAML
definitions:
  - name: bench
    type: backup
    source:
      local: $WORK/src
    destination:
      device:
        label: $LABEL
        directory: backup
      file_check: ".plugsync-id=^bench\$"
YAML
PLUGSYNC_STATE_DIR=$WORK/state "$PLUGSYNC" agent --config "$WORK/plugsync.yaml" 2> "$WORK/agent.log" &
AGENT_PID=$!
for _ in $(seq 1 100); do grep -q started "$WORK/agent.log" && break; sleep 0.05; done

python3 - "$WORK" "$LABEL" "$n" <<'PY'
import os, statistics, subprocess, sys, time
work, label, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
image, mnt = work + "/drive.img", work + "/mnt"
def run(*cmd):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True).stdout.strip()
times = []
for i in range(n):
    if os.path.exists(image): os.unlink(image)
    run("truncate", "-s", "64M", image)
    run("mkfs.ext4", "-q", "-F", "-L", label, image)
    dev = run("losetup", "-f", "--show", image)
    open(work + "/dev", "w").write(dev)
    run("mount", dev, mnt)
    open(mnt + "/.plugsync-id", "w").write("bench\n")
    run("umount", mnt)
    run("udevadm", "trigger", "--action=change", dev)
    run("udevadm", "settle", "--timeout=20")
    subprocess.run(["mount", dev, mnt], check=True)
    t0 = time.monotonic()
    dest = mnt + "/backup"
    seen = None
    while time.monotonic() - t0 < 10:
        try:
            if any(not e.startswith(".") for e in os.listdir(dest)):
                seen = time.monotonic() - t0
                break
        except FileNotFoundError:
            pass
        time.sleep(0.0005)
    # Let the run finish before unplugging.
    while time.monotonic() - t0 < 10 and len(os.listdir(dest) if os.path.isdir(dest) else []) < 20:
        time.sleep(0.01)
    time.sleep(0.2)
    subprocess.run(["umount", mnt])
    subprocess.run(["losetup", "-d", dev])
    os.unlink(work + "/dev")
    print(f"plug-in {i + 1}: " + (f"{seen * 1000:.1f} ms" if seen is not None else "no file within 10 s"), flush=True)
    if seen is not None: times.append(seen)
if times:
    print(f"mount to first file written: median {statistics.median(times) * 1000:.1f} ms, "
          f"min {min(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms over {len(times)} of {n} plug-ins "
          f"(target: median <= 500 ms)")
sys.exit(0 if len(times) == n else 1)
PY
