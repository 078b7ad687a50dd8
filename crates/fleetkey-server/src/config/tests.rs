//! Settings: defaults, files, the environment, validation.
use super::*;

#[test]
fn defaults_validate_and_env_overrides_apply() {
    let mut c = Config::default();
    c.validate().unwrap();
    let env = |k: &str| match k {
        "FLEETKEY_LISTEN" => Some("0.0.0.0:9000".to_owned()),
        "FLEETKEY_RATE_LIMIT_GLOBAL" => Some("77".to_owned()),
        _ => None,
    };
    c.apply_env(env).unwrap();
    assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(c.rate_limit.global_per_sec, 77);
}

#[test]
fn the_store_is_sqlite_unless_a_postgres_url_is_given() {
    let with = |u: Option<&str>| Config {
        store_url: u.map(ServiceUrl::new),
        ..Config::default()
    };
    for u in [None, Some("sqlite://")] {
        let c = with(u);
        c.validate().unwrap();
        assert_eq!(c.postgres_url(), None);
    }
    let c = with(Some("postgres://fk@db:5432/fk"));
    c.validate().unwrap();
    assert_eq!(c.postgres_url(), Some("postgres://fk@db:5432/fk"));
    let e = with(Some("sqlite:///var/lib/fk.db"))
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("data_dir"), "{e}");
    let e = with(Some("mysql://u:hunter2@db/fk"))
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("store_url"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let mut c = Config::default();
    c.apply_env(|k| (k == "FLEETKEY_STORE_POOL_SIZE").then(|| "40".to_owned()))
        .unwrap();
    assert_eq!(c.store_pool_size, 40);
    c.store_pool_size = 0;
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("store_pool_size")
    );
}

#[test]
fn service_url_passwords_never_reach_debug_or_display() {
    let mut c = Config::default();
    c.apply_env(|k| match k {
        "FLEETKEY_STORE_URL" => Some("postgres://fk:pg-secret@db/fk".to_owned()),
        "FLEETKEY_REDIS_URL" => Some("redis://:redis-secret@cache:6379".to_owned()),
        "FLEETKEY_TELEMETRY_MQTT_URL" => Some("mqtt://dev:mqtt-secret@broker:1883".to_owned()),
        _ => None,
    })
    .unwrap();
    let shown = format!("{c:?} {}", c.redis_url.as_ref().unwrap());
    for secret in ["pg-secret", "redis-secret", "mqtt-secret"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("cache:6379"), "{shown}");
    assert_eq!(c.postgres_url(), Some("postgres://fk:pg-secret@db/fk"));
}

#[test]
fn errors_name_the_key() {
    let e = Config::default()
        .apply_env(|k| (k == "FLEETKEY_MAX_BODY_BYTES").then(|| "lots".to_owned()))
        .unwrap_err();
    assert!(e.to_string().contains("FLEETKEY_MAX_BODY_BYTES"), "{e}");
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("fleetkey.toml");
    std::fs::write(&file, "max_body_bytes = 4096\nlisten = \"nowhere\"\n").unwrap();
    let e = Config::load(Some(&file)).unwrap_err().to_string();
    assert!(
        e.contains("line 2 (listen)") && e.contains("like 127.0.0.1:8400"),
        "{e}"
    );
    std::fs::write(&file, "device_listen = \"somewhere\"\n").unwrap();
    let e = Config::load(Some(&file)).unwrap_err().to_string();
    assert!(
        e.contains("(device_listen)") && e.contains("(or off)"),
        "{e}"
    );
    let e = Config::default()
        .apply_env(|k| (k == "FLEETKEY_DEVICE_UDP_LISTEN").then(|| "udp".to_owned()))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("FLEETKEY_DEVICE_UDP_LISTEN (device_udp_listen)"),
        "{e}"
    );
    let e = Config::default()
        .apply_env(|k| (k == "FLEETKEY_RATE_LIMIT_GLOBAL").then(|| "-1".to_owned()))
        .unwrap_err();
    assert!(e.to_string().contains("(rate_limit.global_per_sec)"), "{e}");
    let e = toml::from_str::<Config>("listen = \"127.0.0.1:1\"\nbogus = 1\n").unwrap_err();
    assert!(e.message().contains("bogus"), "{}", e.message());
    let c: Config = toml::from_str("device_listen = \"off\"\nlog_format = \"json\"").unwrap();
    assert_eq!(
        (c.device_listen_addr(), c.log_format),
        (None, LogFormat::Json)
    );
}

#[test]
fn an_unknown_key_is_named_on_its_own_line() {
    let text = "listen = \"127.0.0.1:1\"\n\n# a comment\nbogus = 1\n";
    let e = Config::from_toml(text, "f.toml").unwrap_err().to_string();
    assert!(e.contains("f.toml line 4 (bogus)"), "{e}");
    let text = "[rate_limit]\nper_token_per_sec = 5\nburst = 2\n";
    let e = Config::from_toml(text, "f.toml").unwrap_err().to_string();
    assert!(e.contains("f.toml line 3 (burst)"), "{e}");
}

#[test]
fn the_defaults_file_is_the_defaults_and_names_every_setting() {
    let parsed = Config::from_toml(DEFAULTS_TOML, "defaults.toml").unwrap();
    assert_eq!(format!("{parsed:?}"), format!("{:?}", Config::default()));
    parsed.validate().unwrap();
    // Every field of Config and RateLimitConfig appears, set or commented out.
    let source = include_str!("mod.rs");
    for section in ["pub struct Config {", "pub struct RateLimitConfig {"] {
        let body = &source[source.find(section).unwrap()..];
        let body = &body[..body.find("\n}").unwrap()];
        for line in body.lines() {
            let Some(field) = line.trim().strip_prefix("pub ") else {
                continue;
            };
            let Some((name, _)) = field.split_once(':') else {
                continue;
            };
            if name.contains(' ') {
                continue;
            }
            assert!(
                DEFAULTS_TOML.contains(&format!("\n{name} = "))
                    || DEFAULTS_TOML.contains(&format!("\n# {name} = "))
                    || name == "rate_limit"
                    // Not a setting: where the settings were read from.
                    || name == "source_file",
                "{name} is missing from defaults.toml"
            );
        }
    }
}

/// deploy/fleetkey.toml, the production example, parses, validates (its TLS files
/// aside, which exist only on a real host) and names every setting the defaults
/// file names.
#[test]
fn the_deploy_example_is_valid_and_complete() {
    let example = include_str!("../../../../deploy/fleetkey.toml");
    let mut parsed = Config::from_toml(example, "deploy/fleetkey.toml").unwrap();
    assert!(parsed.tls_cert.is_some() && parsed.tls_key.is_some());
    (parsed.tls_cert, parsed.tls_key) = (None, None);
    // The recipients are files on the production host: one recipient instead.
    assert_eq!(parsed.backup_recipients.split(',').count(), 2);
    parsed.backup_recipients = fleetkey_crypto::keyfile::IdentityFile::generate()
        .unwrap()
        .recipient_string();
    parsed.validate().unwrap();
    let setting = |line: &str| {
        let l = line.strip_prefix("# ").unwrap_or(line);
        l.split_once(" = ")
            .filter(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .map(|(k, _)| k.to_owned())
    };
    let names = |text: &str| -> std::collections::BTreeSet<String> {
        text.lines().filter_map(setting).collect()
    };
    let missing: Vec<_> = names(DEFAULTS_TOML)
        .difference(&names(example))
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "missing from deploy/fleetkey.toml: {missing:?}"
    );
}

#[test]
fn trace_settings_are_checked() {
    for (var, value, key) in [
        ("FLEETKEY_OTLP_ENDPOINT", "collector:4318", "otlp_endpoint"),
        (
            "FLEETKEY_OTLP_ENDPOINT",
            "grpc://collector:4317",
            "otlp_endpoint",
        ),
        (
            "FLEETKEY_OTLP_ENDPOINT",
            "http://col lector",
            "otlp_endpoint",
        ),
        ("FLEETKEY_TRACE_SAMPLE_RATIO", "1.5", "trace_sample_ratio"),
        ("FLEETKEY_TRACE_SAMPLE_RATIO", "-0.1", "trace_sample_ratio"),
        ("FLEETKEY_TRACE_SAMPLE_RATIO", "NaN", "trace_sample_ratio"),
    ] {
        let mut c = Config::default();
        c.apply_env(|k| (k == var).then(|| value.to_owned()))
            .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(key), "{value}: {e}");
    }
    // A collector's credentials in the URL stay out of the error.
    let mut c = Config::default();
    c.apply_env(|k| (k == "FLEETKEY_OTLP_ENDPOINT").then(|| "ftp://u:otlp-secret@c".to_owned()))
        .unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(!e.contains("otlp-secret"), "{e}");
    let mut c = Config::default();
    c.apply_env(|k| match k {
        "FLEETKEY_OTLP_ENDPOINT" => Some("https://collector.internal:4318".to_owned()),
        "FLEETKEY_TRACE_SAMPLE_RATIO" => Some("0.25".to_owned()),
        "FLEETKEY_TRACE_ACCEPT_PARENT" => Some("false".to_owned()),
        _ => None,
    })
    .unwrap();
    c.validate().unwrap();
    assert_eq!(
        crate::observability::traces_url(c.otlp_endpoint.as_ref().unwrap()),
        "https://collector.internal:4318/v1/traces"
    );
    assert!((c.trace_sample_ratio - 0.25).abs() < f64::EPSILON && !c.trace_accept_parent);
}
