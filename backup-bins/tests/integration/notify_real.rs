//! `[notify]` and `[[hooks]]` through the real binaries, against an HTTP server on loopback:
//! the right URL and body for a job's start, success and failure of each kind; a dead or slow
//! endpoint that never changes a job's result (said, counted, bounded); hooks around a job, a
//! `before` hook that stops it; `--dry-run` that sends and runs nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{is_root, text, write, Env, SNAPSHOT};

/// One request the server got.
#[derive(Debug, Clone)]
struct Got {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// An HTTP server on loopback that records every request and answers 200 (after `delay`).
struct Server {
    port: u16,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Server {
    fn start(delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&got);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_owned();
                    let path = parts.next().unwrap_or("").to_owned();
                    let mut headers = Vec::new();
                    let mut length = 0usize;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.trim().split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                            headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
                        }
                    }
                    let mut body = vec![0u8; length];
                    let _ = reader.read_exact(&mut body);
                    seen.lock().unwrap().push(Got {
                        method,
                        path,
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    std::thread::sleep(delay);
                    let mut stream = stream;
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK",
                    );
                });
            }
        });
        Self { port, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A URL file as an operator writes it: mode 600, owned by root.
fn url_file(env: &Env, name: &str, url: &str) -> String {
    let p = env.root.join(name);
    write(&p, &format!("# {name}\n{url}\n"));
    std::fs::set_permissions(&p, PermissionsExt::from_mode(0o600)).unwrap();
    p.to_string()
}

fn env_with(notify: &str) -> Env {
    assert!(is_root(), "URL files must be root's: run the tests as root");
    Env::with_config(notify)
}

fn notify_all(env: &Env, server: &Server) -> String {
    format!(
        "[notify]\nhealthchecks-url-file = \"{}\"\nuptime-kuma-push-url-file = \"{}\"\n\
         ntfy-url-file = \"{}\"\nwebhook-url-file = \"{}\"\ngotify-url-file = \"{}\"\n\
         timeout-seconds = 5\n",
        url_file(env, "hc.url", &server.url("/ping/SECRET-KEY")),
        url_file(
            env,
            "kuma.url",
            &server.url("/api/push/KUMA-TOKEN?status=up&msg=OK&ping=")
        ),
        url_file(env, "ntfy.url", &server.url("/backups-TOPIC")),
        url_file(env, "hook.url", &server.url("/hook/HOOK-TOKEN")),
        url_file(
            env,
            "gotify.url",
            &server.url("/message?token=GOTIFY-TOKEN")
        ),
    )
}

fn append_config(env: &Env, extra: &str) {
    let mut c = std::fs::read_to_string(env.config()).unwrap();
    c.push_str(extra);
    std::fs::write(env.config(), c).unwrap();
}

/// A job that succeeds pings start and success and Uptime Kuma `up`, and sends no message; a
/// job that fails pings its exit code with its last words as the body, Kuma `down`, and a
/// message to ntfy, Gotify and the webhook (JSON with the job, result, exit, host and tail).
/// No URL's secret part appears in anything the run prints.
#[test]
fn a_job_pings_its_start_and_end_and_a_failure_is_messaged_everywhere() {
    let server = Server::start(Duration::ZERO);
    let env = env_with("");
    append_config(&env, &notify_all(&env, &server));
    let out = env.run(SNAPSHOT, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let got = server.got();
    let seen: Vec<String> = got
        .iter()
        .map(|g| format!("{} {}", g.method, g.path))
        .collect();
    assert_eq!(
        seen,
        [
            "POST /ping/SECRET-KEY/lvm-pvc-snapshot/start?create=1",
            "POST /ping/SECRET-KEY/lvm-pvc-snapshot?create=1",
            "GET /api/push/KUMA-TOKEN?status=up&msg=OK&ping=",
        ]
    );
    assert!(
        got[1].body.contains("snapshot"),
        "the tail of its output: {:?}",
        got[1].body
    );

    // the volumes folder gone: the job fails (exit 1)
    std::fs::rename(env.root.join("volumes"), env.root.join("volumes.gone")).unwrap();
    let out = env.run(SNAPSHOT, &[]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let got = &server.got()[3..];
    let seen: Vec<String> = got
        .iter()
        .map(|g| format!("{} {}", g.method, g.path))
        .collect();
    assert_eq!(
        seen[0],
        "POST /ping/SECRET-KEY/lvm-pvc-snapshot/start?create=1"
    );
    assert_eq!(seen[1], "POST /ping/SECRET-KEY/lvm-pvc-snapshot/1?create=1");
    assert!(got[1].body.contains("volumes"), "{:?}", got[1].body);
    assert!(
        seen[2].starts_with("GET /api/push/KUMA-TOKEN?status=down&msg=lvm-pvc-snapshot%20failed"),
        "{seen:?}"
    );
    assert_eq!(seen[3], "POST /backups-TOPIC");
    let title = got[3]
        .headers
        .iter()
        .find(|(k, _)| k == "title")
        .map(|(_, v)| v.as_str());
    assert!(
        title.is_some_and(|t| t.starts_with("lvm-pvc-snapshot FAILED on ")),
        "{title:?}"
    );
    assert_eq!(seen[4], "POST /message?token=GOTIFY-TOKEN");
    let gotify: serde_json::Value = serde_json::from_str(&got[4].body).unwrap();
    assert_eq!(gotify["priority"], 8);
    assert_eq!(seen[5], "POST /hook/HOOK-TOKEN");
    let hook: serde_json::Value = serde_json::from_str(&got[5].body).unwrap();
    assert_eq!(hook["job"], "lvm-pvc-snapshot");
    assert_eq!(hook["result"], "failure");
    assert_eq!(hook["exit"], 1);
    assert!(hook["tail"].as_str().unwrap().contains("volumes"), "{hook}");
    assert!(!hook["host"].as_str().unwrap().is_empty());
    for secret in [
        "SECRET-KEY",
        "KUMA-TOKEN",
        "TOPIC",
        "HOOK-TOKEN",
        "GOTIFY-TOKEN",
    ] {
        assert!(!said.contains(secret), "{secret} shown:\n{said}");
    }
}

/// A dead endpoint and a slow one never change the job's result: each is a warning (the URL
/// shown as scheme and host only) and `backup_notify_failures{kind}`; the slow one is bounded
/// by its timeout and retries.
#[test]
fn a_dead_or_slow_endpoint_is_said_counted_and_bounded_and_the_job_stands() {
    let env = env_with("");
    let dead = format!("http://127.0.0.1:{}/ping/SECRET-KEY", dead_port());
    let slow = Server::start(Duration::from_secs(20));
    append_config(
        &env,
        &format!(
            "[notify]\nhealthchecks-url-file = \"{}\"\nuptime-kuma-push-url-file = \"{}\"\n\
             timeout-seconds = 1\nretries = 1\n",
            url_file(&env, "hc.url", &dead),
            url_file(&env, "kuma.url", &slow.url("/api/push/KUMA-TOKEN")),
        ),
    );
    let started = Instant::now();
    let out = env.run(SNAPSHOT, &[]);
    let took = started.elapsed();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        took < Duration::from_secs(15),
        "a slow endpoint held the run {took:?}"
    );
    assert!(
        said.contains("warning: notification not delivered: healthchecks (http://127.0.0.1:"),
        "{said}"
    );
    assert!(said.contains("uptime-kuma (http://127.0.0.1:"), "{said}");
    assert!(
        !said.contains("SECRET-KEY") && !said.contains("KUMA-TOKEN"),
        "{said}"
    );
    let prom = std::fs::read_to_string(env.root.join("metrics/lvm-pvc-snapshot.prom")).unwrap();
    assert!(prom.contains("kind=\"healthchecks\"} 2"), "{prom}");
    assert!(prom.contains("kind=\"uptime-kuma\"} 1"), "{prom}");
    assert!(
        prom.contains("lvm_snapshot_last_run_success{job=\"lvm-pvc-snapshot\"} 1"),
        "{prom}"
    );
}

/// Hooks: `before` runs before the job and a failing one stops it (exit 1, said, metrics
/// published, the job's snapshots not made); `after` and `on-failure` get the job's result
/// and exit code. `--dry-run` lists the hooks and notifications and runs and sends nothing.
#[test]
fn hooks_run_around_a_job_and_a_failing_before_hook_stops_it() {
    let server = Server::start(Duration::ZERO);
    let env = env_with("");
    let seen = env.root.join("hooks.log");
    let log = |what: &str| {
        format!(
            "[\"/bin/sh\", \"-c\", \"echo {what} $HOMELAB_BACKUP_JOB $HOMELAB_BACKUP_RESULT $HOMELAB_BACKUP_EXIT >> {seen}\"]"
        )
    };
    append_config(
        &env,
        &format!(
            "[notify]\nhealthchecks-url-file = \"{}\"\n\
             [[hooks]]\njob = \"lvm-pvc-snapshot\"\nwhen = \"before\"\ncommand = {}\n\
             [[hooks]]\njob = \"lvm-pvc-snapshot\"\nwhen = \"after\"\ncommand = {}\ntimeout-seconds = 5\n\
             [[hooks]]\njob = \"daily-backup\"\nwhen = \"before\"\ncommand = [\"/bin/false\"]\n",
            url_file(&env, "hc.url", &server.url("/ping/K")),
            log("before"),
            log("after"),
        ),
    );
    let dry = env.run(SNAPSHOT, &["--dry-run"]);
    let said = text(&dry);
    assert_eq!(dry.status.code(), Some(0), "{said}");
    assert!(said.contains("run the hook /bin/sh -c"), "{said}");
    assert!(
        said.contains("notify healthchecks (http://127.0.0.1:"),
        "{said}"
    );
    assert!(!seen.exists(), "a dry run ran a hook");
    assert!(server.got().is_empty(), "a dry run sent {:?}", server.got());

    let out = env.run(SNAPSHOT, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "before lvm-pvc-snapshot\nafter lvm-pvc-snapshot success 0\n"
    );

    // daily-backup's before hook fails: the job does not run, and says so
    let out = env.run(crate::harness::DAILY, &[]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("hook `/bin/false`") && said.contains("the job did not run"),
        "{said}"
    );
    assert!(!env
        .root
        .join("backup/pvc-data")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some()));
    let prom = std::fs::read_to_string(env.root.join("metrics/daily-backup.prom")).unwrap();
    assert!(
        prom.contains("daily_backup_last_run_success{job=\"daily-backup\"} 0"),
        "{prom}"
    );
    let fail_ping = server
        .got()
        .iter()
        .any(|g| g.path == "/ping/K/daily-backup/1?create=1");
    assert!(fail_ping, "{:?}", server.got());
}

/// A URL file anyone may write is not trusted (it could send the run's output anywhere): the
/// notification is not sent, the job stands, the file is named.
#[test]
fn a_url_file_others_may_write_is_refused_and_the_job_stands() {
    let server = Server::start(Duration::ZERO);
    let env = env_with("");
    let file = url_file(&env, "hc.url", &server.url("/ping/K"));
    append_config(
        &env,
        &format!("[notify]\nhealthchecks-url-file = \"{file}\"\n"),
    );
    // writable by others, then readable by others: neither is trusted with a token
    for (mode, now) in [
        (0o666, "2026-01-05T03:00:00Z"),
        (0o644, "2026-01-06T03:00:00Z"),
    ] {
        std::fs::set_permissions(&file, PermissionsExt::from_mode(mode)).unwrap();
        let out = env.run(SNAPSHOT, &["--now", now]);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(0), "{said}");
        assert!(said.contains(&format!("{file}:")), "{mode:o}: {said}");
        assert!(server.got().is_empty(), "{mode:o}: {:?}", server.got());
    }
}

/// `backupctl notify test` sends one of each kind configured and says which arrived; a kind
/// that cannot be reached fails it (exit 1) and is named by scheme and host only.
#[test]
fn notify_test_sends_one_of_each_kind_and_names_what_failed() {
    let server = Server::start(Duration::ZERO);
    let env = env_with("");
    append_config(&env, &notify_all(&env, &server));
    let out = env.run(crate::harness::CTL, &["notify", "test"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    let kinds: Vec<String> = server.got().iter().map(|g| g.path.clone()).collect();
    assert_eq!(
        kinds,
        [
            "/ping/SECRET-KEY/backupctl-notify-test/start?create=1",
            "/ping/SECRET-KEY/backupctl-notify-test?create=1",
            "/api/push/KUMA-TOKEN?status=up&msg=OK&ping=",
            "/backups-TOPIC",
            "/message?token=GOTIFY-TOKEN",
            "/hook/HOOK-TOKEN",
        ]
    );
    assert!(
        said.contains("notify test: 6 of 6 delivered; exit 0"),
        "{said}"
    );
    let dead = format!("http://127.0.0.1:{}/x/TOKEN", dead_port());
    append_config(
        &env,
        &format!(
            "[notify.job.daily-backup]\nntfy-url-file = \"{}\"\n",
            url_file(&env, "dead.url", &dead)
        ),
    );
    let out = env.run(
        crate::harness::CTL,
        &["notify", "test", "--job", "daily-backup"],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("FAILED: ntfy (http://127.0.0.1:"), "{said}");
    assert!(!said.contains("TOKEN"), "{said}");
    // a real job's checks are not turned green by a test: a log event, no Kuma push
    let later: Vec<String> = server.got()[6..].iter().map(|g| g.path.clone()).collect();
    assert!(
        later.contains(&"/ping/SECRET-KEY/daily-backup/log?create=1".to_owned()),
        "{later:?}"
    );
    assert!(
        !later
            .iter()
            .any(|p| p.contains("KUMA") || p.ends_with("daily-backup?create=1")),
        "{later:?}"
    );
}

/// `verify` (and `drill`) send their summary to the message kinds whatever the result: a
/// success is said too (`done`, `summary: true`), with the report's end as the text.
#[test]
fn verify_sends_its_summary_even_when_all_is_well() {
    let server = Server::start(Duration::ZERO);
    let env = env_with("");
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    append_config(
        &env,
        &format!(
            "[notify]\nntfy-url-file = \"{}\"\nwebhook-url-file = \"{}\"\n",
            url_file(&env, "ntfy.url", &server.url("/backups")),
            url_file(&env, "hook.url", &server.url("/hook")),
        ),
    );
    let out = env.run(
        crate::harness::CTL,
        &["--now", "2026-01-05T08:00:00Z", "verify"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let got = server.got();
    let paths: Vec<&str> = got.iter().map(|g| g.path.as_str()).collect();
    assert_eq!(paths, ["/backups", "/hook"], "{got:?}");
    let title = got[0]
        .headers
        .iter()
        .find(|(k, _)| k == "title")
        .map(|(_, v)| v.clone());
    assert!(
        title
            .as_deref()
            .is_some_and(|t| t.starts_with("backupctl-verify on ") && t.ends_with(": done")),
        "{title:?}"
    );
    let hook: serde_json::Value = serde_json::from_str(&got[1].body).unwrap();
    assert_eq!(hook["job"], "backupctl-verify");
    assert_eq!(hook["result"], "success");
    assert_eq!(hook["summary"], true);
    assert!(!hook["tail"].as_str().unwrap().is_empty(), "{hook}");
}
