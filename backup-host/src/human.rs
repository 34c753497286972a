//! Numbers for people: sizes and counts as an operator reads them at 5 a.m.

/// `1536` → `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    // 1023.96 KiB shows as 1024.0 KiB once rounded: move up a unit from 1023.95
    while v >= 1023.95 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` and a noun, plural when `n` is not 1 ("1 file", "3 files", "2 copies", "1 entry").
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        return format!("1 {noun}");
    }
    let consonant_y = noun.strip_suffix('y').filter(|stem| {
        stem.chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphabetic() && !"aeiou".contains(c))
    });
    match consonant_y {
        Some(stem) => format!("{} {stem}ies", count(n)),
        None if noun.ends_with('s') || noun.ends_with("sh") || noun.ends_with("ch") => {
            format!("{} {noun}es", count(n))
        }
        None => format!("{} {noun}s", count(n)),
    }
}

/// An age or a span for people, one format everywhere: `just now` (under a minute), `12 min`,
/// `5 h`, `3 d` (from 48 h on). Negative spans (a clock behind) read as `just now`.
pub fn span(seconds: i64) -> String {
    match seconds {
        s if s < 60 => "just now".to_owned(),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 48 * 3600 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// `span` of a time before `now`, as an age: `5 h ago`, `just now`.
pub fn ago(now: chrono::DateTime<chrono::Utc>, then: chrono::DateTime<chrono::Utc>) -> String {
    match span((now - then).num_seconds()) {
        s if s == "just now" => s,
        s => format!("{s} ago"),
    }
}

/// `span` of a time before `now`, as how old a thing is: `5 h old`, `new`.
pub fn old(now: chrono::DateTime<chrono::Utc>, then: chrono::DateTime<chrono::Utc>) -> String {
    match span((now - then).num_seconds()) {
        s if s == "just now" => "new".to_owned(),
        s => format!("{s} old"),
    }
}

/// The width text output is laid out to: `COLUMNS` when set, else the terminal's when stdout is
/// one; `None` (no wrapping) for a pipe or the journal, where a wrapped line would become two
/// log entries.
pub fn width() -> Option<usize> {
    width_of(std::io::stdout())
}

/// [`width`] for what goes to `stream` (stderr for errors, warnings and progress bars).
pub fn width_of(stream: impl std::os::fd::AsFd) -> Option<usize> {
    if let Some(c) = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        return Some(c.max(20));
    }
    rustix::termios::tcgetwinsize(stream)
        .ok()
        .map(|w| usize::from(w.ws_col))
        .filter(|c| *c >= 20)
}

/// True when the space at `i` sits between a number and its unit (`9.2 KiB`, `0.5 s`): not a
/// place to break a line.
fn joins(text: &str, i: usize) -> bool {
    const UNITS: [&str; 12] = [
        "B", "KiB", "MiB", "GiB", "TiB", "PiB", "s", "ms", "min", "h", "d", "%",
    ];
    let before = text[..i].chars().last().is_some_and(|c| c.is_ascii_digit());
    let word: String = text[i + 1..]
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '%')
        .collect();
    before && UNITS.contains(&word.as_str())
}

/// Every line of `text` longer than `width` broken at spaces, the rest of it indented four more
/// than the line was: tables are laid out to fit, this catches prose (a reason, a long path)
/// that would not. A word longer than the line stays whole.
pub fn fit(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split('\n') {
        let mut rest = line;
        let indent = line.len() - line.trim_start_matches(' ').len();
        let more = " ".repeat((indent + 4).min(width / 2));
        let mut first = true;
        loop {
            let avail = if first { width } else { width - more.len() };
            if !first {
                out.push_str(&more);
            }
            if rest.chars().count() <= avail {
                out.push_str(rest);
                break;
            }
            // the last space that leaves the line within width, past the indent
            let cut = rest
                .char_indices()
                .take_while(|(i, _)| rest[..*i].chars().count() <= avail)
                .filter(|(i, c)| *c == ' ' && (!first || *i > indent) && !joins(rest, *i))
                .map(|(i, _)| i)
                .last();
            match cut {
                Some(i) => {
                    out.push_str(rest[..i].trim_end());
                    out.push('\n');
                    rest = rest[i..].trim_start();
                    first = false;
                }
                None => {
                    out.push_str(rest);
                    break;
                }
            }
        }
        out.push('\n');
    }
    out.pop();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes((1 << 20) - 1), "1.0 MiB");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(100), "100");
        assert_eq!(plural(1, "SQLite copy"), "1 SQLite copy");
        assert_eq!(plural(2, "SQLite copy"), "2 SQLite copies");
        assert_eq!(plural(0, "entry"), "0 entries");
        assert_eq!(plural(3, "day"), "3 days");
        assert_eq!(plural(2, "difference"), "2 differences");
        assert_eq!(plural(2, "pass"), "2 passes");
        assert_eq!(plural(1234, "file"), "1,234 files");
        assert_eq!(
            fit("  ok  one two three four five six", 16),
            "  ok  one two\n      three four\n      five six"
        );
        assert_eq!(fit("short\n", 16), "short\n");
        assert_eq!(
            fit("copied 100 KiB in 0.5 s", 12),
            "copied\n    100 KiB\n    in 0.5 s"
        );
        assert_eq!(
            fit("/a/very/long/path/without/spaces", 10),
            "/a/very/long/path/without/spaces"
        );
        assert_eq!(span(-5), "just now");
        assert_eq!(span(59), "just now");
        assert_eq!(span(60 * 12), "12 min");
        assert_eq!(span(3600 * 47), "47 h");
        assert_eq!(span(3600 * 1205), "50 d");
    }
}
