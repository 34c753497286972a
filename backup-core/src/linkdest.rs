//! Link-dest planning: which earlier version a new copy hardlinks its unchanged files against.

use crate::retention::WeekVersion;
use crate::week::IsoWeek;

/// The newest *complete* version of (`namespace`, `pvc`) from a week before `current`, or `None`.
///
/// An incomplete version may hold half a copy; linking against it would make rsync transfer the
/// missing half again at best, and at worst seed this week with a partial tree that looks whole.
/// A version of `current` itself or of a later week (clock skew, `--now` replays) is never chosen.
pub fn plan_link_dest<'a>(
    versions: &'a [WeekVersion],
    namespace: &str,
    pvc: &str,
    current: IsoWeek,
) -> Option<&'a WeekVersion> {
    versions
        .iter()
        .filter(|v| v.namespace == namespace && v.pvc == pvc)
        .filter(|v| v.is_complete() && v.week < current)
        .max_by_key(|v| v.week)
}
