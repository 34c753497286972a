//! `--stats` parsing on output captured from rsync 3.5.0, and on bad input.

use backup_rsync::parse_stats;

fn sample(name: &str) -> String {
    std::fs::read_to_string(fixtures::data_dir().join("rsync").join(name)).unwrap()
}

#[test]
fn captured_samples() {
    let parsed: Vec<String> = [
        "stats-first-copy.txt",
        "stats-with-deletions.txt",
        "stats-link-dest.txt",
        // trees without a regular file: no `reg:` in `Number of files:`
        "stats-onlydirs.txt",
        "stats-onlylinks.txt",
        "stats-devs.txt",
        "stats-nothing.txt",
    ]
    .iter()
    .map(|n| format!("{n}: {:?}", parse_stats(&sample(n)).unwrap()))
    .collect();
    insta::assert_snapshot!(parsed.join("\n"));
}

#[test]
fn bad_input() {
    let cases = [
        "",
        "Number of files: lots\n",
        "Number of files: 3 (reg: 2, dir: 1)\n",
        "Number of files: 3 (reg: 2, dir: 1)\nNumber of regular files transferred: 1\nTotal file size: 12 bytes\nTotal transferred file size: x bytes\n",
    ];
    let errors: Vec<String> = cases
        .iter()
        .map(|c| parse_stats(c).unwrap_err().to_string())
        .collect();
    insta::assert_snapshot!(errors.join("\n"));
}
