//! Every shipped config file parses, and the unit file passes `systemd-analyze verify`.

use std::path::Path;

#[test]
fn every_file_in_conf_parses() {
    let mut n = 0;
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("conf")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            dialerd::config::load_with_env(&path, Vec::new())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 1, "no config files found");
}

#[test]
fn systemd_unit_verifies_clean() {
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze not installed; unit not verified");
        return;
    };
    assert!(out.status.success());
    // verify wants ExecStart to exist; point it at the binary just built, nothing else changes.
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/dialerd.service"),
    )
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/dialerd run"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dialerd.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/dialerd", env!("CARGO_BIN_EXE_dialerd")),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn check_config_takes_lists_from_the_environment_comma_separated() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/dialerd.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dialerd"))
        .args(["check-config", "--config"])
        .arg(&conf)
        .env("DIALERD__SIP__DIGEST_ALGORITHMS", "MD5,SHA-256")
        .env("DIALERD__MEDIA__CODECS", "PCMA")
        .env("DIALERD__LINES__CALLER_ID_POOL", "+4930111222,04930333444")
        .env_remove("STATE_DIRECTORY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "digest_algorithms = [\"MD5\", \"SHA-256\"]",
        "codecs = [\"PCMA\"]",
        "caller_id_pool = [\"+4930111222\", \"04930333444\"]",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line} not in:\n{stdout}"
        );
    }
}

#[test]
fn check_config_checks_the_store_url_and_masks_its_password() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/dialerd.toml");
    let check = |url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dialerd"))
            .args(["check-config", "--config"])
            .arg(&conf)
            .env("DIALERD__STORE__URL", url)
            .env_remove("STATE_DIRECTORY")
            .output()
            .unwrap()
    };
    let out = check("postgres://dialerd:hunter2@db.example:5432/dialerd");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == "url = \"postgres://dialerd:********@db.example:5432/dialerd\""),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");
    let out = check("mysql://db.example/dialerd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("DIALERD__STORE__URL") && stderr.contains("`store.url`"),
        "{stderr}"
    );
    assert!(stderr.contains("sqlite:// or postgres://"), "{stderr}");
}
