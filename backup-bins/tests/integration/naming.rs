//! Issue 21, items 4 and 6: one way to name a PVC on every command line (`NAMESPACE/PVC`, or
//! the volume that holds it; `--namespace` still works with a deprecation warning), and an exit
//! code per meaning: not found is 66, never the usage error's 2.

use crate::harness::{text, Env, CTL, DAILY};

fn code(env: &Env, bin: &str, args: &[&str]) -> (i32, String) {
    let out = env.run(bin, args);
    (out.status.code().unwrap_or(-1), text(&out))
}

#[test]
fn a_pvc_is_named_namespace_slash_pvc_or_by_its_volume_everywhere() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let now = ["--now", "2026-01-05T07:00:00Z"];
    for pvc in ["vaultwarden/data", "vm-100-pvc-a"] {
        let (c, t) = code(&env, CTL, &[&now[..], &["verify", "--pvc", pvc]].concat());
        assert_eq!(c, 0, "verify --pvc {pvc}: {t}");
        assert!(
            t.contains("1 checked") && t.contains("5 files"),
            "verify --pvc {pvc}: {t}"
        );
        let to = env.root.join(format!("r-{pvc}").replace('/', "-"));
        let (c, t) = code(
            &env,
            CTL,
            &["restore", "pvc", "--pvc", pvc, "--to", to.as_str()],
        );
        assert_eq!(c, 0, "restore pvc --pvc {pvc}: {t}");
        assert!(to.join("dir/file-1.txt").is_file(), "{t}");
    }
    // a volume no claim names is backed up under _unresolved/<volume>: its name finds it
    let (c, t) = code(
        &env,
        CTL,
        &[&now[..], &["verify", "--pvc", "vm-102-pvc-c"]].concat(),
    );
    assert_eq!(c, 0, "{t}");
    assert!(t.contains("1 checked") && t.contains("5 files"), "{t}");

    // the old form, for one release, says what to write instead
    let to = env.root.join("r-old");
    let out = env.run(
        CTL,
        &[
            "restore",
            "pvc",
            "--namespace",
            "vaultwarden",
            "--pvc",
            "data",
            "--to",
            to.as_str(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--namespace is deprecated") && err.contains("--pvc vaultwarden/data"),
        "{err}"
    );
    let (c, t) = code(
        &env,
        CTL,
        &[
            "restore",
            "pvc",
            "--namespace",
            "vaultwarden",
            "--pvc",
            "vaultwarden/data",
            "--to",
            "/tmp/x",
        ],
    );
    assert_eq!(c, 2, "{t}");
    for bad in ["a/b/c", "-x", "/data"] {
        let (c, t) = code(
            &env,
            CTL,
            &["restore", "pvc", &format!("--pvc={bad}"), "--to", "/tmp/x"],
        );
        assert_eq!(c, 2, "--pvc {bad}: {t}");
        assert!(
            t.contains("expected NAMESPACE/PVC or a volume"),
            "--pvc {bad}: {t}"
        );
    }

    // daily-backup --allow-empty takes the volume's name too
    let vol = env.vol("vm-101-pvc-b");
    std::fs::remove_dir_all(&vol).unwrap();
    std::fs::create_dir_all(&vol).unwrap();
    let (c, t) = code(
        &env,
        DAILY,
        &[
            "--now",
            "2026-01-06T06:00:00Z",
            "--allow-empty",
            "vm-101-pvc-b",
        ],
    );
    assert_eq!(c, 0, "{t}");
    assert!(t.contains("accepted by --allow-empty"), "{t}");
}

#[test]
fn what_does_not_exist_exits_66_and_says_where_to_look() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let to = env.root.join("r");
    let cases: &[&[&str]] = &[
        &["restore", "pvc", "--pvc", "nope/x", "--to", to.as_str()],
        &[
            "restore",
            "pvc",
            "--pvc",
            "vm-999-pvc-z",
            "--to",
            to.as_str(),
        ],
        &[
            "restore",
            "pvc",
            "--pvc",
            "vaultwarden/data",
            "--week",
            "2020-01",
            "--to",
            to.as_str(),
        ],
        &[
            "restore",
            "sqlite",
            "--pvc",
            "vaultwarden/data",
            "--to",
            to.as_str(),
        ],
        &["restore", "pfsense", "--to", to.as_str()],
        &["verify", "--week", "2020-01"],
        &["verify", "--pvc", "nope/x"],
    ];
    for args in cases {
        let (c, t) = code(&env, CTL, args);
        assert_eq!(c, 66, "{args:?}: {t}");
        assert!(
            t.contains("backupctl list") || t.contains("NAMESPACE/PVC"),
            "{args:?} does not say where to look: {t}"
        );
        assert!(!to.exists(), "{args:?} left {to}");
    }
    let help = env.run(CTL, &["--help"]);
    assert!(text(&help).contains("66"), "{}", text(&help));
}

/// Issue 21, item 6: `restore pvc --into-volume --dry-run` with the cluster down prints the plan
/// and the one cluster call that failed, once (kubectl logs each of its retries), and changes
/// nothing.
#[test]
fn a_dry_run_names_the_failed_cluster_call_once() {
    let env = Env::new();
    assert_eq!(env.day("2026-01-05").status.code(), Some(0));
    let bin = env.root.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let klog = "E1201 05:31:25.93713{i}   2551{i} memcache.go:265] \"Unhandled Error\" err=\"couldn't get current server API group list: dial tcp 127.0.0.1:8080: connect: connection refused\"";
    let mut said = String::new();
    for i in 0..4 {
        said.push_str(&klog.replace("{i}", &i.to_string()));
        said.push('\n');
    }
    said.push_str("The connection to the server localhost:8080 was refused - did you specify the right host or port?\n");
    std::fs::write(bin.join("said"), said).unwrap();
    let script = format!("#!/bin/sh\ncat '{bin}/said' >&2\nexit 1\n");
    std::fs::write(bin.join("kubectl"), script).unwrap();
    std::fs::set_permissions(
        bin.join("kubectl"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let before = std::fs::read_dir(env.root.join("mnt")).unwrap().count();
    let out = env
        .command(
            CTL,
            &[
                "--dry-run",
                "restore",
                "pvc",
                "--pvc",
                "vaultwarden/data",
                "--into-volume",
            ],
        )
        .env("PATH", format!("{bin}:{}", std::env::var("PATH").unwrap()))
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert_eq!(t.matches("FAILED").count(), 1, "{t}");
    assert_eq!(t.matches("connection refused").count(), 1, "{t}");
    assert_eq!(t.matches("The connection to the server").count(), 1, "{t}");
    assert!(t.contains("snapshot the live volume vm-100-pvc-a"), "{t}");
    assert!(t.contains("would stop at step 1"), "{t}");
    assert_eq!(
        std::fs::read_dir(env.root.join("mnt")).unwrap().count(),
        before,
        "{t}"
    );
}
