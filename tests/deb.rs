//! The Debian package: `cargo deb` builds it from the test's (debug) binary, `dpkg --root`
//! installs it into an empty root with its maintainer scripts, the installed binary checks the
//! installed conffile, purge removes the state, and lintian finds no error or warning.
//!
//! Needs root, cargo-deb, dpkg, lintian and systemd (sysusers, tmpfiles, systemd-analyze);
//! scripts/test installs them. The maintainer scripts run without chroot (`--force-script-chrootless`) and honour
//! `DPKG_ROOT`, so the host's users and units are never touched.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PACKAGE: &str = "dialerd";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd`, panicking with its output unless it succeeds.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (scripts/test installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cargo deb` on the binary this test run built; returns the .deb's path.
fn build_deb(out_dir: &Path) -> PathBuf {
    let built = Path::new(env!("CARGO_BIN_EXE_dialerd"));
    let target_dir = built.parent().and_then(Path::parent).unwrap();
    // The dev profile is what `cargo test` built; a release package is `cargo deb` alone.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .current_dir(manifest_dir())
        .args(["deb", "--no-build", "--profile", "dev", "--fast", "--quiet"])
        .arg("--output")
        .arg(out_dir)
        .env("CARGO_TARGET_DIR", target_dir));
    let deb = out_dir.join(format!(
        "{PACKAGE}_{}-1_amd64.deb",
        env!("CARGO_PKG_VERSION")
    ));
    assert!(deb.is_file(), "{} not written", deb.display());
    deb
}

/// An empty root with just the dpkg database `dpkg --root` needs.
fn empty_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    root
}

/// dpkg acting on `root` with the maintainer scripts run outside a chroot (the root has no
/// shell); libc6 and systemd are not in the empty root's database, hence --force-depends.
fn dpkg(root: &Path, args: &[&str]) -> Output {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--log=/dev/null",
        ])
        .args(args))
}

/// The uid or gid `name` has in the root's passwd or group file.
fn id_in(file: &Path, name: &str) -> u32 {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == name)
        .unwrap_or_else(|| panic!("{name} not in {}:\n{text}", file.display()))[2]
        .parse()
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn packaged_unit_and_config_are_the_shipped_ones_with_the_install_paths() {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new(manifest_dir().join("packaging/deb/derive")).arg(dir.path()));
    for file in ["dialerd.service", "dialerd.toml"] {
        let fresh = std::fs::read_to_string(dir.path().join(file)).unwrap();
        let committed =
            std::fs::read_to_string(manifest_dir().join("packaging/deb").join(file)).unwrap();
        assert!(
            fresh == committed,
            "packaging/deb/{file} is stale: run packaging/deb/derive and commit the result"
        );
    }
    let unit = std::fs::read_to_string(dir.path().join("dialerd.service")).unwrap();
    for line in [
        "ExecStart=/usr/bin/dialerd run --config /etc/dialerd/dialerd.toml",
        "User=dialerd",
        "Group=dialerd",
        "StateDirectory=dialerd",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} not in the unit");
    }
    assert!(
        !unit.contains("DynamicUser"),
        "the package has a static user"
    );
    // systemd-analyze verify, with ExecStart on the binary just built (it must exist).
    let verify = dir.path().join("verify");
    std::fs::create_dir(&verify).unwrap();
    std::fs::write(
        verify.join("dialerd.service"),
        unit.replace("/usr/bin/dialerd", env!("CARGO_BIN_EXE_dialerd")),
    )
    .unwrap();
    let out = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(verify.join("dialerd.service")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
    let cfg = dialerd::config::load_with_env(&dir.path().join("dialerd.toml"), Vec::new())
        .expect("the packaged config parses");
    assert_eq!(
        cfg.media.prompts_dir,
        Path::new("/usr/share/dialerd/prompts")
    );
    assert_eq!(cfg.state_dir, Path::new("/var/lib/dialerd"));

    // The package's changelog names the version Cargo.toml builds.
    let changelog =
        std::fs::read_to_string(manifest_dir().join("packaging/deb/changelog")).unwrap();
    let first = changelog.lines().next().unwrap();
    let want = format!("{PACKAGE} ({}-1) ", env!("CARGO_PKG_VERSION"));
    assert!(
        first.starts_with(&want),
        "packaging/deb/changelog starts {first:?}, wants {want:?}: add an entry"
    );
}

#[test]
fn package_installs_into_a_clean_root_checks_its_config_purges_and_passes_lintian() {
    let dir = tempfile::tempdir().unwrap();
    let deb = build_deb(dir.path());

    // Contents: binary, unit, user, tmpfiles, conffile, every prompt, docs; no state.
    let listing = stdout(&run(Command::new("dpkg-deb").arg("-c").arg(&deb)));
    let paths: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    let mut want: Vec<String> = [
        "./usr/bin/dialerd",
        "./etc/dialerd/dialerd.toml",
        "./usr/lib/systemd/system/dialerd.service",
        "./usr/lib/sysusers.d/dialerd.conf",
        "./usr/lib/tmpfiles.d/dialerd.conf",
        "./usr/share/doc/dialerd/copyright",
        "./usr/share/doc/dialerd/changelog.Debian.gz",
        "./usr/share/lintian/overrides/dialerd",
    ]
    .map(String::from)
    .to_vec();
    for lang in std::fs::read_dir(manifest_dir().join("prompts")).unwrap() {
        let lang = lang.unwrap().path();
        if !lang.is_dir() {
            continue;
        }
        for wav in std::fs::read_dir(&lang).unwrap() {
            let wav = wav.unwrap().path();
            want.push(format!(
                "./usr/share/dialerd/prompts/{}/{}",
                lang.file_name().unwrap().to_str().unwrap(),
                wav.file_name().unwrap().to_str().unwrap()
            ));
        }
    }
    for p in &want {
        assert!(
            paths.contains(&p.as_str()),
            "{p} not in the package:\n{listing}"
        );
    }
    assert!(
        !paths.iter().any(|p| p.starts_with("./var/")),
        "state is made on the host, not shipped:\n{listing}"
    );
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    assert_eq!(
        std::fs::read_to_string(control.join("conffiles")).unwrap(),
        "/etc/dialerd/dialerd.toml\n"
    );
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(
        postinst.contains("deb-systemd-helper enable dialerd.service"),
        "the unit is enabled on install:\n{postinst}"
    );
    assert!(
        !postinst.contains("deb-systemd-invoke start"),
        "the service must wait for its configuration, not start on install:\n{postinst}"
    );

    // Install into an empty root; the host's accounts stay as they were. dpkg and the
    // scripts' chown need root (CI and scripts/test run as root).
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "tests/deb.rs installs the package with dpkg --root, which needs root"
    );
    let host_passwd = std::fs::read("/etc/passwd").unwrap();
    let root = empty_root(dir.path());
    dpkg(&root, &["--install", deb.to_str().unwrap()]);
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), host_passwd);
    let uid = id_in(&root.join("etc/passwd"), "dialerd");
    let gid = id_in(&root.join("etc/group"), "dialerd");
    let state = root.join("var/lib/dialerd");
    let meta = std::fs::metadata(&state).expect("postinst makes /var/lib/dialerd");
    assert_eq!((meta.uid(), meta.gid(), mode(&state)), (uid, gid, 0o750));
    let conffile = root.join("etc/dialerd/dialerd.toml");
    let meta = std::fs::metadata(&conffile).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), mode(&conffile)),
        (0, gid, 0o640),
        "the config (trunk passwords) is readable by root and the daemon's group only"
    );
    let wants = root.join("etc/systemd/system/multi-user.target.wants/dialerd.service");
    assert_eq!(
        std::fs::read_link(&wants).expect("the unit is enabled"),
        Path::new("/usr/lib/systemd/system/dialerd.service")
    );

    // The installed binary accepts the installed conffile, whose paths are the package's.
    let out = run(Command::new(root.join("usr/bin/dialerd"))
        .arg("check-config")
        .arg("--config")
        .arg(&conffile)
        .env_remove("STATE_DIRECTORY"));
    let effective = stdout(&out);
    for line in [
        "state_dir = \"/var/lib/dialerd\"",
        "prompts_dir = \"/usr/share/dialerd/prompts\"",
    ] {
        assert!(
            effective.lines().any(|l| l == line),
            "{line} not in:\n{effective}"
        );
    }
    // The prompts it names load from the installed tree, the test prompt among them.
    let cfg = dialerd::config::load_with_env(&conffile, Vec::new()).unwrap();
    let installed = root.join(cfg.media.prompts_dir.strip_prefix("/").unwrap());
    let prompts = dialerd::media::prompt::PromptCache::load(&installed)
        .unwrap_or_else(|e| panic!("{}: {e}", installed.display()));
    prompts
        .require(&cfg.media.language, &cfg.media.test_prompt)
        .unwrap();
    let shipped =
        dialerd::media::prompt::PromptCache::load(&manifest_dir().join("prompts")).unwrap();
    let (mut got, mut want) = (prompts.languages(), shipped.languages());
    got.sort();
    want.sort();
    assert_eq!(got, want, "every language of prompts/ is installed");

    // Installing again (as an upgrade does) keeps the admin's edits, the user and the state.
    std::fs::write(state.join("dialer.db"), "kept until purge").unwrap();
    let edited = format!(
        "{}\n# edited by the admin\n",
        std::fs::read_to_string(&conffile).unwrap()
    );
    std::fs::write(&conffile, &edited).unwrap();
    dpkg(&root, &["--install", deb.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&conffile).unwrap(), edited);
    assert_eq!(id_in(&root.join("etc/passwd"), "dialerd"), uid);
    assert!(state.join("dialer.db").is_file());

    // Remove keeps the state and the conffile; purge takes both.
    dpkg(&root, &["--remove", PACKAGE]);
    assert!(state.join("dialer.db").is_file(), "remove kept the state");
    assert!(conffile.is_file(), "remove kept the conffile");
    assert!(!root.join("usr/bin/dialerd").exists());
    dpkg(&root, &["--purge", PACKAGE]);
    assert!(!state.exists(), "purge removed the state");
    assert!(
        !root.join("var/log/dialerd").exists(),
        "purge removed the logs"
    );
    assert!(!conffile.exists(), "purge removed the conffile");

    // lintian: no error and no warning (the ones that do not apply are overridden, with why).
    let out = Command::new("lintian")
        .arg("--fail-on=none")
        .arg(&deb)
        .output()
        .expect("cannot run lintian (scripts/test installs it)");
    let report = stdout(&out);
    let tags: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .collect();
    assert!(
        out.status.success() && tags.is_empty(),
        "lintian:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
