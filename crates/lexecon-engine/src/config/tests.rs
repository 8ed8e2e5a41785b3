//! Tests of configuration layering and the errors a user sees.

#![allow(
    clippy::result_large_err,
    reason = "figment::Jail's closures return figment::Error"
)]

use figment::Jail;

use super::*;

/// `Jail::expect_with` holding the crate's environment lock: a jail sets real process
/// environment variables, which `init` and `Config::load` in other tests would read.
fn jail(f: impl FnOnce(&mut Jail) -> figment::error::Result<()>) {
    let _env = crate::TEST_ENV_LOCK.blocking_lock();
    Jail::expect_with(f);
}

fn load_in(jail: &Jail) -> Result<Config, ConfigError> {
    Config::load(&Sources {
        data_dir: Some(jail.directory().to_path_buf()),
        config_file: None,
    })
}

#[test]
fn defaults_match_the_contract() {
    jail(|jail| {
        let config = load_in(jail).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(config.server.metrics_listen.to_string(), "127.0.0.1:9464");
        assert_eq!(config.tokens.ttl_secs, 300);
        assert_eq!(config.tokens.clock_skew_secs, 5);
        assert_eq!(config.redis.url, None);
        assert_eq!(
            config.database_url(),
            format!("sqlite://{}", jail.directory().join("lexecon.db").display())
        );
        assert_eq!(config.policy_file(), jail.directory().join("policy.toml"));
        Ok(())
    });
}

#[test]
fn the_init_template_parses_to_the_defaults() {
    jail(|jail| {
        jail.create_file(CONFIG_FILE, &default_config_file("lexecon-1"))?;
        let mut config = load_in(jail).unwrap();
        config.data_dir = PathBuf::new();
        config.config_file = None;
        assert_eq!(config, Config::default());
        Ok(())
    });
}

#[test]
fn file_overrides_defaults_and_env_overrides_file() {
    jail(|jail| {
        jail.create_file(
            CONFIG_FILE,
            "[tokens]\nttl_secs = 60\nclock_skew_secs = 2\n",
        )?;
        jail.set_env("LEXECON_TOKENS__TTL_SECS", "30");
        jail.set_env("LEXECON_REDIS__URL", "redis://127.0.0.1/");
        jail.set_env("LEXECON_TOKEN", "lxk_not_configuration");
        let config = load_in(jail).unwrap();
        assert_eq!(config.tokens.ttl_secs, 30, "env wins over the file");
        assert_eq!(
            config.tokens.clock_skew_secs, 2,
            "the file wins over defaults"
        );
        assert_eq!(config.redis.url.as_deref(), Some("redis://127.0.0.1/"));
        Ok(())
    });
}

#[test]
fn unknown_keys_are_errors_naming_key_and_source() {
    jail(|jail| {
        jail.create_file(CONFIG_FILE, "[tokens]\nttl_sec = 60\n")?;
        let msg = load_in(jail).unwrap_err().to_string();
        assert!(msg.contains("ttl_sec"), "{msg}");
        assert!(msg.contains("lexecon.toml"), "{msg}");
        Ok(())
    });
    jail(|jail| {
        jail.set_env("LEXECON_SERVER__LISTN", "x");
        let msg = load_in(jail).unwrap_err().to_string();
        assert!(msg.contains("listn"), "{msg}");
        assert!(msg.to_lowercase().contains("environment"), "{msg}");
        Ok(())
    });
}

#[test]
fn wrong_types_and_out_of_range_values_name_the_key() {
    jail(|jail| {
        jail.create_file(CONFIG_FILE, "[server]\nlisten = \"not an address\"\n")?;
        let msg = load_in(jail).unwrap_err().to_string();
        assert!(msg.contains("server.listen"), "{msg}");
        Ok(())
    });
    jail(|jail| {
        jail.set_env("LEXECON_TOKENS__TTL_SECS", "0");
        let msg = load_in(jail).unwrap_err().to_string();
        assert!(
            msg.contains("tokens.ttl_secs must be between 1 and 86400, got 0"),
            "{msg}"
        );
        assert!(
            msg.contains("LEXECON_TOKENS__TTL_SECS") || msg.to_lowercase().contains("environment"),
            "{msg}"
        );
        Ok(())
    });
    jail(|jail| {
        jail.create_file(CONFIG_FILE, "[database]\nurl = \"mysql://x\"\n")?;
        let msg = load_in(jail).unwrap_err().to_string();
        assert!(
            msg.contains("database.url must start with sqlite: or postgres://"),
            "{msg}"
        );
        assert!(msg.contains("lexecon.toml"), "{msg}");
        Ok(())
    });
}

#[test]
fn a_missing_explicit_config_file_is_an_error() {
    let err = Config::load(&Sources {
        data_dir: None,
        config_file: Some("/nonexistent/lexecon.toml".into()),
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/lexecon.toml"),
        "{err}"
    );
}

#[test]
fn oidc_providers_and_mfa_roles_come_from_the_auth_section() {
    jail(|jail| {
        jail.create_file(
            CONFIG_FILE,
            "[auth]\nmfa_required_roles = [\"admin\"]\n[[auth.oidc]]\nname = \"corp\"\nissuer = \"https://login.example.com\"\nclient_id = \"lexecon\"\nrole_map = { \"lexecon-admins\" = \"admin\" }\njwks_file = \"/etc/lexecon/jwks.json\"\n",
        )?;
        let config = load_in(jail).unwrap();
        assert_eq!(
            config.auth.mfa_required_roles,
            vec![lexecon_auth::Role::Admin]
        );
        let auth = crate::auth_config(&config).unwrap();
        assert_eq!(auth.oidc_providers.len(), 1);
        assert_eq!(config.auth.oidc[0].name, "corp");
        assert_eq!(config.auth.oidc[0].default_role, lexecon_auth::Role::Viewer);
        assert_eq!(auth.mfa_required_roles, vec![lexecon_auth::Role::Admin]);
        Ok(())
    });
    jail(|jail| {
        jail.create_file(CONFIG_FILE, "[[auth.oidc]]\nname = \"corp\"\nissuer = \"i\"\nclient_id = \"c\"\njwks_url = \"https://login.example.com/jwks\"\njwks_cache_secs = 60\n")?;
        let config = load_in(jail).unwrap();
        assert_eq!(config.auth.oidc[0].jwks_cache_secs, 60);
        let auth = crate::auth_config(&config).unwrap();
        assert_eq!(auth.oidc_providers[0].config.jwks_cache_secs, 60);
        Ok(())
    });
}

#[test]
fn an_oidc_provider_needs_exactly_one_safe_key_source() {
    let cases = [
        ("", "needs jwks_file or jwks_url"),
        (
            "jwks_file = \"/k.json\"\njwks_url = \"https://x.example/k\"\n",
            "both",
        ),
        (
            "jwks_url = \"http://login.example.com/jwks\"\n",
            "use https",
        ),
        ("jwks_url = \"login.example.com/jwks\"\n", "https://"),
        (
            "jwks_file = \"/k.json\"\njwks_cache_secs = 0\n",
            "jwks_cache_secs",
        ),
    ];
    for (lines, want) in cases {
        jail(|jail| {
            jail.create_file(
                CONFIG_FILE,
                &format!(
                    "[[auth.oidc]]\nname = \"corp\"\nissuer = \"i\"\nclient_id = \"c\"\n{lines}"
                ),
            )?;
            let msg = load_in(jail).unwrap_err().to_string();
            assert!(
                msg.contains("auth.oidc") && msg.contains(want),
                "{lines}: {msg}"
            );
            assert!(msg.contains("corp"), "{msg}");
            Ok(())
        });
    }
}

#[test]
fn overload_limits_default_load_from_env_and_are_range_checked() {
    jail(|jail| {
        let config = load_in(jail).unwrap();
        assert_eq!(config.server.max_concurrent_requests, 1024);
        assert_eq!(config.server.rate_limit.per_principal_rps, None);
        assert_eq!(config.server.rate_limit.effective_burst(), None);
        Ok(())
    });
    jail(|jail| {
        jail.create_file(
            CONFIG_FILE,
            "[server]\nmax_concurrent_requests = 64\n[server.rate_limit]\nper_principal_rps = 10\n",
        )?;
        jail.set_env("LEXECON_SERVER__MAX_CONCURRENT_REQUESTS", "8");
        jail.set_env("LEXECON_SERVER__RATE_LIMIT__BURST", "3");
        let config = load_in(jail).unwrap();
        assert_eq!(config.server.max_concurrent_requests, 8, "env wins");
        assert_eq!(config.server.rate_limit.per_principal_rps, Some(10));
        assert_eq!(config.server.rate_limit.effective_burst(), Some(3));
        Ok(())
    });
    jail(|jail| {
        jail.set_env("LEXECON_SERVER__RATE_LIMIT__PER_PRINCIPAL_RPS", "5");
        let config = load_in(jail).unwrap();
        assert_eq!(
            config.server.rate_limit.effective_burst(),
            Some(5),
            "burst defaults to the rate"
        );
        Ok(())
    });
    for (env, value, expected) in [
        (
            "LEXECON_SERVER__MAX_CONCURRENT_REQUESTS",
            "1",
            "server.max_concurrent_requests must be between 2 and 1000000, got 1",
        ),
        (
            "LEXECON_SERVER__RATE_LIMIT__PER_PRINCIPAL_RPS",
            "0",
            "server.rate_limit.per_principal_rps must be between 1 and 1000000",
        ),
        (
            "LEXECON_SERVER__RATE_LIMIT__BURST",
            "4",
            "server.rate_limit.burst has no effect without server.rate_limit.per_principal_rps",
        ),
    ] {
        jail(|jail| {
            jail.set_env(env, value);
            let msg = load_in(jail).unwrap_err().to_string();
            assert!(msg.contains(expected), "{msg}");
            Ok(())
        });
    }
}

#[test]
fn tls_files_load_from_file_and_env_and_must_come_in_pairs() {
    jail(|jail| {
        let config = load_in(jail).unwrap();
        assert_eq!(config.server.tls_cert_file, None, "TLS is off by default");
        assert_eq!(config.server.tls_key_file, None);
        assert_eq!(config.server.tls_client_ca_file, None);
        Ok(())
    });
    jail(|jail| {
        jail.create_file(
            CONFIG_FILE,
            "[server]\ntls_cert_file = \"tls/server.crt\"\ntls_key_file = \"tls/server.key\"\n",
        )?;
        jail.set_env("LEXECON_SERVER__TLS_CLIENT_CA_FILE", "tls/ca.crt");
        let config = load_in(jail).unwrap();
        assert_eq!(
            config.server.tls_cert_file,
            Some(PathBuf::from("tls/server.crt"))
        );
        assert_eq!(
            config.server.tls_key_file,
            Some(PathBuf::from("tls/server.key"))
        );
        assert_eq!(
            config.server.tls_client_ca_file,
            Some(PathBuf::from("tls/ca.crt")),
            "the environment form sets it"
        );
        Ok(())
    });
    for (envs, expected) in [
        (
            &[("LEXECON_SERVER__TLS_CERT_FILE", "server.crt")][..],
            "server.tls_key_file is not set but server.tls_cert_file is",
        ),
        (
            &[("LEXECON_SERVER__TLS_KEY_FILE", "server.key")][..],
            "server.tls_cert_file is not set but server.tls_key_file is",
        ),
        (
            &[("LEXECON_SERVER__TLS_CLIENT_CA_FILE", "ca.crt")][..],
            "server.tls_client_ca_file needs server.tls_cert_file and server.tls_key_file",
        ),
    ] {
        jail(|jail| {
            for (k, v) in envs {
                jail.set_env(k, v);
            }
            let msg = load_in(jail).unwrap_err().to_string();
            assert!(msg.contains(expected), "{msg}");
            assert!(
                msg.contains("environment variable"),
                "names the source: {msg}"
            );
            Ok(())
        });
    }
}

#[test]
fn secrets_section_defaults_loads_from_file_and_env_and_refuses_unknown_keys() {
    jail(|jail| {
        let config = load_in(jail).unwrap();
        assert_eq!(config.secrets, SecretsConfig::default());
        assert_eq!(
            config.master_key_file(),
            jail.directory().join("master.key")
        );
        jail.create_file(
            CONFIG_FILE,
            r#"
            [secrets]
            master_key_file = "/etc/lexecon/master-2.key"
            previous_master_key_files = ["/etc/lexecon/master-1.key"]
            "#,
        )?;
        let config = load_in(jail).unwrap();
        assert_eq!(
            config.master_key_file(),
            PathBuf::from("/etc/lexecon/master-2.key")
        );
        assert_eq!(
            config.secrets.previous_master_key_files,
            vec![PathBuf::from("/etc/lexecon/master-1.key")]
        );
        jail.set_env(
            "LEXECON_SECRETS__MASTER_KEY_FILE",
            "/run/secrets/master.key",
        );
        let config = load_in(jail).unwrap();
        assert_eq!(
            config.master_key_file(),
            PathBuf::from("/run/secrets/master.key")
        );
        // LEXECON_MASTER_KEY is read by the engine, not a configuration key: no error.
        jail.set_env("LEXECON_MASTER_KEY", "not-a-config-key");
        load_in(jail).unwrap();
        jail.create_file(CONFIG_FILE, "[secrets]\nmaster_key = \"inline\"\n")?;
        let err = load_in(jail).unwrap_err().to_string();
        assert!(err.contains("master_key"), "{err}");
        assert!(!err.contains("inline"), "{err}");
        Ok(())
    });
}
