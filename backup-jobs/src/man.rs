//! Manual pages from the clap definitions: `<binary> --write-man-pages DIR` writes `<binary>.1`
//! (and one page per subcommand, `backupctl-restore-pvc.1`), so the pages never disagree with
//! `--help`. `scripts/package` runs it and installs the pages; a test reads them back.

use std::process::ExitCode;

/// When the first argument is `--write-man-pages DIR` (hidden from `--help`: a packaging step),
/// writes the pages of `C` into DIR and exits; otherwise returns and the binary runs.
pub fn write_if_asked<C: clap::CommandFactory>() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new("--write-man-pages")) {
        return None;
    }
    let Some(dir) = args.next() else {
        eprintln!("--write-man-pages needs a folder");
        return Some(ExitCode::from(backup_host::exit::Exit::Usage.code()));
    };
    let cmd = C::command().after_long_help(backup_host::exit::Exit::help());
    match std::fs::create_dir_all(&dir).and_then(|()| clap_mangen::generate_to(cmd, &dir)) {
        Ok(()) => Some(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!(
                "cannot write the manual pages into {}: {e}",
                dir.to_string_lossy()
            );
            Some(ExitCode::from(backup_host::exit::Exit::Failed.code()))
        }
    }
}
