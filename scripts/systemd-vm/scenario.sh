#!/bin/bash
# Runs inside the systemd VM (scripts/test-systemd-vm) as a oneshot after multi-user.target:
# the package installed with dpkg -i, a config edited as README's package route says, the units
# started with systemctl, each checked for Result=success within a bound and for what it leaves.
# Prints @@STEP lines, @@FAIL <why> (with the unit's journal) or @@ALL_OK.
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
step() { echo "@@STEP $*"; }
fail() { echo "@@FAIL $*"; exit 1; }
run() { "$@" || fail "exit $?: $*"; }

# starts a unit, bounded; fails with its result and journal unless it succeeded
start_unit() {
    local unit=$1 bound=$2
    step "systemctl start $unit (bound ${bound}s)"
    timeout "$bound" systemctl start "$unit"
    local rc=$?
    local result
    result=$(systemctl show -p Result --value "$unit")
    if [[ $rc != 0 || $result != success ]]; then
        echo "--- journal of $unit"
        journalctl -u "$unit" -o cat --no-pager | tail -40
        [[ $rc == 124 ]] && fail "$unit did not finish within ${bound}s (Result=$result)"
        fail "$unit: systemctl start exit $rc, Result=$result"
    fi
}

step "dpkg -i the package"
rm -rf /run/homelab-backup /run/lock/homelab-backup
run dpkg -i /mnt/host/homelab-backup.deb
# what the units write under /run is declared (tmpfiles.d, created by the postinst), not left
# to /run happening to be writable inside them
for d in /run/homelab-backup /run/lock/homelab-backup; do
    test -d $d || fail "$d was not created at install (tmpfiles.d + postinst)"
done

step "systemd-analyze security, online"
for u in lvm-pvc-snapshot daily-backup offsite-sync-backup backupctl-verify backupctl-drill nfs-change-tracker; do
    score=$(systemd-analyze security --no-pager $u.service 2>/dev/null | awk '/Overall exposure level/ {print $(NF-2), $(NF-1)}')
    [[ -n $score ]] || fail "no security score for $u.service"
    echo "@@SCORE $u $score"
done

step "LVM: a thin pool and two PVC volumes with files"
run pvcreate -q /dev/vdb
run vgcreate -q pve /dev/vdb
run lvcreate -q -L 600M -T pve/data
for lv in vm-100-pvc-a vm-101-pvc-b; do
    run lvcreate -q -V 64M -T pve/data -n $lv
    run mkfs.ext4 -q /dev/pve/$lv
    mkdir -p /live/$lv && run mount /dev/pve/$lv /live/$lv
    for i in 1 2 3; do echo "$lv file $i" >/live/$lv/file-$i.txt; done
done
sync
run lvcreate -q -V 200M -T pve/data -n backup
run mkfs.ext4 -q /dev/pve/backup
mkdir -p /mnt/backup && run mount /dev/pve/backup /mnt/backup

step "the config, edited as README's package route says"
cfg=/etc/homelab-backup/config.toml
sed -i 's/^resolver = "kubectl".*/resolver = "static"/' $cfg
cat >>$cfg <<'CFG'
[[kubernetes.volume]]
lv = "vm-100-pvc-a"
namespace = "vaultwarden"
pvc = "vaultwarden-data"
[[kubernetes.volume]]
lv = "vm-101-pvc-b"
namespace = "nextcloud"
pvc = "nextcloud-data"
CFG
sed -i 's|^paths = \[.*|paths = ["/etc/systemd/system"]|' $cfg
# an offsite destination and an NFS-like tree outside every default path
cat >>$cfg <<'CFG'
[offsite]
destination = "/srv/offsite"
[[offsite.tree]]
source = "/srv/nfs"
name = "nfs"
CFG
mkdir -p /var/lib/prometheus/node-exporter /srv/offsite /srv/nfs
echo "hello" >/srv/nfs/hello.txt
run backupctl config check
# the package's generator writes the drop-ins with the config's ReadWritePaths
run systemctl daemon-reload
systemctl cat offsite-sync-backup.service | grep -q 'ReadWritePaths=-/srv/offsite' \
    || fail "no drop-in with the offsite destination: $(systemctl cat offsite-sync-backup.service | tail -5)"

start_unit lvm-pvc-snapshot.service 300
lvs pve | grep -q -- '-snap-' || fail "no snapshot was taken"
start_unit daily-backup.service 600
W=$(ls /mnt/backup/pvc-data | head -1)
[[ -n $W ]] || fail "no week folder"
test -f /mnt/backup/pvc-data/$W/.complete/vaultwarden/vaultwarden-data || fail "vaultwarden-data is not complete"
grep -q "vm-100-pvc-a file 2" /mnt/backup/pvc-data/$W/vaultwarden/vaultwarden-data/file-2.txt || fail "the copy lacks file-2"
grep -q 'daily_backup_last_run_success{job="daily-backup"} 1' /var/lib/prometheus/node-exporter/daily-backup.prom \
    || fail "daily-backup metrics: $(cat /var/lib/prometheus/node-exporter/daily-backup.prom 2>&1 | head -5)"
step "a second daily-backup on the same snapshots"
start_unit daily-backup.service 600
grep -qs /run/homelab-backup /proc/mounts && fail "a snapshot was left mounted"
start_unit backupctl-verify.service 600
grep -q 'backup_verify_last_run_success{job="backupctl-verify"} 1' /var/lib/prometheus/node-exporter/backupctl-verify.prom \
    || fail "verify metrics"
start_unit backupctl-drill.service 600
grep -q 'backup_restore_drill_last_run_success{job="backupctl-drill"} 1' /var/lib/prometheus/node-exporter/backupctl-drill.prom \
    || fail "drill metrics"

step "nfs-change-tracker and offsite-sync-backup"
run systemctl start nfs-change-tracker.service
for i in $(seq 1 60); do
    test -e /mnt/backup/.nfs-changes.log.nfs.root && break
    sleep 1
done
systemctl is-active -q nfs-change-tracker.service || {
    journalctl -u nfs-change-tracker.service -o cat --no-pager | tail -20
    fail "nfs-change-tracker is not running"
}
start_unit offsite-sync-backup.service 600
test -f /srv/offsite/pve-backup/pvc-data/$W/.complete/vaultwarden/vaultwarden-data || fail "step 1 did not send the week"
grep -q hello /srv/offsite/nfs/hello.txt || fail "the tree did not reach offsite"
echo "changed" >/srv/nfs/hello.txt
echo "new" >/srv/nfs/new.txt
sleep 2
start_unit offsite-sync-backup.service 600
grep -q changed /srv/offsite/nfs/hello.txt || fail "the change did not reach offsite"
test -f /srv/offsite/nfs/new.txt || fail "the new file did not reach offsite"
grep -q 'offsite_backup_sync_last_run_success{job="offsite-sync-backup"} 1' /var/lib/prometheus/node-exporter/offsite-sync-backup.prom \
    || fail "offsite metrics"
run systemctl stop nfs-change-tracker.service

step "timers"
run systemctl enable --now lvm-pvc-snapshot.timer daily-backup.timer backupctl-verify.timer
systemctl list-timers --all --no-pager | grep -q daily-backup.timer || fail "daily-backup.timer not listed"

step "dpkg --purge"
run dpkg --purge homelab-backup
for f in /usr/bin/daily-backup /lib/systemd/system/daily-backup.service /etc/homelab-backup/config.toml \
    /usr/lib/modules-load.d/homelab-backup.conf /usr/lib/systemd/system-generators/homelab-backup-paths \
    /usr/lib/tmpfiles.d/homelab-backup.conf; do
    test -e $f && fail "$f is still there after dpkg --purge"
done
echo "@@ALL_OK"
