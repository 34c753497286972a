//! The shape of the house, as a test so that it stays: no module imports another
//! that imports it back, directly or through others, in any crate of the workspace; the jobs and
//! the wiring are each at most 40 % of the product code.
//!
//! A "module" is one source file (`lib.rs` is the crate root, `a.rs` is `a`, `a/b.rs` is `a::b`).
//! An import is a path to another module of the same crate in code (comments do not count; a
//! module's `pub use` re-export does): `crate::a::b::Item`, `super::Item`, or `child::Item` for a module
//! declared in the file. Paths to the crate root are not counted, since `lib.rs` holds only
//! module declarations and re-exports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The crates of the workspace with their `src` folder.
fn crates() -> Vec<(String, PathBuf)> {
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("workspace members in Cargo.toml");
    members
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .map(|m| {
            let src = workspace().join(&m).join("src");
            (m, src)
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "bin") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `a::b` for `src/a/b.rs`, `""` for `src/lib.rs` (and `main.rs`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let parts: Vec<&str> = parts
        .iter()
        .map(String::as_str)
        .filter(|p| *p != "mod")
        .collect();
    match parts.as_slice() {
        ["lib"] | ["main"] => String::new(),
        _ => parts.join("::"),
    }
}

/// The code of a file without comments. A `pub use` in a module is an import like any other (a
/// module that re-exports another's item depends on it); only the crate root's re-exports are not
/// edges, since the root is skipped.
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        let line = match line.find("//") {
            // a trailing comment (a `//` inside a string literal is rare enough here)
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Every path in `code` as its segments: `crate::a::b::C` is `["crate", "a", "b", "C"]`; a
/// `crate::{a::b, c}` group gives one path per item.
fn paths(code: &str) -> Vec<Vec<String>> {
    let bytes: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let starts = (c.is_alphabetic() || c == '_')
            && (i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_'));
        if !starts {
            i += 1;
            continue;
        }
        let (path, next) = read_path(&bytes, i);
        i = next;
        let prefix = path.clone();
        if path.len() > 1 {
            out.push(path);
        }
        // a group: `prefix::{a, b::c}`
        if i + 2 < bytes.len() && bytes[i] == ':' && bytes[i + 1] == ':' && bytes[i + 2] == '{' {
            let mut depth = 0;
            let mut j = i + 2;
            let mut item_start = j + 1;
            while j < bytes.len() {
                match bytes[j] {
                    '{' => depth += 1,
                    '}' | ',' if depth == 1 => {
                        let item: String = bytes[item_start..j].iter().collect();
                        let mut p = prefix.clone();
                        p.extend(
                            item.split("::")
                                .map(|s| s.trim().trim_start_matches('{').to_owned())
                                .filter(|s| !s.is_empty()),
                        );
                        out.push(p);
                        item_start = j + 1;
                        if bytes[j] == '}' {
                            break;
                        }
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
                j += 1;
            }
            i = j + 1;
        }
    }
    out
}

fn read_path(bytes: &[char], mut i: usize) -> (Vec<String>, usize) {
    let mut path = Vec::new();
    loop {
        let start = i;
        while i < bytes.len() && (bytes[i].is_alphanumeric() || bytes[i] == '_') {
            i += 1;
        }
        path.push(bytes[start..i].iter().collect::<String>());
        let more = i + 2 < bytes.len()
            && bytes[i] == ':'
            && bytes[i + 1] == ':'
            && (bytes[i + 2].is_alphabetic() || bytes[i + 2] == '_');
        if !more {
            return (path, i);
        }
        i += 2;
    }
}

/// The module a path names, as the longest prefix that is a module of the crate.
fn resolve(
    here: &str,
    path: &[String],
    modules: &BTreeSet<String>,
    children: &BTreeSet<String>,
    reexported: &BTreeMap<String, String>,
) -> Option<String> {
    if let [krate, item, ..] = path {
        if krate == "crate" && !modules.contains(item) {
            return reexported.get(item).filter(|m| *m != here).cloned();
        }
    }
    let first = path.first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "super" => {
            let mut b: Vec<String> = here.split("::").map(str::to_owned).collect();
            b.pop();
            b
        }
        "self" => here.split("::").map(str::to_owned).collect(),
        first if children.contains(first) => here
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => return None,
    };
    let rest = if matches!(first.as_str(), "crate" | "super" | "self") {
        &path[1..]
    } else {
        path
    };
    let mut found = None;
    for seg in rest {
        if seg == "super" {
            base.pop();
            continue;
        }
        base.push(seg.clone());
        let name = base.join("::");
        if modules.contains(&name) {
            found = Some(name);
        } else {
            break;
        }
    }
    found.filter(|m| !m.is_empty() && m != here)
}

type Graph = BTreeMap<String, BTreeSet<String>>;

/// What the crate root re-exports: item name -> the module it comes from.
fn root_items(src: &Path, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let root = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    let mut items = BTreeMap::new();
    for stmt in root.split(';') {
        let Some(body) = stmt.trim_start().strip_prefix("pub use ") else {
            continue;
        };
        for p in paths(&format!("crate::{body}")) {
            let name = p.last().cloned().unwrap_or_default();
            if let Some(m) = resolve("", &p, modules, &BTreeSet::new(), &BTreeMap::new()) {
                items.insert(name, m);
            }
        }
    }
    items
}

fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    let reexported = root_items(src, &modules);
    let mut g = Graph::new();
    for f in &files {
        let here = module_of(src, f);
        if here.is_empty() {
            continue;
        }
        let text = code(&std::fs::read_to_string(f).unwrap());
        let children: BTreeSet<String> = modules
            .iter()
            .filter_map(|m| m.strip_prefix(&format!("{here}::")))
            .filter(|c| !c.contains("::"))
            .map(str::to_owned)
            .collect();
        let edges = g.entry(here.clone()).or_default();
        for p in paths(&text) {
            if let Some(to) = resolve(&here, &p, &modules, &children, &reexported) {
                edges.insert(to);
            }
        }
    }
    g
}

/// The circles of `g` (strongly connected sets of more than one module), each sorted.
fn circles(g: &Graph) -> Vec<Vec<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(m) = stack.pop() {
            for n in g.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    stack.push(n.clone());
                }
            }
        }
        seen
    };
    let all: BTreeMap<String, BTreeSet<String>> = g.keys().map(|m| (m.clone(), reach(m))).collect();
    let mut out: BTreeSet<Vec<String>> = BTreeSet::new();
    for (m, r) in &all {
        if !r.contains(m) {
            continue;
        }
        let circle: Vec<String> = r
            .iter()
            .filter(|n| all.get(*n).is_some_and(|rn| rn.contains(m)))
            .cloned()
            .collect();
        if circle.len() > 1 {
            out.insert(circle);
        }
    }
    out.into_iter().collect()
}

#[test]
fn no_module_imports_another_that_imports_it_back() {
    let mut found = Vec::new();
    for (name, src) in crates() {
        let g = graph(&src);
        for c in circles(&g) {
            let edges: Vec<String> = c
                .iter()
                .flat_map(|m| {
                    g[m].iter()
                        .filter(|n| c.contains(n))
                        .map(move |n| format!("{m} -> {n}"))
                })
                .collect();
            found.push(format!("{name}: {}", edges.join(", ")));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn the_circle_finder_sees_a_circle_through_a_third_module() {
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    g.entry("d".into()).or_default().insert("a".into());
    assert_eq!(circles(&g), vec![vec!["a", "b", "c"]]);
    let modules: BTreeSet<String> = ["daily", "daily::copy", "x"].map(String::from).into();
    let kids: BTreeSet<String> = ["copy".to_owned()].into();
    let code = code(
        "use super::Plan; // crate::x\nfn f() { copy::run(); crate::{x::Y, daily::copy::Z}; }\n",
    );
    let found: BTreeSet<String> = paths(&code)
        .iter()
        .filter_map(|p| resolve("daily", p, &modules, &kids, &BTreeMap::new()))
        .collect();
    assert_eq!(found, ["daily::copy", "x"].map(String::from).into());
}

/// Lines of product code in `src`: not blank, not a comment, not in a `#[cfg(test)]` module.
fn product_lines(src: &Path) -> usize {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    if src.join("bin").is_dir() {
        for e in std::fs::read_dir(src.join("bin")).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    let mut n = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let text = match text.find("#[cfg(test)]\nmod tests") {
            Some(i) => &text[..i],
            None => &text[..],
        };
        n += text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//"))
            .count();
    }
    n
}

#[test]
fn jobs_and_wiring_are_each_at_most_40_percent_of_the_product_code() {
    let sizes: Vec<(String, usize)> = crates()
        .into_iter()
        .filter(|(name, _)| name != "fixtures")
        .map(|(name, src)| {
            let n = product_lines(&src);
            (name, n)
        })
        .collect();
    let total: usize = sizes.iter().map(|(_, n)| n).sum();
    let table: Vec<String> = sizes
        .iter()
        .map(|(name, n)| format!("{name} {n} ({:.0} %)", *n as f64 * 100.0 / total as f64))
        .collect();
    for (name, n) in &sizes {
        if name == "backup-jobs" || name == "backup-bins" {
            assert!(
                *n * 100 <= total * 40,
                "{name} is more than 40 % of the product code:\n{}",
                table.join("\n")
            );
        }
    }
    assert!(total > 10_000, "counted too little: {}", table.join("\n"));
}

/// The product code of every crate (test modules cut off), file by file.
fn product_files() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for (name, src) in crates() {
        if name == "fixtures" {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let text = match text.find("#[cfg(test)]") {
                Some(i) => text[..i].to_owned(),
                None => text,
            };
            out.push((f, code(&text)));
        }
    }
    out
}

#[test]
fn every_read_of_the_clock_goes_through_the_runs_clock() {
    let reads = ["Utc::now(", "Local::now(", "SystemTime::now("];
    let mut found = Vec::new();
    for (f, text) in product_files() {
        if f.ends_with("backup-host/src/clock.rs") || f.ends_with("backup-core/src/testing.rs") {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            if reads.iter().any(|r| line.contains(r)) {
                found.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "clock reads that `--now` does not move (use backup_host::clock::Clock):\n{}",
        found.join("\n")
    );
}

/// The workspace crates `krate` depends on (normal dependencies), from its Cargo.toml.
fn workspace_deps(krate: &str) -> Vec<String> {
    let toml = std::fs::read_to_string(workspace().join(krate).join("Cargo.toml")).unwrap();
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in toml.lines() {
        if line.starts_with('[') {
            in_deps = line.trim() == "[dependencies]";
            continue;
        }
        let name = line.split(['.', ' ', '=']).next().unwrap_or("");
        if in_deps && (name.starts_with("backup") || name == "fixtures") {
            out.push(name.to_owned());
        }
    }
    out
}

#[test]
fn commands_and_adapters_never_depend_on_the_jobs() {
    // backupctl and the jobs reach an offsite repository through the `RepositoryTarget` trait
    // that the run's factory builds (only `backup-run` names the adapter), and both reach the
    // NAS through `OffsiteCopy` and copy through `FileSync`/`TreeCopier`; the adapters know
    // nothing of the jobs, the run frame or the commands that use them
    let rules: [(&str, &[&str]); 6] = [
        (
            "backupctl",
            &[
                "backup-jobs",
                "backup-bins",
                "backup-restic",
                "backup-rsync",
            ],
        ),
        (
            "backup-jobs",
            &["backupctl", "backup-bins", "backup-restic", "backup-rsync"],
        ),
        (
            "backup-restic",
            &["backup-jobs", "backup-run", "backupctl", "backup-bins"],
        ),
        (
            "backup-rsync",
            &["backup-jobs", "backup-run", "backupctl", "backup-bins"],
        ),
        (
            "backup-dumps",
            &["backup-jobs", "backup-run", "backupctl", "backup-bins"],
        ),
        ("backup-run", &["backup-jobs", "backupctl", "backup-bins"]),
    ];
    let mut found = Vec::new();
    for (krate, forbidden) in rules {
        let deps = workspace_deps(krate);
        assert!(
            deps.iter().any(|d| d == "backup-core"),
            "{krate}: read no dependencies"
        );
        for d in deps.iter().filter(|d| forbidden.contains(&d.as_str())) {
            found.push(format!("{krate} depends on {d}"));
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// An offsite target is named in one place: the run's factory (`backup-run`) builds the
/// adapters; the jobs, the commands and the binaries see only the traits (`RepositoryTarget`,
/// `OffsiteCopy`, `TreeCopier`, `FileSync`). So a new kind of target is its crate plus the
/// factory's line and its config keys.
#[test]
fn only_the_runs_factory_names_an_offsite_adapter() {
    let found = adapters_named_outside(&["backup-restic", "backup-rsync", "backup-run"]);
    assert!(
        found.is_empty(),
        "an offsite adapter named outside backup-run (go through its trait):\n{}",
        found.join("\n")
    );
    // the check sees them where they are named
    let in_the_factory = adapters_named_outside(&["backup-restic", "backup-rsync"]);
    assert!(
        in_the_factory.iter().any(|l| l.contains("backup-run")),
        "{in_the_factory:?}"
    );
}

/// Product lines naming an offsite adapter crate, outside the crates `allowed`.
fn adapters_named_outside(allowed: &[&str]) -> Vec<String> {
    let adapters = ["backup_restic::", "backup_rsync::"];
    let mut found = Vec::new();
    for (f, text) in product_files() {
        let krate = f
            .strip_prefix(workspace())
            .ok()
            .and_then(|p| p.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        if allowed.contains(&krate.as_str()) {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            if adapters.iter().any(|a| line.contains(a)) {
                found.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    found
}
