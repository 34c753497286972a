#!/bin/bash
# Runs inside the systemd VM (scripts/test-systemd-vm) as a oneshot after multi-user.target:
# the package installed with dpkg -i, a config edited as the package route of docs/install.md says, the units
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
for u in lvm-pvc-snapshot daily-backup offsite-sync-backup backupctl-verify backupctl-drill backupctl-verify-offsite nfs-change-tracker; do
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

step "the config, edited as the package route of docs/install.md says"
cfg=/etc/homelab-backup/config.toml
# the PV map comes from "the API" (a kubectl that answers from a file) and is cached where the
# units can write it (CacheDirectory=, /var/cache/homelab-backup)
cat >/usr/local/bin/kubectl <<'KUBECTL'
#!/bin/sh
[ -e /root/api-down ] && { echo "Unable to connect to the server: dial tcp 10.0.0.1:6443: i/o timeout" >&2; exit 1; }
case " $* " in
*" pv "*) cat <<'JSON' ;;
{"kind":"List","items":[
 {"spec":{"claimRef":{"namespace":"vaultwarden","name":"vaultwarden-data"},"csi":{"volumeHandle":"local-lvm:vm-100-pvc-a"}}},
 {"spec":{"claimRef":{"namespace":"nextcloud","name":"nextcloud-data"},"csi":{"volumeHandle":"local-lvm:vm-101-pvc-b"}}}]}
JSON
*) echo '{"kind":"List","items":[]}' ;;
esac
KUBECTL
chmod 755 /usr/local/bin/kubectl
grep -q '^resolver = "kubectl"' $cfg || fail "the example config does not use the kubectl resolver"
sed -i 's|^paths = \[.*|paths = ["/etc/systemd/system"]|' $cfg
# an offsite destination and an NFS-like tree outside every default path
cat >>$cfg <<'CFG'
[offsite]
destination = "/srv/offsite"
[[offsite.tree]]
source = "/srv/nfs"
name = "nfs"
[[offsite.repository]]
repository = "/srv/restic"
password-file = "/etc/homelab-backup/restic.pass"
CFG
printf 'a vm password\n' >/etc/homelab-backup/restic.pass && chmod 600 /etc/homelab-backup/restic.pass
mkdir -p /var/lib/prometheus/node-exporter /srv/offsite /srv/nfs
echo "hello" >/srv/nfs/hello.txt
run backupctl config check
# the package's generator writes the drop-ins with the config's ReadWritePaths
run systemctl daemon-reload
systemctl cat offsite-sync-backup.service | grep -q 'ReadWritePaths=-/srv/offsite' \
    || fail "no drop-in with the offsite destination: $(systemctl cat offsite-sync-backup.service | tail -5)"

step "the guest's network (QEMU user mode) and a Healthchecks URL on the host's listener"
iface=$(ls /sys/class/net | grep -v '^lo$' | head -1)
[[ -n $iface ]] || fail "no network interface in the guest"
ip link set "$iface" up && ip addr replace 10.0.2.15/24 dev "$iface" && ip route replace default via 10.0.2.2 \
    || fail "could not configure $iface"
port=$(cat /mnt/host/heartbeat.port)
printf '# the ping-key URL of a Healthchecks project (here: the listener on the host)\nhttp://10.0.2.2:%s/ping/vm-key\n' "$port" \
    >/etc/homelab-backup/healthchecks.url
chmod 600 /etc/homelab-backup/healthchecks.url
cat >>$cfg <<'CFG'
[notify]
healthchecks-url-file = "/etc/homelab-backup/healthchecks.url"
timeout-seconds = 10
CFG
run backupctl config check
start_unit lvm-pvc-snapshot.service 300
journalctl -u lvm-pvc-snapshot.service -o cat --no-pager | grep -q "notification not delivered" \
    && fail "the unit could not send its heartbeat: $(journalctl -u lvm-pvc-snapshot.service -o cat --no-pager | grep notification)"
lvs pve | grep -q -- '-snap-' || fail "no snapshot was taken"
test -s /var/cache/homelab-backup/pv-cache.json || fail "the PV map was not cached in /var/cache/homelab-backup"
journalctl -u lvm-pvc-snapshot.service -o cat --no-pager | grep -q "could not cache" && fail "the unit could not write the PV cache"
start_unit daily-backup.service 600
W=$(ls /mnt/backup/pvc-data | head -1)
[[ -n $W ]] || fail "no week folder"
test -f /mnt/backup/pvc-data/$W/.complete/vaultwarden/vaultwarden-data || fail "vaultwarden-data is not complete"
grep -q "vm-100-pvc-a file 2" /mnt/backup/pvc-data/$W/vaultwarden/vaultwarden-data/file-2.txt || fail "the copy lacks file-2"
grep -q 'daily_backup_last_run_success{job="daily-backup"} 1' /var/lib/prometheus/node-exporter/daily-backup.prom \
    || fail "daily-backup metrics: $(cat /var/lib/prometheus/node-exporter/daily-backup.prom 2>&1 | head -5)"
step "a second daily-backup on the same snapshots: the API down, and without ProtectProc/ProtectControlGroups"
# the cache written by the first runs resolves the volumes; and /run stays writable for what the
# units declare (tmpfiles.d) even without the two directives that used to make it so by accident
touch /root/api-down
mkdir -p /run/systemd/system/daily-backup.service.d
printf '[Service]\nProtectProc=default\nProtectControlGroups=no\n' >/run/systemd/system/daily-backup.service.d/zz-test.conf
run systemctl daemon-reload
start_unit daily-backup.service 600
journalctl -u daily-backup.service -o cat --no-pager | grep -q "using the PV map cached in /var/cache/homelab-backup/pv-cache.json" \
    || fail "the second run did not use the cached PV map: $(journalctl -u daily-backup.service -o cat --no-pager | tail -15)"
grep -q 'daily_backup_last_run_success{job="daily-backup"} 1' /var/lib/prometheus/node-exporter/daily-backup.prom \
    || fail "the second daily-backup did not succeed: $(grep -v '^#' /var/lib/prometheus/node-exporter/daily-backup.prom | head -8)"
rm -rf /root/api-down /run/systemd/system/daily-backup.service.d
run systemctl daemon-reload
grep -qs /run/homelab-backup /proc/mounts && fail "a snapshot was left mounted"
start_unit backupctl-verify.service 600
grep -q 'backup_verify_last_run_success{job="backupctl-verify"} 1' /var/lib/prometheus/node-exporter/backupctl-verify.prom \
    || fail "verify metrics"

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
# the encrypted tier, under the unit's sandbox: a snapshot per PVC, read by the stock restic
RESTIC_REPOSITORY=/srv/restic RESTIC_PASSWORD_FILE=/etc/homelab-backup/restic.pass \
    restic snapshots --json >/root/tier.json 2>/root/tier.err || fail "restic snapshots: $(cat /root/tier.err)"
grep -q 'pvc=vaultwarden-data' /root/tier.json || fail "no tier snapshot of vaultwarden-data: $(cat /root/tier.json | head -c 600)"
grep -q 'offsite_tier_last_success_timestamp' /var/lib/prometheus/node-exporter/offsite-sync-backup.prom \
    || fail "no tier metric: $(journalctl -u offsite-sync-backup.service -o cat --no-pager | tail -15)"
test -d /var/cache/homelab-backup/restic || fail "restic kept no cache in the unit's CacheDirectory"
# the drill, after the tier has its snapshots: the sample from the disk and from the tier
start_unit backupctl-drill.service 600
grep -q 'backup_restore_drill_last_run_success{job="backupctl-drill"} 1' /var/lib/prometheus/node-exporter/backupctl-drill.prom \
    || fail "drill metrics"
journalctl -u backupctl-drill.service -o cat --no-pager | grep -q 'tier tier: the same sample restored by restic' \
    || fail "the drill did not restore from the tier: $(journalctl -u backupctl-drill.service -o cat --no-pager | tail -8)"
echo "changed" >/srv/nfs/hello.txt
echo "new" >/srv/nfs/new.txt
sleep 2
start_unit offsite-sync-backup.service 600
grep -q changed /srv/offsite/nfs/hello.txt || fail "the change did not reach offsite"
test -f /srv/offsite/nfs/new.txt || fail "the new file did not reach offsite"
grep -q 'offsite_backup_sync_last_run_success{job="offsite-sync-backup"} 1' /var/lib/prometheus/node-exporter/offsite-sync-backup.prom \
    || fail "offsite metrics"
# the offsite copy read back by its own unit (monthly timer): against the records that travelled
start_unit backupctl-verify-offsite.service 600
grep -q 'backup_verify_last_run_success{job="backupctl-verify-offsite"} 1' /var/lib/prometheus/node-exporter/backupctl-verify-offsite.prom \
    || fail "verify --offsite metrics: $(journalctl -u backupctl-verify-offsite.service -o cat --no-pager | tail -8)"
run systemctl stop nfs-change-tracker.service

step "paths outside every default: backup root (with a space), mount, lock, textfile and cache folders"
run umount /mnt/backup
mkdir -p "/srv/backup disk" && run mount /dev/pve/backup "/srv/backup disk"
sed -i 's|^backup-root = .*|backup-root = "/srv/backup disk"|' $cfg
sed -i 's|^mount-dir = .*|mount-dir = "/srv/hb-mnt"|' $cfg
sed -i 's|^textfile-dir = .*|textfile-dir = "/srv/metrics"|' $cfg
sed -i 's|^\[snapshots\]|[snapshots]\nlock-file = "/srv/hb-lock/snapshots.lock"|' $cfg
sed -i 's|^\[kubernetes\]|[kubernetes]\ncache-file = "/srv/hb-cache/pv-cache.json"|' $cfg
mkdir -p /srv/metrics
run backupctl config check
run systemctl daemon-reload
start_unit lvm-pvc-snapshot.service 300
start_unit daily-backup.service 600
test -s /srv/hb-cache/pv-cache.json || fail "no PV cache in /srv/hb-cache"
test -d /srv/hb-lock || fail "no lock folder /srv/hb-lock"
grep -q 'daily_backup_last_run_success{job="daily-backup"} 1' /srv/metrics/daily-backup.prom \
    || fail "no daily-backup metrics in /srv/metrics"
test -f "/srv/backup disk/pvc-data/$W/.complete/vaultwarden/vaultwarden-data" || fail "the moved backup root lost the week"
grep -qs /srv/hb-mnt /proc/mounts && fail "a snapshot was left mounted under /srv/hb-mnt"
start_unit backupctl-verify.service 600

step "timers: next elapse, and a Persistent=true catch-up"
run systemctl enable --now lvm-pvc-snapshot.timer daily-backup.timer offsite-sync-backup.timer \
    backupctl-verify.timer backupctl-drill.timer backupctl-verify-offsite.timer
for t in lvm-pvc-snapshot:03:00 daily-backup:05:00 offsite-sync-backup:06:00 backupctl-verify:08:00 backupctl-drill:08:00 backupctl-verify-offsite:09:00; do
    name=${t%%:*} at=${t#*:}
    next=$(systemctl show -p NextElapseUSecRealtime --value $name.timer)
    [[ $next == *" $at:00"* ]] || fail "$name.timer next elapse is '$next', not at $at"
    echo "@@TIMER $name.timer next $next"
done
[[ $(systemctl show -p NextElapseUSecRealtime --value backupctl-verify.timer) == Sat* ]] || fail "verify is not on a Saturday"
[[ $(systemctl show -p NextElapseUSecRealtime --value backupctl-drill.timer) == Sun* ]] || fail "drill is not on a Sunday"
# the host was off at 05:00: with the stamp three days old, starting the timer runs the job now
before=$(systemctl show -p ExecMainStartTimestampMonotonic --value daily-backup.service)
run systemctl stop daily-backup.timer
touch -d '3 days ago' /var/lib/systemd/timers/stamp-daily-backup.timer
run systemctl start daily-backup.timer
for i in $(seq 1 600); do
    now=$(systemctl show -p ExecMainStartTimestampMonotonic --value daily-backup.service)
    [[ $now != "$before" && $(systemctl show -p ActiveState --value daily-backup.service) == inactive ]] && break
    sleep 1
done
[[ $now != "$before" ]] || fail "no catch-up run of daily-backup.service after a missed 05:00 (Persistent=true)"
[[ $(systemctl show -p Result --value daily-backup.service) == success ]] \
    || fail "the catch-up run failed: $(journalctl -u daily-backup.service -o cat --no-pager | tail -15)"
echo "@@CATCHUP daily-backup.service ran ${i}s after its timer started"

step "dpkg --purge"
run dpkg --purge homelab-backup
for f in /usr/bin/daily-backup /lib/systemd/system/daily-backup.service /etc/homelab-backup/config.toml \
    /usr/lib/modules-load.d/homelab-backup.conf /usr/lib/systemd/system-generators/homelab-backup-paths \
    /usr/lib/tmpfiles.d/homelab-backup.conf; do
    test -e $f && fail "$f is still there after dpkg --purge"
done
# the operator's enabled timers leave no symlink (deb-systemd-helper purge), no mask, no cache
left=$(find /etc/systemd/system -lname '*homelab*' -o -name 'daily-backup*' -o -name 'lvm-pvc-snapshot*' \
    -o -name 'backupctl-*' -o -name 'offsite-sync-backup*' -o -name 'nfs-change-tracker*' 2>/dev/null)
[[ -z $left ]] || fail "left behind after dpkg --purge: $left"
test -e /var/cache/homelab-backup && fail "/var/cache/homelab-backup is still there after dpkg --purge"
echo "@@ALL_OK"
