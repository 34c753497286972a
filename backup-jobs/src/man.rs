//! Manual pages and shell completions from the clap definitions, so neither ever disagrees with
//! `--help`: `<binary> --write-man-pages DIR` writes `<binary>.1` (and one page per
//! subcommand, `backupctl-restore-pvc.1`), `<binary> --write-completions DIR` writes
//! `DIR/bash/<binary>`, `DIR/zsh/_<binary>` and `DIR/fish/<binary>.fish`. `scripts/package`
//! runs both and installs what they write; tests read them back.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// When the first argument is `--write-man-pages DIR` or `--write-completions DIR` (hidden
/// from `--help`: packaging steps), writes the pages or scripts of `C` into DIR and exits;
/// otherwise returns and the binary runs.
pub fn write_if_asked<C: clap::CommandFactory>() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    let what = args.next()?;
    let write: fn(clap::Command, &Path) -> std::io::Result<()> = match what.to_str() {
        Some("--write-man-pages") => man_pages,
        Some("--write-completions") => completions,
        _ => return None,
    };
    let Some(dir) = args.next() else {
        eprintln!("{} needs a folder", what.to_string_lossy());
        return Some(ExitCode::from(backup_host::exit::Exit::Usage.code()));
    };
    let dir = Path::new(&dir);
    match write(C::command(), dir) {
        Ok(()) => Some(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!(
                "{}: cannot write into {}: {e}",
                what.to_string_lossy(),
                dir.display()
            );
            Some(ExitCode::from(backup_host::exit::Exit::Failed.code()))
        }
    }
}

/// Every page of `cmd` (its subcommands' too), each with the package's name and version where
/// `man` shows its source (clap's own would be `pvc ` for `backupctl-restore-pvc`).
fn man_pages(cmd: clap::Command, dir: &Path) -> std::io::Result<()> {
    fn each(cmd: clap::Command, dir: &Path, source: &str) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            each(sub, dir, source)?;
        }
        let man = clap_mangen::Man::new(cmd)
            .source(source)
            .manual("homelab-backup");
        let mut file = std::fs::File::create(dir.join(man.get_filename()))?;
        man.render(&mut file)?;
        file.flush()
    }
    std::fs::create_dir_all(dir)?;
    // the binary's own after_long_help holds its examples and the exit codes
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    each(
        cmd,
        dir,
        &format!("homelab-backup {}", env!("CARGO_PKG_VERSION")),
    )
}

/// The bash, zsh and fish completions of `cmd`.
fn completions(mut cmd: clap::Command, dir: &Path) -> std::io::Result<()> {
    use clap_complete::Shell;
    let name = cmd.get_name().to_owned();
    for (shell, sub, file) in [
        (Shell::Bash, "bash", name.clone()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        std::fs::create_dir_all(dir.join(sub))?;
        let mut out = std::fs::File::create(dir.join(sub).join(file))?;
        clap_complete::generate(shell, &mut cmd, &name, &mut out);
        out.flush()?;
    }
    Ok(())
}
