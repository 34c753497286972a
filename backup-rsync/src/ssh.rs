//! ssh for a remote offsite destination, failing closed: the configured key only, the pinned
//! host keys, no prompt.

use backup_core::OffsiteConfig;

/// ssh for a remote destination: key and pinned host key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SshOptions {
    /// `ssh -i`, with `IdentitiesOnly=yes` (no agent, no default keys).
    pub key_file: Option<String>,
    /// `UserKnownHostsFile`: the pinned host key.
    pub known_hosts: Option<String>,
    /// `-p`, when not 22.
    pub port: Option<u16>,
}

impl SshOptions {
    /// The `-e` value rsync runs as its remote shell. rsync splits it on spaces itself, not with
    /// a shell: a word is kept whole inside single or double quotes, and a quote is doubled to
    /// stand for itself (`'it''s'`); backslashes mean nothing. So every word that is not plain
    /// is put in single quotes with its single quotes doubled ([`rsync_word`]): a value with a
    /// quote stays one word and can never become an option (`-oProxyCommand=…` hidden in a key
    /// path ran a command as root when values were quoted for a shell).
    ///
    /// The fixed options come first, because ssh keeps the first value it is given for an
    /// option:
    /// - `BatchMode=yes`: never a password prompt on a timer;
    /// - `StrictHostKeyChecking=yes`: an unknown or changed host key fails the run (a NAS that
    ///   suddenly has another key is not where the backup goes);
    /// - `IdentitiesOnly=yes`: only the configured key is offered.
    pub fn remote_shell(&self) -> String {
        let mut words = vec!["ssh".to_owned()];
        for o in [
            "BatchMode=yes",
            "StrictHostKeyChecking=yes",
            "IdentitiesOnly=yes",
            "ConnectTimeout=30",
        ] {
            words.push("-o".to_owned());
            words.push(o.to_owned());
        }
        if let Some(kh) = &self.known_hosts {
            words.push("-o".to_owned());
            words.push(rsync_word(&format!("UserKnownHostsFile={kh}")));
        }
        if let Some(p) = self.port {
            words.push("-p".to_owned());
            words.push(p.to_string());
        }
        if let Some(k) = &self.key_file {
            words.push("-i".to_owned());
            words.push(rsync_word(k));
        }
        words.join(" ")
    }
}

/// One word of rsync's `-e` command, as rsync splits it: plain, or in single quotes with each
/// single quote doubled.
pub fn rsync_word(word: &str) -> String {
    if backup_core::is_plain_word(word) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "''"))
    }
}

impl SshOptions {
    /// The ssh of `o`'s destination (`None`: a local or mounted one).
    pub fn for_offsite(o: &OffsiteConfig) -> Option<Self> {
        o.is_remote().then(|| SshOptions {
            key_file: o.ssh_key_file.as_ref().map(ToString::to_string),
            known_hosts: o.ssh_known_hosts.as_ref().map(ToString::to_string),
            port: (o.ssh_port != 22).then_some(o.ssh_port),
        })
    }
}
