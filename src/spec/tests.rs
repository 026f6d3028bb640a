//! Spec loading tests: the diagnostics people read (insta snapshots of the
//! rendered text, with the temporary directory replaced by `[DIR]`), and
//! Terraform's variable precedence.

use super::*;
use std::path::Path;

fn load_files(files: &[(&str, &str)], vars: &VarInputs) -> (Result<Spec, Diagnostics>, String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    (load_dir(dir.path(), vars), dir.path().display().to_string())
}

/// The diagnostics of a spec that must not load, as rendered without color.
fn diagnostics(files: &[(&str, &str)]) -> String {
    let (result, dir) = load_files(files, &VarInputs::default());
    let diagnostics = result.expect_err("the spec must not load");
    diagnostics.render(false).replace(&dir, "[DIR]")
}

const POLICY: &str =
    "policy \"daily\" {\n  rpo = \"24h\"\n  retention {\n    keep_last = 7\n  }\n}\n";

#[test]
fn unknown_attribute_suggests_the_close_one() {
    insta::assert_snapshot!(diagnostics(&[(
        "main.hcl",
        &format!(
            "{POLICY}volume \"data\" {{\n  name   = \"app_data\"\n  polcy  = policy.daily\n}}\n"
        )
    )]));
}

#[test]
fn unknown_block_suggests_the_close_one() {
    insta::assert_snapshot!(diagnostics(&[(
        "main.hcl",
        "volumes \"data\" {\n  name = \"app_data\"\n}\n"
    )]));
}

#[test]
fn reference_to_an_undeclared_policy() {
    insta::assert_snapshot!(diagnostics(&[(
        "main.hcl",
        &format!(
            "{POLICY}volume \"data\" {{\n  name   = \"app_data\"\n  policy = policy.nightly\n}}\n"
        )
    )]));
}

#[test]
fn bad_duration() {
    insta::assert_snapshot!(diagnostics(&[(
        "main.hcl",
        "policy \"daily\" {\n  rpo = \"24 hourz\"\n}\n"
    )]));
}

#[test]
fn duplicate_names_across_files_show_both_locations() {
    let volume = "volume \"data\" {\n  name = \"app_data\"\n}\n";
    insta::assert_snapshot!(diagnostics(&[("a.hcl", volume), ("b.hcl", volume)]));
}

#[test]
fn a_dependency_cycle_prints_the_whole_path() {
    let (result, dir) = load_files(
        &[(
            "main.hcl",
            "service \"web\" {\n  container  = \"web\"\n  depends_on = [service.api]\n}\nservice \"api\" {\n  container  = \"api\"\n  depends_on = [service.db]\n}\nservice \"db\" {\n  container  = \"db\"\n  depends_on = [service.web]\n}\n",
        )],
        &VarInputs::default(),
    );
    let spec = result.expect("parses: the cycle is the graph's to find");
    let diagnostics = crate::graph::Graph::build(&spec).expect_err("a cycle");
    insta::assert_snapshot!(diagnostics.render(false).replace(&dir, "[DIR]"));
}

#[test]
fn retention_that_keeps_nothing() {
    insta::assert_snapshot!(diagnostics(&[(
        "main.hcl",
        "policy \"none\" {\n  retention {\n    keep_last = 0\n  }\n}\n"
    )]));
}

#[test]
fn keep_tagged_names_tags_and_keeps_others_too() {
    let text = diagnostics(&[(
        "main.hcl",
        "policy \"a\" {\n  retention {\n    keep_tagged = [\"release\"]\n  }\n}\n\
         policy \"b\" {\n  retention {\n    keep_last   = 3\n    keep_tagged = [\"bad key\"]\n  }\n}\n",
    )]);
    assert!(
        text.contains("keep_tagged alone would forget every untagged snapshot"),
        "{text}"
    );
    assert!(text.contains("main.hcl:3:19"), "{text}");
    assert!(
        text.contains("tag \"bad key\": a key starts with a letter or digit"),
        "{text}"
    );
    let (loaded, _) = load_files(
        &[(
            "main.hcl",
            "policy \"a\" {\n  retention {\n    keep_last   = 3\n    keep_tagged = [\"release\", \"ticket=7\"]\n  }\n}\n",
        )],
        &VarInputs::default(),
    );
    let spec = loaded.unwrap();
    assert_eq!(
        spec.policies[0].retention.keep_tagged,
        ["release", "ticket=7"]
    );
}

#[test]
fn one_schedule_block_without_a_name_sets_the_interval() {
    let (loaded, _) = load_files(
        &[("main.hcl", "schedule {\n  every = \"1h\"\n}\n")],
        &VarInputs::default(),
    );
    let schedule = loaded.unwrap().schedule.unwrap();
    assert_eq!(schedule.every, std::time::Duration::from_secs(3600));
    let text = diagnostics(&[
        ("a.hcl", "schedule {\n  every = \"1h\"\n}\n"),
        (
            "b.hcl",
            "schedule {\n  every = \"30s\"\n}\nschedule \"x\" {\n  every = \"1h\"\n}\n",
        ),
    ]);
    assert!(
        text.contains("b.hcl:1:1: schedule is declared twice"),
        "{text}"
    );
    assert!(text.contains("a schedule block takes no name"), "{text}");
    let text = diagnostics(&[("a.hcl", "schedule {\n  every = \"90s\"\n}\n")]);
    assert!(
        text.contains("a.hcl:2:11: schedule: `every` is a whole number of minutes"),
        "{text}"
    );
    let text = diagnostics(&[("a.hcl", "schedule {\n}\n")]);
    assert!(text.contains("needs the attribute \"every\""), "{text}");
}

#[test]
fn wrong_type() {
    insta::assert_snapshot!(diagnostics(&[(
        "main.hcl",
        "policy \"daily\" {\n  rpo = 24\n  retention {\n    keep_last = \"seven\"\n  }\n}\n"
    )]));
}

#[test]
fn failed_variable_validation() {
    insta::assert_snapshot!(diagnostics(&[(
        "main.hcl",
        "variable \"hours\" {\n  type    = number\n  default = 100\n  validation {\n    condition     = var.hours <= 48\n    error_message = \"hours must be at most 48.\"\n  }\n}\npolicy \"p\" {\n  rpo = \"${var.hours}h\"\n}\n"
    )]));
}

#[test]
fn validate_json_carries_ranges() {
    let (result, dir) = load_files(
        &[(
            "main.hcl",
            &format!(
                "{POLICY}volume \"data\" {{\n  name   = \"app_data\"\n  polcy  = policy.daily\n}}\n"
            ),
        )],
        &VarInputs::default(),
    );
    let json = serde_json::to_string_pretty(&result.unwrap_err().to_json()).unwrap();
    insta::assert_snapshot!(json.replace(&dir, "[DIR]"));
}

fn rpo_with(vars: VarInputs, var_file: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.hcl"),
        "variable \"hours\" {\n  type    = number\n  default = 1\n}\npolicy \"p\" {\n  rpo = \"${var.hours}h\"\n}\n",
    )
    .unwrap();
    let mut vars = vars;
    if let Some(text) = var_file {
        let file = dir.path().join("values.lbvars");
        std::fs::write(&file, text).unwrap();
        vars.var_files.push(file);
    }
    let spec = load_dir(Path::new(dir.path()), &vars).unwrap();
    crate::plan::format_age(spec.policies[0].rpo.unwrap())
}

#[test]
fn variables_follow_terraform_precedence() {
    let env = |v: &str| [("LIFEBOAT_VAR_hours".to_string(), v.to_string())].into();
    assert_eq!(rpo_with(VarInputs::default(), None), "1h", "default");
    let from_env = VarInputs {
        env: env("2"),
        ..VarInputs::default()
    };
    assert_eq!(rpo_with(from_env.clone(), None), "2h", "environment");
    assert_eq!(
        rpo_with(from_env.clone(), Some("hours = 3\n")),
        "3h",
        "a var file beats the environment"
    );
    let cli = VarInputs {
        cli_vars: vec![("hours".into(), "4".into())],
        ..from_env
    };
    assert_eq!(
        rpo_with(cli, Some("hours = 3\n")),
        "4h",
        "--var beats everything"
    );
}

#[test]
fn an_undeclared_variable_in_the_environment_is_ignored() {
    let env = [("LIFEBOAT_VAR_other_spec".to_string(), "x".to_string())].into();
    let vars = VarInputs {
        env,
        ..VarInputs::default()
    };
    assert_eq!(rpo_with(vars, None), "1h");
}

#[test]
fn an_undeclared_variable_on_the_command_line_is_an_error() {
    let vars = VarInputs {
        cli_vars: vec![("nope".into(), "1".into())],
        ..VarInputs::default()
    };
    let (result, _) = load_files(&[("main.hcl", POLICY)], &vars);
    let diagnostics = result.expect_err("--var of an undeclared variable");
    insta::assert_snapshot!(diagnostics.render(false));
}

/// The diagnostics of files given as bytes, as rendered without color.
fn diagnostics_of_bytes(files: &[(&str, &[u8])]) -> String {
    let sources = files
        .iter()
        .map(|(name, bytes)| (std::path::PathBuf::from(name), bytes.to_vec()))
        .collect();
    load_sources(Path::new("."), sources, &VarInputs::default())
        .expect_err("the spec must not load")
        .render(false)
}

#[test]
fn invalid_utf8_is_located_at_its_first_bad_byte() {
    insta::assert_snapshot!(diagnostics_of_bytes(&[(
        "main.hcl",
        b"volume \"data\" {\n  name = \"caf\xe9\"\n}\n"
    )]));
}

#[test]
fn a_binary_file_is_located_at_its_first_nul() {
    insta::assert_snapshot!(diagnostics_of_bytes(&[
        ("main.hcl", POLICY.as_bytes()),
        ("image.hcl", b"PK\x03\x04\x00\x00\x08\x00")
    ]));
}

#[test]
fn labels_must_be_names() {
    insta::assert_snapshot!(diagnostics(&[(
        "main.hcl",
        "volume \"\" {\n  name = \"a_data\"\n}\nvolume \"a\\u0000b\" {\n  name = \"b_data\"\n}\nvolume \"c.d\" {\n  name = \"c_data\"\n}\nvariable \"with space\" {\n  default = 1\n}\n"
    )]));
}

#[test]
fn names_docker_would_refuse() {
    insta::assert_snapshot!(diagnostics(&[(
        "main.hcl",
        "volume \"empty\" {\n  name = \"\"\n}\nvolume \"short\" {\n  name = \"a\"\n}\nvolume \"control\" {\n  name = \"app\\u0007data\"\n}\nvolume \"slash\" {\n  name = \"app/data\"\n}\nbind \"relative\" {\n  path = \"srv/nginx\"\n}\nbind \"unclean\" {\n  path = \"/srv/../etc\"\n}\nimage \"upper\" {\n  ref = \"Shop/API:2.3\"\n}\nimage \"tag\" {\n  ref = \"shop/api:\"\n}\nservice \"db\" {\n  container = \"-db\"\n}\n"
    )]));
}

#[test]
fn a_sensitive_volume_name_stays_out_of_errors() {
    let spec = "variable \"vol\" {\n  type      = string\n  sensitive = true\n  default   = \"s3cr3t/x\"\n}\n\
                volume \"a\" {\n  name = var.vol\n}\nvolume \"b\" {\n  name = var.vol\n}\n";
    let text = diagnostics(&[("main.hcl", spec)]);
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(text.contains("(sensitive)"), "{text}");
}

#[test]
fn quiescing_needs_a_service_and_hooks_are_read() {
    let text = diagnostics(&[(
        "main.hcl",
        "volume \"data\" {\n  name        = \"app_data\"\n  consistency = \"stop\"\n}\n",
    )]);
    assert!(
        text.contains("volume.data: `consistency` stops or pauses a service"),
        "{text}"
    );
    assert!(text.contains("main.hcl:1:1"), "{text}");
    assert!(text.contains("service = service.NAME"), "{text}");

    // The one service listing the volume is its service.
    let (spec, _) = load_files(
        &[(
            "main.hcl",
            "volume \"data\" {\n  name = \"app_data\"\n  consistency = \"pause\"\n  pre = [\"sync\"]\n  \
             hook_timeout = \"30s\"\n}\nservice \"db\" {\n  container = \"db\"\n  volumes = [volume.data]\n  \
             post = [\"true\"]\n}\n",
        )],
        &VarInputs::default(),
    );
    let spec = spec.unwrap();
    let address = Address::new(ResourceKind::Volume, "data");
    assert_eq!(spec.service_of(&address).unwrap().name, "db");
    let volume = &spec.volumes[0];
    assert_eq!(volume.hooks.pre, ["sync"]);
    assert_eq!(volume.hooks.timeout(), std::time::Duration::from_secs(30));
    assert_eq!(spec.services[0].hooks.post, ["true"]);
}

#[test]
fn arithmetic_without_a_finite_result_is_an_error_not_a_panic() {
    for expression in [
        "4/0",
        "1 + 2 * 3 - 4 / 0 % 6",
        "5 % 0",
        "1e308 * 10",
        "\"${1/0}\"",
        "[for x in [1, 0] : 1 / x]",
        "true ? (0/0) : 1",
    ] {
        let text = diagnostics(&[(
            "main.hcl",
            &format!(
                "locals {{\n  n = {expression}\n}}\nvolume \"a\" {{\n  name = \"a_data\"\n}}\n"
            ),
        )]);
        assert!(
            text.contains("divides by zero") || text.contains("no finite result"),
            "{expression}: {text}"
        );
        assert!(text.contains("main.hcl:2:"), "{expression}: {text}");
    }
}

#[test]
fn a_service_start_timeout_is_read_and_defaults_to_a_minute() {
    let (spec, _) = load_files(
        &[(
            "main.hcl",
            "service \"db\" {\n  container = \"db\"\n  start_timeout = \"2m\"\n}\nservice \"web\" {\n  \
             container = \"web\"\n}\n",
        )],
        &VarInputs::default(),
    );
    let spec = spec.unwrap();
    assert_eq!(
        spec.services[0].start_timeout(),
        std::time::Duration::from_secs(120)
    );
    assert_eq!(spec.services[1].start_timeout(), DEFAULT_START_TIMEOUT);
    let text = diagnostics(&[(
        "main.hcl",
        "service \"db\" {\n  container = \"db\"\n  start_timeout = \"soon\"\n}\n",
    )]);
    assert!(text.contains("main.hcl:3"), "{text}");
    assert!(text.contains("start_timeout"), "{text}");
}

fn with_var(name: &str, value: &str) -> VarInputs {
    VarInputs {
        cli_vars: vec![(name.to_string(), value.to_string())],
        ..VarInputs::default()
    }
}

const SECRET_TOKEN: &str = "variable \"tok\" {\n  type      = string\n  sensitive = true\n}\n";

#[test]
fn values_computed_from_a_sensitive_one_are_sensitive() {
    let spec = format!(
        "{SECRET_TOKEN}locals {{\n  shouted = upper(var.tok)\n}}\n\
         volume \"a\" {{\n  name = \"${{local.shouted}}_data\"\n}}\n\
         volume \"b\" {{\n  name = replace(var.tok, \"k\", \"q\")\n}}\n"
    );
    let (result, _) = load_files(&[("main.hcl", &spec)], &with_var("tok", "tok_value_x"));
    let spec = result.expect("loads");
    for name in ["TOK_VALUE_X_data", "toq_value_x", "TOK_VALUE_X"] {
        assert_eq!(spec.redact(name), "(sensitive)", "{name}");
    }
}

#[test]
fn errors_never_quote_a_sensitive_value_or_one_computed_from_it() {
    // A derived value Docker refuses as a name, and an evaluation error on it.
    let spec = format!(
        "{SECRET_TOKEN}volume \"a\" {{\n  name = upper(replace(var.tok, \"_\", \"/\"))\n}}\n\
         volume \"b\" {{\n  name = upper(var.tok) + 1\n}}\n"
    );
    let (result, _) = load_files(&[("main.hcl", &spec)], &with_var("tok", "sec_ret_value"));
    let text = result.expect_err("must not load").render(false);
    for leak in ["sec_ret_value", "SEC/RET/VALUE", "SEC_RET_VALUE", "sec/ret"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
    assert!(text.contains("sensitive"), "{text}");
    // A value of the wrong type for a sensitive number.
    let number = "variable \"n\" {\n  type      = number\n  sensitive = true\n}\n";
    let (result, _) = load_files(&[("main.hcl", number)], &with_var("n", "notanumber_SECRET"));
    let text = result.expect_err("must not load").render(false);
    assert!(!text.contains("SECRET"), "{text}");
    assert!(text.contains("is not a number"), "{text}");
}

#[test]
fn twenty_thousand_chained_locals_evaluate_in_linear_time() {
    let mut spec = String::from("locals {\n  l0 = \"v\"\n");
    // Declared in reverse, so an evaluation in rounds would need them all.
    for i in (1..20_000).rev() {
        spec.push_str(&format!("  l{i} = \"${{local.l{}}}\"\n", i - 1));
    }
    spec.push_str("}\nvolume \"a\" {\n  name = \"x${local.l19999}\"\n}\n");
    let started = std::time::Instant::now();
    let (result, _) = load_files(&[("main.hcl", &spec)], &VarInputs::default());
    let elapsed = started.elapsed();
    let spec = result.expect("loads");
    assert_eq!(spec.volumes[0].volume_name, "xv");
    // Generous for a debug build on a busy machine; it takes a fraction
    // of this (and 1,000 took 8.5 s when locals were evaluated in rounds).
    assert!(elapsed.as_secs_f64() < 5.0, "{elapsed:?}");
}

#[test]
fn a_cycle_of_locals_is_named() {
    let text = diagnostics(&[(
        "main.hcl",
        "locals {\n  a = local.b\n  b = \"${local.c}x\"\n  c = local.a\n  d = local.nope\n}\n",
    )]);
    assert!(
        text.contains(
            "locals refer to each other in a cycle: local.a → local.b → local.c → local.a"
        ),
        "{text}"
    );
    assert!(!text.contains("no such key"), "{text}");
}

#[test]
fn a_local_reading_an_undefined_one_is_named() {
    let text = diagnostics(&[("main.hcl", "locals {\n  a = local.nope\n  nop = 1\n}\n")]);
    assert!(
        text.contains("local.a reads local.nope, which no locals block defines"),
        "{text}"
    );
    assert!(text.contains("did you mean local.nop?"), "{text}");
}

#[test]
fn values_that_grow_without_bound_are_refused_where_they_grow() {
    // Nested replace: each level multiplies the length by 64.
    let mut expression =
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"".to_string();
    for _ in 0..8 {
        expression = format!(
            "replace({expression}, \"a\", \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\")"
        );
    }
    let text = diagnostics(&[(
        "main.hcl",
        &format!("locals {{\n  big = {expression}\n}}\n"),
    )]);
    assert!(text.contains("larger than 1024 KiB"), "{text}");
    // concat doubling through locals.
    let mut spec = String::from("locals {\n  d0 = [\"xxxxxxxxxxxxxxxx\"]\n");
    for i in 1..64 {
        spec.push_str(&format!(
            "  d{i} = concat(local.d{}, local.d{})\n",
            i - 1,
            i - 1
        ));
    }
    spec.push_str("}\n");
    let text = diagnostics(&[("main.hcl", &spec)]);
    assert!(text.contains("larger than 1024 KiB"), "{text}");
    // Templates doubling through locals.
    let mut spec = String::from("locals {\n  t0 = \"xxxxxxxxxxxxxxxx\"\n");
    for i in 1..64 {
        spec.push_str(&format!(
            "  t{i} = \"${{local.t{}}}${{local.t{}}}\"\n",
            i - 1,
            i - 1
        ));
    }
    spec.push_str("}\n");
    let text = diagnostics(&[("main.hcl", &spec)]);
    assert!(text.contains("larger than 1024 KiB"), "{text}");
}

#[test]
fn a_spec_file_larger_than_any_spec_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("# padding\n");
    text.push_str(&"#".repeat(17 << 20));
    std::fs::write(dir.path().join("main.hcl"), text).unwrap();
    let error = load_dir(dir.path(), &VarInputs::default()).expect_err("refused");
    assert!(
        error.render(false).contains("larger than 16 MiB"),
        "{}",
        error.render(false)
    );
}

#[test]
fn moved_blocks_carry_a_renamed_resource_and_refuse_what_cannot_be() {
    let ok = "volume \"app_data\" {\n  name = \"xy\"\n}\nmoved {\n  from = volume.data\n  to   = volume.old_name\n}\nmoved {\n  from = volume.old_name\n  to   = volume.app_data\n}\n";
    // A chain: data → old_name (not declared any more) is refused: `to`
    // must be declared. Chains go through declared names only.
    let text = diagnostics(&[("main.hcl", ok)]);
    assert!(text.contains("volume.old_name is not declared"), "{text}");
    let ok = "volume \"app_data\" {\n  name = \"xy\"\n}\nmoved {\n  from = volume.data\n  to   = volume.app_data\n}\n";
    let (result, _) = load_files(&[("main.hcl", ok)], &VarInputs::default());
    let spec = result.unwrap();
    assert_eq!(spec.current_address("volume.data"), "volume.app_data");
    assert_eq!(spec.current_address("volume.other"), "volume.other");
    let bad = "volume \"a\" {\n  name = \"xy\"\n}\nbind \"b\" {\n  path = \"/srv/b\"\n}\n\
               moved {\n  from = volume.a\n  to   = volume.z\n}\n\
               moved {\n  from = volume.q\n  to   = bind.b\n}\n\
               moved {\n  from = \"volume.q\"\n}\n";
    let text = diagnostics(&[("main.hcl", bad)]);
    assert!(text.contains("the spec still declares volume.a"), "{text}");
    assert!(text.contains("different kinds of resource"), "{text}");
    assert!(text.contains("`from` must name a resource"), "{text}");
    assert!(text.contains("needs both `from` and `to`"), "{text}");
}

#[test]
fn a_service_stop_timeout_is_read_and_defaults_to_dockers_ten_seconds() {
    let (spec, _) = load_files(
        &[(
            "main.hcl",
            "service \"db\" {\n  container = \"db\"\n  stop_timeout = \"30s\"\n}\nservice \"web\" {\n  \
             container = \"web\"\n}\n",
        )],
        &VarInputs::default(),
    );
    let spec = spec.unwrap();
    assert_eq!(
        spec.services[0].stop_timeout(),
        std::time::Duration::from_secs(30)
    );
    assert_eq!(spec.services[1].stop_timeout(), DEFAULT_STOP_TIMEOUT);
    let text = diagnostics(&[(
        "main.hcl",
        "service \"db\" {\n  container = \"db\"\n  stop_timeout = \"later\"\n}\n",
    )]);
    assert!(text.contains("main.hcl:3"), "{text}");
    assert!(text.contains("stop_timeout"), "{text}");
}

#[test]
fn notify_blocks_read_their_destination_and_events() {
    let spec = load_files(
        &[(
            "main.hcl",
            "notify \"ops\" {\n  url_env = \"OPS_HOOK\"\n}\n\
             notify \"chat\" {\n  url = \"https://chat.example/hook\"\n  on = [\"success\", \"failure\", \"success\"]\n  timeout = \"3s\"\n}\n\
             notify \"uptime\" {\n  healthchecks {\n    url_env = \"HC\"\n  }\n}\n",
        )],
        &VarInputs::default(),
    )
    .0
    .unwrap();
    let [ops, chat, uptime] = &spec.notifications[..] else {
        panic!("three blocks: {:?}", spec.notifications);
    };
    assert_eq!(
        ops.target,
        NotifyTarget::Webhook(UrlSource::Env("OPS_HOOK".into()))
    );
    assert_eq!(ops.on, DEFAULT_NOTIFY_ON);
    assert_eq!(ops.timeout, DEFAULT_NOTIFY_TIMEOUT);
    assert_eq!(chat.on, [NotifyEvent::Failure, NotifyEvent::Success]);
    assert_eq!(chat.timeout, std::time::Duration::from_secs(3));
    assert_eq!(
        uptime.target,
        NotifyTarget::Healthchecks(UrlSource::Env("HC".into()))
    );
    let refused = diagnostics(&[(
        "main.hcl",
        "notify \"hc\" {\n  on = [\"late\"]\n  healthchecks {\n    url = \"https://hc.example/x\"\n  }\n}\n\
         notify \"none\" {\n  on = [\"late\"]\n}\n",
    )]);
    assert!(
        refused.contains("`on` does not apply to a healthchecks check"),
        "{refused}"
    );
    assert!(
        refused.contains("notify \"none\" needs exactly one destination"),
        "{refused}"
    );
    assert!(refused.contains("main.hcl:2:8"), "{refused}");
}

const SFTP: &str = "repository \"off\" {\n  sftp {\n    host     = \"backup.example\"\n    user     = \"ops\"\n    path     = \"/srv/lifeboat\"\n    identity = \"keys/id_ed25519\"\n  }\n}\n";

#[test]
fn an_sftp_repository_defaults_to_port_22_and_keeps_file_names_as_written() {
    let (spec, _) = load_files(&[("main.hcl", SFTP)], &VarInputs::default());
    let spec = spec.expect("loads");
    assert_eq!(
        spec.repositories[0].location,
        RepositoryLocation::Sftp {
            host: "backup.example".into(),
            port: 22,
            user: "ops".into(),
            path: "/srv/lifeboat".into(),
            identity: Some("keys/id_ed25519".into()),
            known_hosts: None,
        }
    );
}

#[test]
fn an_sftp_repository_refuses_a_second_location_a_bad_port_and_a_user_in_the_host() {
    let both = diagnostics(&[(
        "main.hcl",
        &SFTP.replace("  sftp {", "  path = \"/x\"\n  sftp {"),
    )]);
    assert!(both.contains("needs exactly one of"), "{both}");
    assert!(both.contains("main.hcl:1:"), "{both}");
    let port = diagnostics(&[(
        "main.hcl",
        &SFTP.replace("    user ", "    port     = 70000\n    user "),
    )]);
    assert!(port.contains("between 1 and 65535"), "{port}");
    assert!(port.contains("main.hcl:4:"), "{port}");
    let host = diagnostics(&[(
        "main.hcl",
        &SFTP.replace("\"backup.example\"", "\"ops@backup.example\""),
    )]);
    assert!(host.contains("is no sftp host"), "{host}");
    assert!(host.contains("main.hcl:3:"), "{host}");
    let missing = diagnostics(&[("main.hcl", &SFTP.replace("    user     = \"ops\"\n", ""))]);
    assert!(missing.contains("\"user\""), "{missing}");
}

const S3_REPOSITORY: &str = "repository \"offsite\" {\n  s3 {\n    endpoint = \"http://127.0.0.1:3900\"\n    bucket   = \"backups\"\n  CREDENTIALS}\n}\n";

fn s3_spec(credentials: &str) -> String {
    S3_REPOSITORY.replace("CREDENTIALS", credentials)
}

#[test]
fn s3_credentials_come_from_a_variable_or_a_file_never_both() {
    let (loaded, _) = load_files(
        &[(
            "main.hcl",
            &s3_spec("  access_key_file = \"keys/access\"\n    secret_key_env = \"SECRET\"\n  "),
        )],
        &VarInputs::default(),
    );
    let spec = loaded.unwrap();
    let RepositoryLocation::S3 {
        access_key,
        secret_key,
        region,
        ..
    } = &spec.repositories[0].location
    else {
        panic!("an s3 repository: {:?}", spec.repositories[0].location);
    };
    assert_eq!(access_key, &CredentialSource::File("keys/access".into()));
    assert_eq!(secret_key, &CredentialSource::Env("SECRET".into()));
    assert_eq!(region, "us-east-1");

    // Neither: the variables restic and the AWS tools read.
    let (loaded, _) = load_files(&[("main.hcl", &s3_spec(""))], &VarInputs::default());
    let spec = loaded.unwrap();
    let RepositoryLocation::S3 { access_key, .. } = &spec.repositories[0].location else {
        panic!("an s3 repository");
    };
    assert_eq!(
        access_key,
        &CredentialSource::Env("AWS_ACCESS_KEY_ID".into())
    );

    let both = diagnostics(&[(
        "main.hcl",
        &s3_spec("  access_key_env = \"A\"\n    access_key_file = \"a\"\n  "),
    )]);
    assert!(
        both.contains("`access_key_env` and `access_key_file`"),
        "{both}"
    );
    assert!(both.contains("main.hcl:6:"), "{both}");
}

#[test]
fn an_s3_endpoint_must_be_a_url() {
    let text = s3_spec("").replace("http://127.0.0.1:3900", "127.0.0.1:3900");
    let rendered = diagnostics(&[("main.hcl", &text)]);
    assert!(rendered.contains("is no URL"), "{rendered}");
    assert!(rendered.contains("main.hcl:3:"), "{rendered}");
}

#[test]
fn a_bad_exclude_glob_or_marker_is_located_at_its_attribute() {
    insta::assert_snapshot!(diagnostics(&[(
        "main.hcl",
        "volume \"data\" {\n  name    = \"app_data\"\n  exclude = [\"cache/**\", \"logs/[\"]\n}\n\
         bind \"conf\" {\n  path               = \"/srv/conf\"\n  exclude_if_present = [\"a/b\"]\n}\n"
    )]));
}

#[test]
fn an_exclude_that_leaves_out_every_entry_is_refused_at_its_attribute() {
    let spec = |pattern: &str| {
        format!(
            "volume \"data\" {{\n  name    = \"app_data\"\n  exclude = [\"cache/**\", \
             \"{pattern}\"]\n}}\n"
        )
    };
    for pattern in ["*", "**", "/*", "**/*", "?*"] {
        let rendered = diagnostics(&[("main.hcl", &spec(pattern))]);
        assert!(rendered.contains("main.hcl:3:"), "{pattern}: {rendered}");
        assert!(
            rendered.contains(&format!("{pattern:?} leaves out every entry")),
            "{pattern}: {rendered}"
        );
    }
    // Patterns that keep something (files at the root, or all but some
    // names) load.
    for pattern in ["*.tmp", "cache/**", "*/", "*/**", ".*", "[a-m]*", "/data"] {
        let (loaded, _) = load_files(&[("main.hcl", &spec(pattern))], &VarInputs::default());
        assert!(loaded.is_ok(), "{pattern}: {:?}", loaded.err());
    }
}

#[test]
fn excludes_are_read_into_volumes_and_binds() {
    let (spec, _) = load_files(
        &[(
            "main.hcl",
            "volume \"data\" {\n  name = \"app_data\"\n  exclude = [\"cache/**\", \"*.tmp\"]\n  \
             exclude_if_present = [\"CACHEDIR.TAG\"]\n}\nbind \"conf\" {\n  path = \"/srv/conf\"\n}\n",
        )],
        &VarInputs::default(),
    );
    let spec = spec.unwrap();
    assert_eq!(spec.volumes[0].exclude.exclude, ["cache/**", "*.tmp"]);
    assert_eq!(spec.volumes[0].exclude.exclude_if_present, ["CACHEDIR.TAG"]);
    assert!(spec.binds[0].exclude.is_empty());
}
