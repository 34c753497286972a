//! The pfSense stage against a real HTTP server and a real sshd, both on loopback.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;

use crate::harness::*;

const KEY: &str = "pfs-api-key-4f1e9c";
const XML: &str = "<?xml version=\"1.0\"?>\n<pfsense>\n<version>23.3</version>\n<system><hostname>fw</hostname></system>\n</pfsense>\n";

fn require(program: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{program} is not installed: run scripts/test, which installs curl and openssh"
    );
}

/// A one-route HTTP server: answers the pfSense config JSON when the Authorization header holds
/// `KEY`, 401 otherwise. Records the Authorization values it saw.
fn api_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/api/v1/diagnostics/config",
        listener.local_addr().unwrap().port()
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut auth = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.strip_prefix("Authorization: ") {
                    auth = v.trim().to_owned();
                }
            }
            seen2.lock().unwrap().push(auth.clone());
            let (status, body) = if auth == KEY {
                (
                    "200 OK",
                    format!("{{\"status\":\"ok\",\"data\":\"{}\"}}", b64(XML.as_bytes())),
                )
            } else {
                (
                    "401 Unauthorized",
                    "{\"status\":\"unauthorized\"}".to_owned(),
                )
            };
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    (url, seen)
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= c.len() {
                A[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

pub struct Sshd {
    child: Child,
    pub port: u16,
    pub dir: Utf8PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn keygen(path: &Utf8PathBuf) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f", path.as_str()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn sshd(dir: Utf8PathBuf) -> Sshd {
    require("ssh");
    assert!(
        std::path::Path::new("/usr/sbin/sshd").exists(),
        "/usr/sbin/sshd is missing: run scripts/test, which installs openssh-server"
    );
    assert!(
        is_root(),
        "the sshd test logs in as root on loopback: run it as root (CI does)"
    );
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap(); // sshd's privilege separation folder
    keygen(&dir.join("host_key"));
    keygen(&dir.join("client_key"));
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
    std::fs::write(
        dir.join("known_hosts"),
        format!("[127.0.0.1]:{port} {host_pub}"),
    )
    .unwrap();
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\nPidFile {dir}/sshd.pid\nAuthorizedKeysFile {dir}/authorized_keys\n\
             StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             Subsystem sftp /usr/lib/openssh/sftp-server\n"
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f", dir.join("sshd_config").as_str()])
        .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sshd did not listen: {}",
            std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Sshd { child, port, dir }
}

fn pfsense_env(url: &str, sshd: &Sshd, known_hosts: &str, tar_dir: &Utf8PathBuf) -> Env {
    let env = Env::with_config(&format!(
        "[pfsense]\napi-url = \"{url}\"\napi-key-file = \"{d}/api-key\"\nssh-host = \"127.0.0.1\"\nssh-port = {p}\n\
         ssh-key-file = \"{d}/client_key\"\nssh-known-hosts = \"{known_hosts}\"\ntar-paths = [\"{tar_dir}\"]\n",
        d = sshd.dir,
        p = sshd.port,
    ));
    std::fs::write(sshd.dir.join("api-key"), format!("{KEY}\n")).unwrap();
    env
}

#[test]
fn config_xml_from_the_api_and_the_full_tar_over_ssh() {
    require("curl");
    let scratch = tempfile::tempdir().unwrap();
    let scratch = Utf8PathBuf::from_path_buf(scratch.path().to_owned()).unwrap();
    let server = sshd(scratch.join("ssh"));
    let (url, seen) = api_server();
    let tar_dir = scratch.join("cf");
    write(&tar_dir.join("conf/config.xml"), XML);
    let env = pfsense_env(
        &url,
        &server,
        server.dir.join("known_hosts").as_str(),
        &tar_dir,
    );

    let out = env.day("2026-01-05");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(!t.contains(KEY), "the API key leaked into the output: {t}");
    let week = env.root.join("backup/pfsense/2026-02");
    assert_eq!(
        std::fs::read_to_string(week.join("config.xml")).unwrap(),
        XML
    );
    let list = Command::new("tar")
        .args(["tzf", week.join("pfsense-full.tar.gz").as_str()])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains("cf/conf/config.xml"), "{list}");
    assert_eq!(seen.lock().unwrap().as_slice(), [KEY]);

    // a wrong key: the pfSense item fails, the volumes still go, this week's good copy stays
    std::fs::write(server.dir.join("api-key"), "wrong\n").unwrap();
    let out = env.run(DAILY, &["--now", "2026-01-06T05:00:00Z"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(t.contains("FAILED  pfsense") && t.contains("401"), "{t}");
    assert_eq!(
        std::fs::read_to_string(week.join("config.xml")).unwrap(),
        XML
    );
}

#[test]
fn an_unknown_host_key_is_refused() {
    require("curl");
    let scratch = tempfile::tempdir().unwrap();
    let scratch = Utf8PathBuf::from_path_buf(scratch.path().to_owned()).unwrap();
    let server = sshd(scratch.join("ssh"));
    let (url, _) = api_server();
    let empty = scratch.join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let env = pfsense_env(&url, &server, empty.as_str(), &scratch);
    let out = env.day("2026-01-05");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(t.contains("Host key verification failed"), "{t}");
    assert!(!env.root.join("backup/pfsense/2026-02/config.xml").exists());
}
