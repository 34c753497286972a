//! Every command line README.md and `docs/` show (in code blocks and inline code) names
//! subcommands and flags that exist: each is checked against the `--help` of the binary it
//! names, at the subcommand it names. A renamed flag, a subcommand that was never written
//! (`backupctl config show`), a flag given to the wrong subcommand: each fails here with the
//! file and line. The runbooks are not read here: their blocks are run as written
//! (`runbooks.rs`).

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use camino::Utf8PathBuf;

use crate::harness::BINS;

fn repo() -> Utf8PathBuf {
    Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// What `--help` of one command says it takes.
#[derive(Debug, Default)]
struct Node {
    subcommands: BTreeSet<String>,
    /// `--long` → takes a value.
    longs: HashMap<String, bool>,
    /// `-s` → takes a value.
    shorts: HashMap<String, bool>,
}

/// The `--help` of `path` (`["backupctl", "restore", "pvc"]`), read once.
fn node<'c>(cache: &'c mut HashMap<Vec<String>, Node>, path: &[String]) -> &'c Node {
    cache.entry(path.to_vec()).or_insert_with(|| {
        let bin = BINS
            .iter()
            .find(|b| b.rsplit('/').next() == Some(path[0].as_str()))
            .unwrap();
        let out = Command::new(bin)
            .args(&path[1..])
            .arg("--help")
            .env("COLUMNS", "400")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{path:?} --help");
        parse_help(&String::from_utf8_lossy(&out.stdout))
    })
}

fn parse_help(help: &str) -> Node {
    let mut n = Node::default();
    let mut section = "";
    for line in help.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line;
            continue;
        }
        let t = line.trim_start();
        if section == "Commands:" && line.starts_with("  ") && !line.starts_with("   ") {
            if let Some(name) = t.split_whitespace().next() {
                n.subcommands.insert(name.to_owned());
            }
        }
        if section.starts_with("Options") && t.starts_with('-') {
            // `-c, --config <PATH>`, `--dry-run`, `-v, --verbose...`
            let spec = t.split("  ").next().unwrap_or(t);
            let value = spec.contains('<');
            for part in spec.split(", ") {
                let flag = part
                    .split([' ', '=', '.'])
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if flag.starts_with("--") {
                    n.longs.insert(flag, value);
                } else if flag.starts_with('-') {
                    n.shorts.insert(flag, value);
                }
            }
        }
    }
    n
}

/// Shell-like words: quotes removed, nothing expanded.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                any = false;
            }
            (None, c) => word.push(c),
        }
    }
    if any || !word.is_empty() {
        out.push(word);
    }
    out
}

/// The binary a word names (`backupctl`, `/usr/bin/backupctl`, `$(backupctl`).
fn binary(word: &str) -> Option<String> {
    let name = word.trim_start_matches(['$', '(', '`']);
    let name = name.rsplit('/').next().unwrap_or(name);
    BINS.iter()
        .map(|b| b.rsplit('/').next().unwrap())
        .find(|b| *b == name)
        .map(str::to_owned)
}

/// Where a command ends on a shell line.
fn ends(word: &str) -> bool {
    matches!(word, "|" | "||" | "&&" | ";" | ")" | "&" | "\\|")
        || word.starts_with(['>', '<'])
        || word.starts_with("2>")
        || word.ends_with([';', ')'])
}

/// One command shown in `file` at `line`: what is wrong with it, if anything.
fn check(cache: &mut HashMap<Vec<String>, Node>, cmd: &[String]) -> Result<(), String> {
    let mut path = vec![cmd[0].clone()];
    let mut i = 1;
    let mut positional_seen = false;
    while i < cmd.len() {
        let raw = &cmd[i];
        i += 1;
        if raw == "--" {
            break; // what follows is another program's (backup-dump -- pg_dump ...)
        }
        let w = raw.trim_matches(['[', ']', '(', ')', ',', '`']);
        let w = w.trim_end_matches("...").trim_end_matches('…');
        if w.is_empty() || w == "..." {
            continue;
        }
        let here = node(cache, &path);
        if w.starts_with('-') && w.contains('|') {
            // `--dumps-only|--site`: either
            for flag in w.split('|').map(|f| f.split('=').next().unwrap()) {
                if !here.longs.contains_key(flag) && !here.shorts.contains_key(flag) {
                    return Err(format!("{} has no {flag}", path.join(" ")));
                }
            }
            continue;
        }
        if let Some(flag) = w.strip_prefix("--").map(|_| w.split('=').next().unwrap()) {
            match here.longs.get(flag) {
                None => return Err(format!("{} has no {flag}", path.join(" "))),
                Some(true) if !w.contains('=') && !raw.ends_with(']') => i += 1,
                Some(_) => {}
            }
            continue;
        }
        if w.starts_with('-') && w.len() == 2 {
            match here.shorts.get(w) {
                None => return Err(format!("{} has no {w}", path.join(" "))),
                Some(true) => i += 1,
                Some(false) => {}
            }
            continue;
        }
        if let Some(bundle) = w.strip_prefix('-').filter(|b| b.parse::<f64>().is_err()) {
            // `-qv`: each letter a short flag that takes no value
            for c in bundle.chars() {
                let flag = format!("-{c}");
                if here.shorts.get(&flag) != Some(&false) {
                    return Err(format!("{} has no {flag} (in {w})", path.join(" ")));
                }
            }
            continue;
        }
        if w.starts_with('-') {
            continue; // a negative number, a value
        }
        if !here.subcommands.is_empty() && !positional_seen {
            // a subcommand, or several to choose from (`pvc|sqlite|pfsense`)
            let choices: Vec<&str> = w.split('|').collect();
            if let Some(bad) = choices.iter().find(|c| !here.subcommands.contains(**c)) {
                // a placeholder (`SUBCOMMAND`, `<cmd>`) is not a claim
                if bad.chars().any(|c| c.is_ascii_lowercase()) && !bad.starts_with('<') {
                    return Err(format!(
                        "{} has no subcommand {bad} (it has: {})",
                        path.join(" "),
                        here.subcommands
                            .iter()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                positional_seen = true;
                continue;
            }
            if choices.len() == 1 {
                path.push(w.to_owned());
            } else {
                // each alternative takes the rest of the line
                for c in choices {
                    let mut alt = path.clone();
                    alt.push(c.to_owned());
                    alt.extend(cmd[i..].iter().cloned());
                    check(cache, &alt)?;
                }
                return Ok(());
            }
            continue;
        }
        positional_seen = true;
    }
    Ok(())
}

/// Every command shown in one Markdown file, with its line number.
fn commands(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut pending: Option<(usize, String)> = None;
    // (line, text, from a table row: there ` | ` separates alternatives, not a pipe)
    let mut shown: Vec<(usize, String, bool)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            let body = line.trim_start().trim_start_matches("$ ");
            if body.starts_with('#') {
                continue;
            }
            let body = body.split(" # ").next().unwrap_or(body);
            let (start, mut joined) = pending.take().unwrap_or((n, String::new()));
            joined.push(' ');
            joined.push_str(body.trim_end_matches('\\'));
            if body.ends_with('\\') {
                pending = Some((start, joined));
            } else {
                shown.push((start, joined, false));
            }
        } else {
            // inline code spans
            for (k, span) in line.split('`').enumerate() {
                if k % 2 == 1 {
                    // a table cell's `\|` is a `|` in the span; ` | ` between commands
                    shown.push((n, span.replace("\\|", "|"), line.starts_with('|')));
                }
            }
        }
    }
    for (n, line, table) in shown {
        // `a | b | c` in a table's span lists alternatives of one binary's subcommands
        let ws = words(&line);
        let mut i = 0;
        while i < ws.len() {
            let Some(bin) = binary(&ws[i]) else {
                i += 1;
                continue;
            };
            let mut cmd = vec![bin.clone()];
            i += 1;
            loop {
                while i < ws.len() && !ends(&ws[i]) {
                    cmd.push(ws[i].clone());
                    i += 1;
                }
                // `[--tier | --offsite]` in a table: one flag or the other, same command
                if table
                    && ws.get(i).is_some_and(|w| w == "|")
                    && ws
                        .get(i + 1)
                        .is_some_and(|w| w.trim_start_matches('[').starts_with('-'))
                {
                    i += 1;
                    continue;
                }
                break;
            }
            // `backupctl list | status | verify`: each alternative is a command of its own
            while table && i + 1 < ws.len() && ws[i] == "|" && binary(&ws[i + 1]).is_none() {
                let alt_start = i + 1;
                let mut j = alt_start;
                while j < ws.len() && !ends(&ws[j]) {
                    j += 1;
                }
                let mut alt = vec![bin.clone()];
                alt.extend(ws[alt_start..j].iter().cloned());
                out.push((n, alt));
                i = j;
            }
            out.push((n, cmd));
        }
    }
    out
}

#[test]
fn every_command_and_flag_the_docs_show_exists() {
    let root = repo();
    let mut files = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = Utf8PathBuf::try_from(e.unwrap().path()).unwrap();
        if p.extension() == Some("md") {
            files.push(p);
        }
    }
    files.sort();
    let mut cache = HashMap::new();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line, cmd) in commands(&text) {
            checked += 1;
            if let Err(e) = check(&mut cache, &cmd) {
                wrong.push(format!(
                    "{}:{line}: `{}`: {e}",
                    file.strip_prefix(&root).unwrap(),
                    cmd.join(" ")
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // the docs show hundreds of commands: a parser that finds none would pass everything
    assert!(checked > 200, "only {checked} commands found in {files:?}");
}

/// The checker itself: what it must refuse, and what it must take.
#[test]
fn the_docs_checker_refuses_what_does_not_exist() {
    let mut cache = HashMap::new();
    let cmd = |s: &str| -> Vec<String> { commands(&format!("`{s}`")).remove(0).1 };
    // a table cell: `a | b` are two commands; elsewhere a pipe ends the command
    let cell = commands("| `backupctl list \\| statsu` | x |");
    assert_eq!(cell.len(), 2, "{cell:?}");
    assert!(check(&mut cache, &cell[0].1).is_err() || check(&mut cache, &cell[1].1).is_err());
    let piped = commands("`backupctl alerts | head -1`");
    assert_eq!(piped.len(), 1, "{piped:?}");
    assert_eq!(check(&mut cache, &piped[0].1), Ok(()));
    for bad in [
        "backupctl config show",
        "backupctl verify --no-such-flag",
        "backupctl restore pvc --into-volumes",
        "daily-backup --week 2026-49",
        "backupctl list --sample 10",
        "backupctl drill [--dumps-only|--sites]",
        "backupctl -qx list",
    ] {
        assert!(check(&mut cache, &cmd(bad)).is_err(), "{bad} was taken");
    }
    for good in [
        "backupctl config check",
        "backupctl -c /etc/x.toml --json verify --pvc NS/PVC --week YYYY-WW",
        "backupctl restore pvc|sqlite --pvc ns/p --to DIR",
        "backup-dump --name N --dest DIR -- pg_dumpall --anything",
        "lvm-pvc-snapshot list [--json]",
        "daily-backup [--allow-empty NS/PVC]... [--full]",
        "backupctl drill [--dumps-only|--site]",
        "backupctl -qv list",
    ] {
        assert_eq!(check(&mut cache, &cmd(good)), Ok(()), "{good}");
    }
}
