//! LVM command lines as data, built by named constructors.

use backup_core::Invocation;

use crate::lvs::LVS_FIELDS;

/// The LVM tag a restored volume carries: it is a thin snapshot of a snapshot (so it has an
/// origin), but it is the live PVC now and must be listed, snapshotted and backed up as one.
pub const RESTORED_TAG: &str = "homelab-backup.restored";

fn lv(vg: &str, name: &str) -> String {
    format!("{vg}/{name}")
}

/// Every LV of `vg` with the fields [`crate::parse_lvs`] reads, sizes in bare bytes.
pub fn list(vg: &str) -> Invocation {
    Invocation::new(
        "lvs",
        [
            "--reportformat",
            "json",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            LVS_FIELDS,
            vg,
        ],
    )
    .read_only()
}

/// A thin snapshot of `vg/origin` named `name` (it gets the activation-skip flag).
pub fn thin_snapshot(vg: &str, origin: &str, name: &str) -> Invocation {
    Invocation::new("lvcreate", ["--snapshot", "--name", name, &lv(vg, origin)])
}

/// A writable thin snapshot of `vg/snapshot` that becomes the live volume `name` after a restore:
/// no activation-skip flag (`-kn`), tagged [`RESTORED_TAG`].
pub fn restored_volume(vg: &str, snapshot: &str, name: &str) -> Invocation {
    Invocation::new(
        "lvcreate",
        [
            "--snapshot",
            "--setactivationskip",
            "n",
            "--addtag",
            RESTORED_TAG,
            "--name",
            name,
            &lv(vg, snapshot),
        ],
    )
}

/// Makes an LV read-only (before activating a snapshot for a backup).
pub fn set_read_only(vg: &str, name: &str) -> Invocation {
    Invocation::new("lvchange", ["--permission", "r", &lv(vg, name)])
}

/// Activates an LV even when it carries the activation-skip flag: a plain `-ay` of a thin
/// snapshot exits 0 and activates nothing.
pub fn activate_ignoring_skip(vg: &str, name: &str) -> Invocation {
    Invocation::new(
        "lvchange",
        ["--activate", "y", "--ignoreactivationskip", &lv(vg, name)],
    )
}

/// Activates an LV.
pub fn activate(vg: &str, name: &str) -> Invocation {
    Invocation::new("lvchange", ["--activate", "y", &lv(vg, name)])
}

/// Deactivates an LV.
pub fn deactivate(vg: &str, name: &str) -> Invocation {
    Invocation::new("lvchange", ["--activate", "n", &lv(vg, name)])
}

/// Removes an LV without asking.
pub fn remove(vg: &str, name: &str) -> Invocation {
    Invocation::new("lvremove", ["--yes", &lv(vg, name)])
}

/// Renames an LV.
pub fn rename(vg: &str, from: &str, to: &str) -> Invocation {
    Invocation::new("lvrename", [vg, from, to])
}
