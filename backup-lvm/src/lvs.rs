//! Reading `lvs --reportformat json`: a pure parser tested on captured output.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The fields every `lvs` call asks for, in this order.
pub const LVS_FIELDS: &str =
    "lv_name,vg_name,pool_lv,origin,lv_time,lv_attr,data_percent,metadata_percent,lv_size,lv_tags";

/// One logical volume as `lvs` reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Lv {
    /// Name; hidden LVs (`[data_tdata]`) keep their brackets.
    pub name: String,
    /// Volume group.
    pub vg: String,
    /// Thin pool, for thin LVs.
    pub pool: Option<String>,
    /// Origin, for snapshots.
    pub origin: Option<String>,
    /// Creation time.
    pub time: Option<DateTime<Utc>>,
    /// The 10-character attribute string (`Vwi-a-tz--`).
    pub attr: String,
    /// Data use of a thin LV or pool, percent.
    pub data_percent: Option<f64>,
    /// Metadata use of a thin pool, percent.
    pub metadata_percent: Option<f64>,
    /// Size in bytes.
    pub size_bytes: Option<u64>,
    /// LVM tags.
    pub tags: Vec<String>,
}

impl Lv {
    /// Hidden LVs (`[data_tmeta]`): internal to LVM, never volumes.
    pub fn is_hidden(&self) -> bool {
        self.name.starts_with('[')
    }

    /// A thin volume (attribute `V`), as opposed to the pool (`t`) or a plain LV.
    pub fn is_thin_volume(&self) -> bool {
        self.attr.starts_with('V')
    }

    /// Read-only (attribute 2 is `r`): a snapshot an earlier backup run already made so.
    pub fn is_read_only(&self) -> bool {
        self.attr.chars().nth(1) == Some('r')
    }

    /// The activation-skip flag (attribute 10 is `k`): thin snapshots carry it.
    pub fn skips_activation(&self) -> bool {
        self.attr.chars().nth(9) == Some('k')
    }
}

#[derive(Deserialize)]
struct Report {
    report: Vec<ReportSection>,
}

#[derive(Deserialize)]
struct ReportSection {
    #[serde(default)]
    lv: Vec<std::collections::BTreeMap<String, String>>,
}

/// Parses `lvs --reportformat json` output. Every value is a string; `""` means "does not
/// apply"; sizes may carry a `B` suffix (without `--nosuffix`); `lv_time` is
/// `YYYY-MM-DD HH:MM:SS +ZZZZ`.
///
/// # Errors
/// [`Error::Lvs`] naming the LV and field at fault: not JSON, a missing field, a percentage or
/// size that is not a number, a time that does not parse.
pub fn parse_lvs(json: &[u8]) -> Result<Vec<Lv>> {
    let report: Report = serde_json::from_slice(json)
        .map_err(|e| Error::Lvs(format!("not the expected JSON: {e}")))?;
    let mut out = Vec::new();
    for section in report.report {
        for row in section.lv {
            let name = row
                .get("lv_name")
                .cloned()
                .ok_or_else(|| Error::Lvs("an LV without `lv_name`".to_owned()))?;
            let field = |f: &str| -> Result<&str> {
                row.get(f)
                    .map(String::as_str)
                    .ok_or_else(|| Error::Lvs(format!("LV `{name}`: missing field `{f}`")))
            };
            let opt = |f: &str| -> Result<Option<String>> {
                Ok(Some(field(f)?).filter(|v| !v.is_empty()).map(str::to_owned))
            };
            let percent = |f: &str| -> Result<Option<f64>> {
                match field(f)? {
                    "" => Ok(None),
                    v => v
                        .parse::<f64>()
                        .ok()
                        .filter(|p| (0.0..=100.0).contains(p))
                        .map(Some)
                        .ok_or_else(|| {
                            Error::Lvs(format!("LV `{name}`: `{f}` is not a percentage: `{v}`"))
                        }),
                }
            };
            let time = match field("lv_time")? {
                "" => None,
                v => Some(
                    DateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S %z")
                        .map_err(|e| Error::Lvs(format!("LV `{name}`: `lv_time` `{v}`: {e}")))?
                        .with_timezone(&Utc),
                ),
            };
            let size_bytes = match field("lv_size")?.trim_end_matches('B') {
                "" => None,
                v => Some(v.parse::<u64>().map_err(|_| {
                    Error::Lvs(format!(
                        "LV `{name}`: `lv_size` is not a number of bytes: `{v}`"
                    ))
                })?),
            };
            out.push(Lv {
                vg: field("vg_name")?.to_owned(),
                pool: opt("pool_lv")?,
                origin: opt("origin")?,
                time,
                attr: field("lv_attr")?.to_owned(),
                data_percent: percent("data_percent")?,
                // older captures and `-o` lists without it: absent means unknown
                metadata_percent: if row.contains_key("metadata_percent") {
                    percent("metadata_percent")?
                } else {
                    None
                },
                size_bytes,
                tags: row
                    .get("lv_tags")
                    .map(|t| {
                        t.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                name,
            });
        }
    }
    Ok(out)
}
