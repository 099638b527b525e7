# shellcheck shell=bash
# vm-lib.sh -- what scripts/vm-test and scripts/vm-systemd share; sourced, never run.
#
# Both boot Debian's kernel (apt package linux-image-amd64) under qemu-system-x86_64 with
# software emulation (TCG) and `cgroup_no_v1=all`. The guest's / is this machine's / shared
# read-only over virtio-9p, under an overlay whose upper layer is a tmpfs (writes vanish at
# power-off). A second, writable 9p share (the job dir, /.vmtest-job in the guest) carries the
# caller's stage2 script in and the exit status out: the initramfs's /init assembles the root
# and hands over to `/bin/busybox sh /.vmtest-job/stage2` as pid 1.
#
# The caller sets VM_NAME (its name, for messages) and sources this file, then:
#   vm_setup [APT PACKAGES]   root check, host packages, kernel, cached vmlinux and initramfs
#   vm_job [PYTEST ARGS]      the job dir ($JOB, removed at exit) with `cmd`: pytest ARGS in
#                             the repo (or VMTEST_CMD), run by the caller's stage2
#   (the caller writes $JOB/stage2)
#   vm_boot TIMEOUT [KERNEL ARGS]   boot, stream the console, exit with the status the guest
#                             wrote to $JOB/rc (255 if none: panic, timeout)
# Knobs (both scripts): VMTEST_KVER (newest /boot/vmlinuz-*), VMTEST_MEM (2G), VMTEST_SMP (2),
# VMTEST_TIMEOUT, VMTEST_DEBUG=1 (kernel messages), VMTEST_CACHE (/var/cache/jailer-vm),
# VMTEST_APPEND (extra kernel arguments), VMTEST_CMD='shell command' (instead of pytest).

VM_LIB=${BASH_SOURCE[0]}
REPO=$(cd "$(dirname "$VM_LIB")/.." && pwd)
PYTHON=$REPO/.venv/bin/python
CACHE=${VMTEST_CACHE:-/var/cache/jailer-vm}

vm_die() { echo "$VM_NAME: $*" >&2; exit 2; }

# Install the apt packages that are missing (idempotent; quiet when all are there).
vm_packages() {
  local need=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  echo "$VM_NAME: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
  } || vm_die "apt-get install ${need[*]} failed"
}

vm_setup() {
  [ "$(id -u)" -eq 0 ] || vm_die "must run as root (reads /boot, caches in $CACHE)"
  [ -x "$PYTHON" ] || vm_die "$PYTHON not found: run ./scripts/setup first"
  vm_packages qemu-system-x86 linux-image-amd64 cpio kmod busybox-static "$@"
  command -v qemu-system-x86_64 >/dev/null ||
    vm_die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
  KVER=${VMTEST_KVER:-$(ls /boot/vmlinuz-* 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -V | tail -n1)}
  [ -n "$KVER" ] || vm_die "no kernel in /boot (apt-get install linux-image-amd64)"
  [ -f "/boot/vmlinuz-$KVER" ] || vm_die "no /boot/vmlinuz-$KVER (installed: $(ls /boot))"
  [ -d "/lib/modules/$KVER" ] || vm_die "/lib/modules/$KVER missing (reinstall linux-image-$KVER)"
  mkdir -p "$CACHE"
  VMLINUX=$CACHE/vmlinux-$KVER
  INITRD=$CACHE/initrd-$KVER.cpio
  vm_vmlinux
  vm_initrd
}

# The guest would spend ~5 s of emulated time decompressing bzImage: boot the ELF inside it
# (qemu enters it through its PVH note). Find the compressed payload by magic and unpack it.
vm_vmlinux() {
  [ ! -s "$VMLINUX" ] || [ "/boot/vmlinuz-$KVER" -nt "$VMLINUX" ] || return 0
  "$PYTHON" - "/boot/vmlinuz-$KVER" "$VMLINUX.$$" <<'EOF' || vm_die "cannot extract vmlinux from /boot/vmlinuz-$KVER"
import lzma, subprocess, sys, zlib
blob = open(sys.argv[1], "rb").read()
unpack = {b"\xfd7zXZ\x00": lambda b: lzma.LZMADecompressor().decompress(b),  # trailing data ok
          b"\x1f\x8b\x08": lambda b: zlib.decompressobj(31).decompress(b),
          b"\x28\xb5\x2f\xfd": lambda b: subprocess.run(["zstd", "-dcq"], input=b,
                                                        capture_output=True).stdout}
for magic, fn in unpack.items():
    at = blob.find(magic)
    while at >= 0:
        try:
            elf = fn(blob[at:])
        except Exception:
            elf = b""
        if elf[:4] == b"\x7fELF":
            open(sys.argv[2], "wb").write(elf)
            sys.exit(0)
        at = blob.find(magic, at + 1)
sys.exit(1)
EOF
  mv "$VMLINUX.$$" "$VMLINUX"
}

# The initramfs holds a static busybox, the modules for a 9p + overlay root and loop devices (in
# dependency order, as modprobe resolves them) and /init, which assembles the root and hands over
# to the per-run stage2 script from the job share. Rebuilt when this file or the kernel changes.
vm_initrd() {
  if [ -s "$INITRD" ] && [ ! "$VM_LIB" -nt "$INITRD" ] && [ ! "/boot/vmlinuz-$KVER" -nt "$INITRD" ]; then
    return 0
  fi
  local T deps n=0 verb ko name out
  T=$(mktemp -d)
  # shellcheck disable=SC2064  # expand now: T is local
  trap "rm -rf '$T'" EXIT
  mkdir -p "$T"/{bin,dev,proc,sys,mnt/host,mnt/rw,newroot,mods}
  cp "$(command -v busybox)" "$T/bin/busybox"
  deps=$(for m in virtio_pci 9pnet_virtio 9p overlay loop; do
           modprobe -S "$KVER" --show-depends "$m" || exit 1
         done) || vm_die "kernel modules for a 9p root not found for $KVER"
  declare -A seen=()
  while read -r verb ko _; do  # "insmod /lib/modules/.../x.ko.xz" lines, dependencies first
    name=$(basename "$ko"); name=${name%%.ko*}
    [ "$verb" = insmod ] && [ -z "${seen[$name]:-}" ] || continue
    seen[$name]=1; n=$((n + 1)); out=$(printf '%s/mods/%02d-%s.ko' "$T" "$n" "$name")
    case "$ko" in
      *.ko.xz) xz -dc "$ko" >"$out" ;;
      *.ko.zst) zstd -qdc "$ko" >"$out" ;;
      *.ko.gz) gzip -dc "$ko" >"$out" ;;
      *) cp "$ko" "$out" ;;
    esac
  done <<<"$deps"
  cat >"$T/init" <<'EOF'
#!/bin/busybox sh
# stage 1 (initramfs): the root is the host's / (ro 9p) under a tmpfs overlay.
B=/bin/busybox
fail() { echo "vm guest: $*"; $B poweroff -f; }
$B mount -t proc proc /proc; $B mount -t sysfs sys /sys; $B mount -t devtmpfs dev /dev
for m in /mods/*.ko; do $B insmod "$m" || fail "insmod $m failed"; done
# virtio devices are probed asynchronously: wait (up to 5 s) for both 9p shares
i=0
while [ "$(ls /sys/bus/virtio/drivers/9pnet_virtio 2>/dev/null | grep -c virtio)" -lt 2 ]; do
  i=$((i + 1)); [ $i -lt 500 ] || fail "9p devices did not appear"; $B usleep 10000
done
opts=trans=virtio,version=9p2000.L,msize=512000
$B mount -t 9p -o ro,cache=loose,$opts host /mnt/host || fail "mounting the host root failed"
$B mount -t tmpfs -o mode=755 rw /mnt/rw && $B mkdir /mnt/rw/upper /mnt/rw/work
$B mount -t overlay -o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work \
  root /newroot || fail "overlay mount failed"
$B mkdir -p /newroot/.vmtest-job
$B mount -t 9p -o $opts job /newroot/.vmtest-job || fail "mounting the job share failed"
$B umount /proc /sys /dev
exec $B switch_root /newroot /bin/busybox sh /.vmtest-job/stage2
EOF
  chmod 755 "$T/init"
  (cd "$T" && find . | cpio -o -H newc --quiet) >"$INITRD.$$"
  mv "$INITRD.$$" "$INITRD"
  rm -rf "$T"
  trap - EXIT
}

# The job share: `cmd` runs pytest ARGS (or VMTEST_CMD) in the repo; the caller adds stage2.
vm_job() {
  JOB=$(mktemp -d /tmp/vm-test.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$JOB'" EXIT
  {
    printf 'cd %q\n' "$REPO"
    if [ -n "${VMTEST_CMD:-}" ]; then
      printf '%s\n' "$VMTEST_CMD"
    else
      printf 'exec %q -m pytest' "$PYTHON"
      printf ' %q' "$@"
      echo
    fi
  } >"$JOB/cmd"
}

# vm_boot TIMEOUT [KERNEL ARGS]: boot, then exit with the guest's status (255 without one).
vm_boot() {
  local tmo=$1 append qrc start us secs rc
  shift
  append="console=ttyS0 panic=-1 cgroup_no_v1=all rdinit=/init $* ${VMTEST_APPEND:-}"
  if [ -n "${VMTEST_DEBUG:-}" ]; then append+=" loglevel=7 VMTEST_DEBUG=1"; else append+=" quiet loglevel=1"; fi
  local qemu=(qemu-system-x86_64 -M pc -accel tcg,thread=multi -smp "${VMTEST_SMP:-2}" -m "${VMTEST_MEM:-2G}"
              -nodefaults -no-user-config -display none -vga none -nic none -no-reboot
              -chardev stdio,id=console,signal=off -serial chardev:console
              -kernel "$VMLINUX" -initrd "$INITRD" -append "$append"
              -fsdev local,id=host,path=/,security_model=none,multidevs=remap,readonly=on
              -device virtio-9p-pci,fsdev=host,mount_tag=host
              -fsdev "local,id=job,path=$JOB,security_model=none,multidevs=remap"
              -device virtio-9p-pci,fsdev=job,mount_tag=job)
  start=${EPOCHREALTIME/./}
  set +e
  timeout --foreground -k 5 "$tmo" "${qemu[@]}" </dev/null
  qrc=$?
  set -e
  us=$((${EPOCHREALTIME/./} - start)); secs=$((us / 1000000)).$(printf %01d $((us / 100000 % 10)))
  if [ -s "$JOB/rc" ]; then
    rc=$(cat "$JOB/rc")
    echo "$VM_NAME: the guest's command exited $rc; the VM ran ${secs} s" >&2
    exit "$rc"
  fi
  [ $qrc -eq 124 ] && echo "$VM_NAME: the guest timed out after $tmo s" >&2
  echo "$VM_NAME: the guest reported no exit status (qemu exit $qrc); rerun with VMTEST_DEBUG=1" >&2
  exit 255
}
