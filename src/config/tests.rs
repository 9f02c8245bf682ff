use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    from_toml_str(text, "test.toml", Vec::<(String, String)>::new())
}

fn parse_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    from_toml_str(
        text,
        "test.toml",
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

#[test]
fn empty_file_gives_defaults() {
    assert_eq!(parse("").unwrap(), Config::default());
}

#[test]
fn unknown_top_level_key_is_named_with_file() {
    let err = parse("stat_dir = \"/tmp\"\n").unwrap_err().to_string();
    assert!(err.starts_with("test.toml: key `stat_dir`"), "{err}");
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn unknown_nested_key_is_named_with_file() {
    let err = parse("[http]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("test.toml: key `http.listne`"), "{err}");
}

#[test]
fn unknown_key_in_trunk_is_named_with_index() {
    let err = parse("[[trunks]]\nname = \"a\"\nhost = \"h\"\npasword = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("key `trunks[0].pasword`"), "{err}");
}

#[test]
fn bad_address_names_key_and_want() {
    let err = parse("[http]\nlisten = \"localhost\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("test.toml: key `http.listen`"), "{err}");
    assert!(err.contains("socket address"), "{err}");
}

#[test]
fn bad_port_is_rejected() {
    let err = parse("[[trunks]]\nname = \"a\"\nhost = \"h\"\nport = 70000\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("key `trunks[0].port`"), "{err}");
}

#[test]
fn bad_duration_names_key() {
    let err = parse("[shutdown]\ndrain_timeout = \"ten seconds\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("key `shutdown.drain_timeout`"), "{err}");
    let err = parse("[shutdown]\ndrain_timeout = \"2h\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 1h"), "{err}");
}

#[test]
fn bad_log_level_is_rejected() {
    let err = parse("[log]\nlevel = \"loud\"\n").unwrap_err().to_string();
    assert!(err.contains("key `log.level`"), "{err}");
}

#[test]
fn env_overrides_file() {
    let cfg = parse_env(
        "[http]\nlisten = \"127.0.0.1:9090\"\n",
        &[
            ("DIALERD__HTTP__LISTEN", "127.0.0.1:0"),
            ("DIALERD__LOG__LEVEL", "debug"),
            ("DIALERD__SIP__LISTEN", "127.0.0.1:5062,[::1]:5062"),
            ("DIALERD__SHUTDOWN__DRAIN_TIMEOUT", "250ms"),
            ("OTHER__HTTP__LISTEN", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.http.listen.port(), 0);
    assert_eq!(cfg.log.level, "debug");
    assert_eq!(cfg.sip.listen.len(), 2);
    assert!(cfg.sip.listen[1].is_ipv6());
    assert_eq!(
        cfg.shutdown.drain_timeout,
        std::time::Duration::from_millis(250)
    );
}

#[test]
fn unknown_env_key_names_the_variable() {
    let err = parse_env("", &[("DIALERD__HTTP__LISTN", "127.0.0.1:1")])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("environment variable DIALERD__HTTP__LISTN"),
        "{err}"
    );
}

#[test]
fn bad_env_value_names_the_variable() {
    let err = parse_env("", &[("DIALERD__HTTP__LISTEN", "nope")])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("environment variable DIALERD__HTTP__LISTEN: key `http.listen`"),
        "{err}"
    );
}

#[test]
fn duplicate_trunk_names_rejected() {
    let err =
        parse("[[trunks]]\nname = \"a\"\nhost = \"h\"\n[[trunks]]\nname = \"a\"\nhost = \"i\"\n")
            .unwrap_err()
            .to_string();
    assert!(err.contains("key `trunks[1].name`"), "{err}");
}

#[test]
fn secrets_are_masked_when_printed() {
    let cfg =
        parse("[[trunks]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword = \"hunter2\"\n")
            .unwrap();
    assert_eq!(cfg.trunks[0].password.expose(), "hunter2");
    let shown = toml::to_string(&cfg).unwrap();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("password = \"********\""), "{shown}");
    assert!(!format!("{cfg:?}").contains("hunter2"));
}

#[test]
fn printed_config_parses_back_to_itself() {
    let cfg = parse("[log]\nlevel = \"debug\"\n[[trunks]]\nname = \"a\"\nhost = \"h\"\n").unwrap();
    let again = parse(&toml::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(cfg, again);
}

#[test]
fn restart_needed_lists_changed_sections() {
    let a = Config::default();
    let mut b = a.clone();
    b.log.level = "debug".into();
    assert!(a.restart_needed(&b).is_empty());
    b.http.listen.set_port(1);
    assert_eq!(a.restart_needed(&b), vec!["http"]);
}

#[test]
fn bad_enum_value_says_what_is_wanted() {
    let err = parse("[log]\nformat = \"xml\"\n").unwrap_err().to_string();
    assert!(
        err.contains("key `log.format`") && err.contains("wanted \"text\" or \"json\""),
        "{err}"
    );
}

#[test]
fn toml_syntax_error_is_one_line_naming_the_file() {
    let err = parse("[log\n").unwrap_err().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("test.toml") && err.contains("line 1"), "{err}");
}

#[test]
fn env_list_error_names_the_variable_without_index() {
    let err = parse_env("", &[("DIALERD__SIP__LISTEN", "x")])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("environment variable DIALERD__SIP__LISTEN: key `sip.listen[0]`"),
        "{err}"
    );
    assert!(err.contains("wanted IP:PORT"), "{err}");
}

#[test]
fn trunk_inbound_networks_parse_and_bad_ones_are_named() {
    let cfg = parse("[[trunks]]\nname = \"a\"\nhost = \"h\"\ninbound_from = [\"192.0.2.0/24\", \"2001:db8::1\"]\n").unwrap();
    assert!(cfg.trunks[0].inbound_from[0]
        .0
        .contains(&"192.0.2.77".parse::<std::net::IpAddr>().unwrap()));
    assert!(cfg.trunks[0].inbound_from[1]
        .0
        .contains(&"2001:db8::1".parse::<std::net::IpAddr>().unwrap()));
    let err = parse("[[trunks]]\nname = \"a\"\nhost = \"h\"\ninbound_from = [\"192.0.2.0/33\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key `trunks[0].inbound_from[0]`") && err.contains("CIDR"),
        "{err}"
    );
}

#[test]
fn bad_media_and_route_values_name_their_key() {
    for (toml, key) in [
        ("[media]\nrtp_port_min = 10001\n", "media.rtp_port_min"),
        (
            "[media]\nrtp_port_min = 20000\nrtp_port_max = 20000\n",
            "media.rtp_port_max",
        ),
        ("[media]\ncodecs = [\"G729\"]\n", "media.codecs"),
        ("[media]\ncodecs = []\n", "media.codecs"),
        ("[media]\nlanguage = \"../en\"\n", "media.language"),
        ("[media]\ntest_prompt = \"a/b\"\n", "media.test_prompt"),
        ("[sip]\nrelay_prefix = \"\"\n", "sip.relay_prefix"),
        ("[sip]\nprompt_number = \"a b\"\n", "sip.prompt_number"),
        (
            "[sip]\nagent_test_number = \"1;x\"\n",
            "sip.agent_test_number",
        ),
        (
            "[sip]\nagent_login_number = \"\"\n",
            "sip.agent_login_number",
        ),
        (
            "[sip]\necho_number = \"1000\"\nagent_login_number = \"1000\"\n",
            "sip.agent_login_number",
        ),
    ] {
        let err = parse(toml).unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{toml}: {err}");
    }
}

#[test]
fn flow_webhook_ca_file_must_exist_and_unknown_flow_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "").unwrap();
    let cfg = parse(&format!(
        "[flow]\nwebhook_ca_file = {:?}\n",
        ca.display().to_string()
    ))
    .unwrap();
    assert_eq!(cfg.flow.webhook_ca_file.as_deref(), Some(ca.as_path()));
    let err = parse("[flow]\nwebhook_ca_file = \"/nonexistent/ca.pem\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("key `flow.webhook_ca_file`"), "{err}");
    assert!(err.contains("not a file"), "{err}");
    let err = parse("[flow]\nwebhook_ca = \"/tmp/ca.pem\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("test.toml: key `flow.webhook_ca`"), "{err}");
}

#[test]
fn import_limits_parse_are_checked_and_need_a_restart() {
    let cfg =
        parse("[import]\nmax_field_bytes = 100\nmax_columns = 5\nmax_row_bytes = 300\n").unwrap();
    assert_eq!(
        cfg.import,
        ImportConfig {
            max_field_bytes: 100,
            max_columns: 5,
            max_row_bytes: 300
        }
    );
    assert_eq!(Config::default().restart_needed(&cfg), vec!["import"]);
    for (toml, key) in [
        ("[import]\nmax_columns = 0\n", "import.max_columns"),
        ("[import]\nmax_columns = 10001\n", "import.max_columns"),
        ("[import]\nmax_row_bytes = 0\n", "import.max_row_bytes"),
        (
            "[import]\nmax_row_bytes = 16777217\n",
            "import.max_row_bytes",
        ),
        ("[import]\nmax_field_bytes = 0\n", "import.max_field_bytes"),
        (
            "[import]\nmax_field_bytes = 2000\nmax_row_bytes = 1000\n",
            "import.max_field_bytes",
        ),
        ("[import]\nmax_cell_bytes = 10\n", "import.max_cell_bytes"),
    ] {
        let err = parse(toml).unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{toml}: {err}");
    }
}

#[test]
fn session_settings_parse_are_checked_and_need_a_restart() {
    let cfg = parse("[sessions]\npause_reasons = [\"coffee\"]\nring_timeout = \"20s\"\n").unwrap();
    assert_eq!(
        cfg.sessions,
        SessionsConfig {
            pause_reasons: vec!["coffee".into()],
            ring_timeout: std::time::Duration::from_secs(20),
        }
    );
    assert_eq!(
        Config::default().sessions.pause_reasons,
        ["break", "lunch", "meeting", "training"]
    );
    assert_eq!(Config::default().restart_needed(&cfg), vec!["sessions"]);
    for (toml, key) in [
        (
            "[sessions]\npause_reasons = [\"Coffee Break\"]\n",
            "sessions.pause_reasons[0]",
        ),
        (
            "[sessions]\npause_reasons = [\"ok\", \"\"]\n",
            "sessions.pause_reasons[1]",
        ),
        (
            "[sessions]\nring_timeout = \"1s\"\n",
            "sessions.ring_timeout",
        ),
        (
            "[sessions]\nring_timeout = \"10m\"\n",
            "sessions.ring_timeout",
        ),
        ("[sessions]\nwrap_up = \"10s\"\n", "sessions.wrap_up"),
    ] {
        let err = parse(toml).unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{toml}: {err}");
    }
}

/// Every list key with two values, written as the README says lists are given in the
/// environment: comma-separated.
const LIST_SAMPLES: &[(&str, &str)] = &[
    ("http.allowed_hosts", "dialer.example.com,pbx.example.com"),
    ("lines.caller_id_pool", "+4930111222,04930333444"),
    ("media.codecs", "PCMA,PCMU"),
    ("sessions.pause_reasons", "coffee,lunch"),
    ("sip.digest_algorithms", "MD5,SHA-256"),
    ("sip.dns_servers", "127.0.0.1:5353,[::1]:53"),
    ("sip.listen", "127.0.0.1:5062,[::1]:5062"),
    ("sip.tls_listen", "127.0.0.1:5061,[::1]:5061"),
    ("webrtc.addresses", "192.0.2.7,2001:db8::7"),
    ("webrtc.codecs", "opus,PCMU"),
];

/// The value at dotted `key` of the configuration as serialised.
fn value_at(cfg: &Config, key: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(cfg).unwrap();
    for part in key.split('.') {
        v = v[part].take();
    }
    v
}

#[test]
fn every_list_key_takes_comma_separated_values_from_the_environment() {
    let sampled: Vec<&str> = LIST_SAMPLES.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        list_keys(),
        sampled,
        "every list key needs a sample in LIST_SAMPLES (and the README's word that lists can \
         be given comma-separated)"
    );
    for (key, value) in LIST_SAMPLES {
        let var = env_name(key);
        let items: Vec<&str> = value.split(',').collect();
        // Two values, and one alone (a lone number must not turn into a number).
        // TLS listeners need a certificate (a test one, never used to serve).
        let base = if *key == "sip.tls_listen" {
            let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls");
            format!("[sip]\ntls_certificate = \"{data}/test.pem\"\ntls_private_key = \"{data}/test.key\"\n")
        } else {
            String::new()
        };
        for given in [value.to_string(), items[0].to_string()] {
            let cfg = parse_env(&base, &[(&var, &given)])
                .unwrap_or_else(|e| panic!("{var}={given}: {e}"));
            let want: Vec<&str> = given.split(',').collect();
            assert_eq!(
                value_at(&cfg, key),
                serde_json::json!(want),
                "{var}={given}"
            );
        }
    }
}

#[test]
fn env_values_keep_leading_zeros_and_plus_and_still_parse_as_numbers() {
    let cfg = parse_env(
        "",
        &[
            ("DIALERD__LINES__ACCESS_NUMBER", "04930999111"),
            ("DIALERD__LINES__CALLER_ID", "+4930999111"),
            ("DIALERD__SIP__MAX_CALLS", "25"),
            ("DIALERD__SIP__FORCE_RPORT", "true"),
            ("DIALERD__MEDIA__RTP_PORT_MIN", "20000"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.lines.access_number.as_deref(), Some("04930999111"));
    assert_eq!(cfg.lines.caller_id.as_deref(), Some("+4930999111"));
    assert_eq!(cfg.sip.max_calls, 25);
    assert!(cfg.sip.force_rport);
    assert_eq!(cfg.media.rtp_port_min, 20000);
    let err = parse_env("", &[("DIALERD__SIP__MAX_CALLS", "many")])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("environment variable DIALERD__SIP__MAX_CALLS: key `sip.max_calls`"),
        "{err}"
    );
}

#[test]
fn store_url_is_checked_masked_and_needs_a_restart() {
    assert_eq!(Config::default().store.url.expose(), "");
    let cfg =
        parse("[store]\nurl = \"postgres://dialerd:hunter2@db.example:5432/dialerd\"\n").unwrap();
    assert_eq!(
        cfg.store.url.expose(),
        "postgres://dialerd:hunter2@db.example:5432/dialerd"
    );
    assert_eq!(Config::default().restart_needed(&cfg), vec!["store"]);
    let shown = toml::to_string(&cfg).unwrap();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("url = \"postgres://dialerd:********@db.example:5432/dialerd\""),
        "{shown}"
    );
    assert!(!format!("{cfg:?}").contains("hunter2"));
    let cfg = parse_env("", &[("DIALERD__STORE__URL", "sqlite://other.db")]).unwrap();
    assert_eq!(cfg.store.url.expose(), "sqlite://other.db");
    for (toml, want) in [
        (
            "[store]\nurl = \"mysql://db/dialerd\"\n",
            "sqlite:// or postgres://",
        ),
        (
            "[store]\nurl = \"postgres://db:5432\"\n",
            "with the database",
        ),
        ("[store]\nurl = \"sqlite://\"\n", "database file"),
        (
            "[store]\nurl = \"postgres://db/x\"\nuri = \"\"\n",
            "`store.uri`",
        ),
    ] {
        let err = parse(toml).unwrap_err().to_string();
        assert!(err.contains(want), "{toml}: {err}");
        assert!(err.contains("store.ur"), "{toml}: {err}");
    }
}

#[test]
fn webrtc_addresses_parse_refuse_wildcards_and_need_a_restart() {
    assert_eq!(
        Config::default().webrtc.addresses,
        vec![std::net::IpAddr::from([127, 0, 0, 1])]
    );
    let cfg = parse("[webrtc]\naddresses = [\"192.0.2.7\", \"2001:db8::7\"]\n").unwrap();
    assert_eq!(cfg.webrtc.addresses.len(), 2);
    assert_eq!(Config::default().restart_needed(&cfg), vec!["webrtc"]);
    assert!(parse("[webrtc]\naddresses = []\n").is_ok());
    let cfg = parse("[webrtc]\ncodecs = [\"Opus\", \"pcma\"]\n").unwrap();
    assert_eq!(cfg.webrtc.codecs, ["Opus", "pcma"]);
    assert_eq!(Config::default().webrtc.codecs, ["PCMU", "PCMA", "opus"]);
    for (toml, key) in [
        ("[webrtc]\naddresses = [\"0.0.0.0\"]\n", "webrtc.addresses"),
        ("[webrtc]\naddresses = [\"::\"]\n", "webrtc.addresses"),
        (
            "[webrtc]\naddresses = [\"browser\"]\n",
            "webrtc.addresses[0]",
        ),
        ("[webrtc]\nstun = \"x\"\n", "webrtc.stun"),
        ("[webrtc]\ncodecs = []\n", "webrtc.codecs"),
        ("[webrtc]\ncodecs = [\"G722\"]\n", "webrtc.codecs"),
    ] {
        let err = parse(toml).unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{toml}: {err}");
    }
}

#[test]
fn node_name_defaults_to_the_host_name_is_checked_and_needs_a_restart() {
    let cfg = Config::default();
    assert_eq!(cfg.node.name, "");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim();
    if valid_node_name(host) {
        assert_eq!(cfg.node.resolved(), host);
    } else {
        assert_eq!(cfg.node.resolved(), "dialerd");
    }
    let named = parse("[node]\nname = \"dialer-2.example\"\n").unwrap();
    assert_eq!(named.node.resolved(), "dialer-2.example");
    assert_eq!(Config::default().restart_needed(&named), vec!["node"]);
    let env = parse_env("", &[("DIALERD__NODE__NAME", "n3")]).unwrap();
    assert_eq!(env.node.resolved(), "n3");
    for bad in ["a b", "ünode", &"x".repeat(65), "a\"b"] {
        let err = parse(&format!("[node]\nname = {bad:?}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("node.name"), "{bad}: {err}");
    }
    let err = parse("[node]\nnmae = \"x\"\n").unwrap_err().to_string();
    assert!(err.contains("node.nmae"), "{err}");
}

#[test]
fn node_sip_uri_is_checked_and_else_derived_from_the_bound_sip_address() {
    let bound: std::net::SocketAddr = "10.0.0.11:5071".parse().unwrap();
    let cfg = Config::default();
    assert_eq!(cfg.node.sip_uri, "");
    assert_eq!(cfg.node.sip_uri_for(bound), "sip:10.0.0.11:5071");
    let v6: std::net::SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
    assert_eq!(cfg.node.sip_uri_for(v6), "sip:[2001:db8::1]:5060");
    let any: std::net::SocketAddr = "0.0.0.0:5060".parse().unwrap();
    let derived = cfg.node.sip_uri_for(any);
    assert!(
        derived.starts_with("sip:") && derived.ends_with(":5060") && !derived.contains("0.0.0.0"),
        "{derived}"
    );
    let set = parse("[node]\nsip_uri = \"sip:dialer-1.example:5060;transport=tcp\"\n").unwrap();
    assert_eq!(
        set.node.sip_uri_for(bound),
        "sip:dialer-1.example:5060;transport=tcp"
    );
    assert_eq!(Config::default().restart_needed(&set), vec!["node"]);
    let env = parse_env("", &[("DIALERD__NODE__SIP_URI", "sips:n3.example")]).unwrap();
    assert_eq!(env.node.sip_uri_for(bound), "sips:n3.example");
    for bad in [
        "10.0.0.11:5060",
        "sip:",
        "sip:a b",
        "http://x",
        &format!("sip:{}", "x".repeat(252)),
    ] {
        let err = parse(&format!("[node]\nsip_uri = {bad:?}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("node.sip_uri"), "{bad}: {err}");
    }
}
