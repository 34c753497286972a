#!/bin/sh
# Runs inside the LVM VM (busybox sh). Prints @@STEP before each step, @@FAIL and exits 1 on the
# first failure, @@ALL_OK at the end.
export PATH=/mnt/host:/usr/sbin:/usr/bin LVM_SUPPRESS_FD_WARNINGS=1
step() { echo "@@STEP $*"; }
fail() { echo "@@FAIL $*"; exit 1; }
run() { "$@" || fail "exit $?: $*"; }
check() { desc=$1; shift; "$@" || fail "$desc"; }

step "thin pool and three PVC volumes with ext4 and files"
run pvcreate -q /dev/vda
run vgcreate -q pve /dev/vda
run lvcreate -q -L 400M -T pve/data
for lv in vm-100-pvc-a vm-101-pvc-b vm-102-pvc-c; do
    run lvcreate -q -V 64M -T pve/data -n $lv
    run mkfs.ext4 -q /dev/pve/$lv
    mkdir -p /live/$lv && run mount -t ext4 /dev/pve/$lv /live/$lv
    for i in 1 2 3; do echo "$lv file $i" > /live/$lv/file-$i.txt; done
    mkdir -p /live/$lv/sub && echo "nested" > /live/$lv/sub/nested.txt
done
run lvcreate -q -L 128M -n backup pve
run mkfs.ext4 -q /dev/pve/backup
mkdir -p /mnt/backup && run mount -t ext4 /dev/pve/backup /mnt/backup

mkdir -p /etc/homelab-backup
cat > /etc/homelab-backup/config.toml <<CFG
backup-root = "/mnt/backup"
[snapshots]
backend = "lvm"
volume-group = "pve"
thin-pool = "data"
lv-pattern = "vm-*-pvc-*"
exclude-namespaces = ["dbaas"]
keep-days = 7
min-pool-free-percent = 15
[kubernetes]
resolver = "kubectl"
cache-file = "/mnt/host/pv-cache.json"
[[kubernetes.volume]]
lv = "vm-102-pvc-c"
namespace = "dbaas"
pvc = "pg-data"
[pvc-backup]
weekly-versions = 4
mount-dir = "/run/homelab-backup/mnt"
[pve-config]
paths = ["/etc/homelab-backup"]
[metrics]
textfile-dir = "/mnt/host/metrics"
CFG
# the PV map the kubectl shim answers: a and b are PVCs; c comes from the static map (dbaas)
cat > /mnt/host/pv.json <<PV
{"kind":"List","items":[
 {"spec":{"claimRef":{"namespace":"vaultwarden","name":"vaultwarden-data"},"csi":{"volumeHandle":"homelab/pve/local-lvm:vm-100-pvc-a"}}},
 {"spec":{"claimRef":{"namespace":"nextcloud","name":"nextcloud-data"},"csi":{"volumeHandle":"homelab/pve/local-lvm:vm-101-pvc-b"}}}
]}
PV

step "lvm-pvc-snapshot create (volumes mounted: lvm freezes them)"
run lvm-pvc-snapshot --now 2026-01-05T03:00:00Z create
lvs pve
check "a and b were snapshotted" lvs pve/vm-100-pvc-a-snap-20260105030000 pve/vm-101-pvc-b-snap-20260105030000
lvs pve/vm-102-pvc-c-snap-20260105030000 >/dev/null 2>&1 && fail "the excluded dbaas volume was snapshotted"
check "the PV map was cached" test -s /mnt/host/pv-cache.json
grep -q "lvm_thin_pool_free_percent" /mnt/host/metrics/lvm-pvc-snapshot.prom || fail "no pool metric"

step "later writes to the live volumes"
for lv in vm-100-pvc-a vm-101-pvc-b; do echo "written after the snapshot" > /live/$lv/after-snapshot.txt; done
echo "changed after the snapshot" > /live/vm-100-pvc-a/file-1.txt
sync

step "daily-backup with backend lvm"
run daily-backup --now 2026-01-05T05:00:00Z
B=/mnt/backup/pvc-data/2026-02
check "copy of a holds the snapshot's files" test -f $B/vaultwarden/vaultwarden-data/file-2.txt
check "copy of a has the nested file" test -f $B/vaultwarden/vaultwarden-data/sub/nested.txt
grep -q "vm-100-pvc-a file 1" $B/vaultwarden/vaultwarden-data/file-1.txt || fail "copy of a has the later content of file-1"
test -e $B/vaultwarden/vaultwarden-data/after-snapshot.txt && fail "copy of a holds a file written after the snapshot"
check "copy of b" test -f $B/nextcloud/nextcloud-data/file-3.txt
test -e $B/dbaas && fail "the excluded namespace was copied"
check "a is complete" test -f $B/.complete/vaultwarden/vaultwarden-data
grep -q "run/homelab-backup" /proc/mounts && fail "a snapshot was left mounted"
lvs --noheadings -o lv_name,lv_active pve | grep -- "-snap-" | grep -q active && fail "a snapshot was left active"
grep -q "daily_backup_last_run_success 1" /mnt/host/metrics/daily-backup.prom || fail "daily-backup metrics"

step "a second daily-backup on the same snapshots (already read-only: lvchange --permission r failed on them)"
run daily-backup --now 2026-01-05T06:00:00Z
check "a is still complete" test -f $B/.complete/vaultwarden/vaultwarden-data
grep -q "vm-100-pvc-a file 1" $B/vaultwarden/vaultwarden-data/file-1.txt || fail "the rerun changed a's copy"
grep -q "run/homelab-backup" /proc/mounts && fail "a snapshot was left mounted by the rerun"
grep -q "daily_backup_last_run_success 1" /mnt/host/metrics/daily-backup.prom || fail "daily-backup rerun metrics"

step "restore vm-100-pvc-a from its snapshot (the kubelet would unmount it first)"
run umount /live/vm-100-pvc-a
run lvm-pvc-snapshot --now 2026-01-05T10:00:00Z restore vm-100-pvc-a vm-100-pvc-a-snap-20260105030000 --dry-run
run lvm-pvc-snapshot --now 2026-01-05T10:00:00Z restore vm-100-pvc-a vm-100-pvc-a-snap-20260105030000
run mount -t ext4 /dev/pve/vm-100-pvc-a /live/vm-100-pvc-a
grep -q "vm-100-pvc-a file 1" /live/vm-100-pvc-a/file-1.txt || fail "restored volume has the later content"
test -e /live/vm-100-pvc-a/after-snapshot.txt && fail "restored volume holds a file written after the snapshot"
check "the old live volume is kept aside" lvs pve/vm-100-pvc-a-pre-restore-20260105100000
check "the snapshot stays" lvs pve/vm-100-pvc-a-snap-20260105030000
grep -q "scale deployment/vaultwarden -n vaultwarden --replicas=0" /mnt/host/kubectl.log || fail "no scale down"
grep -q "wait --for=delete pod -n vaultwarden -l app=vaultwarden" /mnt/host/kubectl.log || fail "no wait for pods"
grep -q "scale deployment/vaultwarden -n vaultwarden --replicas=1" /mnt/host/kubectl.log || fail "no scale up"
lvm-pvc-snapshot --now 2026-01-05T11:00:00Z restore vm-100-pvc-a vm-101-pvc-b-snap-20260105030000 && fail "a restore from another volume's snapshot was accepted"

step "the restored volume is a source volume again: snapshotted the next day"
run lvm-pvc-snapshot --now 2026-01-06T03:00:00Z create
check "restored volume snapshotted" lvs pve/vm-100-pvc-a-snap-20260106030000

step "prune at a later --now"
run lvm-pvc-snapshot --now 2026-01-14T03:00:00Z create
run lvm-pvc-snapshot --now 2026-01-15T04:00:00Z prune
lvs pve
lvs pve/vm-100-pvc-a-snap-20260105030000 >/dev/null 2>&1 && fail "an expired snapshot survived prune"
lvs pve/vm-100-pvc-a-pre-restore-20260105100000 >/dev/null 2>&1 && fail "an expired pre-restore volume survived prune"
check "the newest snapshot of each volume stays" lvs pve/vm-100-pvc-a-snap-20260114030000 pve/vm-101-pvc-b-snap-20260114030000
check "the live volumes stay" lvs pve/vm-100-pvc-a pve/vm-101-pvc-b pve/vm-102-pvc-c

step "backupctl verify and status on the real backup LV"
run backupctl --now 2026-01-15T04:30:00Z verify
backupctl --now 2026-01-15T04:30:00Z status > /mnt/host/status.txt; echo "status exit $?" >> /mnt/host/status.txt

step "backupctl restore pvc --into-volume: a live volume back to its weekly version"
echo "garbage" > /live/vm-100-pvc-a/file-2.txt
echo "not in the version" > /live/vm-100-pvc-a/extra.txt
sync
run umount /live/vm-100-pvc-a
: > /mnt/host/kubectl.log
run backupctl --now 2026-01-15T05:00:00Z restore pvc --pvc vaultwarden/vaultwarden-data --week 2026-02 --into-volume --dry-run
run backupctl --now 2026-01-15T05:00:00Z restore pvc --pvc vaultwarden/vaultwarden-data --week 2026-02 --into-volume
check "the safety snapshot of the live volume" lvs pve/vm-100-pvc-a-pre-restore-20260115050000
grep -q "run/homelab-backup" /proc/mounts && fail "the live volume was left mounted"
grep -q "scale deployment/vaultwarden -n vaultwarden --replicas=0" /mnt/host/kubectl.log || fail "no scale down"
grep -q "scale deployment/vaultwarden -n vaultwarden --replicas=1" /mnt/host/kubectl.log || fail "no scale up"
run mount -t ext4 /dev/pve/vm-100-pvc-a /live/vm-100-pvc-a
grep -q "vm-100-pvc-a file 2" /live/vm-100-pvc-a/file-2.txt || fail "file-2 was not restored"
test -e /live/vm-100-pvc-a/extra.txt && fail "a file the version does not hold survived the restore"
check "the nested file is back" test -f /live/vm-100-pvc-a/sub/nested.txt

step "the runbooks' LVM blocks as written (docs/runbooks, extracted by scripts/runbook-blocks)"
# restore-lvm-snapshot on b, whose newest snapshot survived the prune; the kubelet would unmount it
run umount /live/vm-101-pvc-b
LV=vm-101-pvc-b SNAPSHOT=vm-101-pvc-b-snap-20260114030000 sh -e /mnt/host/runbook-lvm-snapshot.sh \
    || fail "runbook restore-lvm-snapshot"
lvs pve | grep -q "vm-101-pvc-b-pre-restore-" || fail "runbook restore-lvm-snapshot: no volume set aside"
# restore-pvc-from-backup's --into-volume on b: its weekly version back into the live volume
run mount -t ext4 /dev/pve/vm-101-pvc-b /live/vm-101-pvc-b
echo "not in the version" > /live/vm-101-pvc-b/extra.txt
run umount /live/vm-101-pvc-b
PVC=nextcloud/nextcloud-data sh -e /mnt/host/runbook-into-volume.sh || fail "runbook restore-pvc-from-backup (--into-volume)"
run mount -t ext4 /dev/pve/vm-101-pvc-b /live/vm-101-pvc-b
test -e /live/vm-101-pvc-b/extra.txt && fail "runbook --into-volume: a file the version does not hold survived"
check "runbook --into-volume: b's files are back" test -f /live/vm-101-pvc-b/file-3.txt

echo "@@ALL_OK"
