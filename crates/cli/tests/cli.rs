//! The `lab` binary end to end: the foundation issue's "Done when" points, as a user runs them.

mod common;

use common::run_in;

/// `lab ARGS` in an empty temp dir (so no Lab.toml is found and the built-in lab is used).
fn run(args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    run_in(dir.path(), args)
}

#[test]
fn render_builtin_script_is_the_corrected_configuration() {
    let (code, out, err) = run(&["net", "render", "--host", "ue1", "--format", "script"]);
    assert_eq!(code, 0, "{err}");
    for line in [
        "sysctl -w net.ipv4.conf.enp0s9.arp_ignore=1",
        "ip rule add from 10.1.1.2 table table2",
        "ip route add 10.1.1.0/24 dev enp0s9 scope link table table2",
        "ip mptcp endpoint add 10.1.1.2 dev enp0s9 id 2 signal",
        "ip mptcp endpoint add 10.1.1.3 dev enp0s10 id 3 signal",
        "ip mptcp limits set subflow 5 add_addr_accepted 3",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
    assert!(
        !out.contains(" subflow\n"),
        "the server gets no subflow endpoints"
    );
}

#[test]
fn render_guide_preset_prints_the_guides_commands() {
    let (code, out, _) = run(&[
        "net", "render", "--preset", "guide", "--host", "ue2", "--format", "script",
    ]);
    assert_eq!(code, 0);
    let ip: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.starts_with("ip rule") || l.starts_with("ip route") || l.starts_with("ip mptcp")
        })
        .collect();
    assert_eq!(
        ip,
        [
            "ip rule add from 10.1.1.4 table table1",
            "ip rule add from 10.1.1.5 table table2",
            "ip rule add from 10.1.1.6 table table3",
            "ip route add 10.1.1.0/24 dev enp0s8 scope link table table1",
            "ip route add default via 10.1.1.1 dev enp0s8 table table1",
            "ip route add 10.1.1.0/24 dev enp0s9 scope link table table2",
            "ip route add default via 10.1.1.1 dev enp0s9 table table2",
            "ip route add 10.1.1.0/24 dev enp0s10 scope link table table3",
            "ip route add default via 10.1.1.1 dev enp0s10 table table3",
            "ip mptcp endpoint add 10.1.1.4 dev enp0s8 subflow",
            "ip mptcp endpoint add 10.1.1.5 dev enp0s9 subflow",
            "ip mptcp endpoint add 10.1.1.6 dev enp0s10 subflow",
            "ip mptcp limits set subflow 1 add_addr_accepted 3",
        ]
    );
}

#[test]
fn render_other_formats() {
    let (code, out, _) = run(&["net", "render", "--host", "ue2", "--format", "rt_tables"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "100 table1\n200 table2\n300 table3\n")
    );

    let (code, out, _) = run(&["net", "render", "--host", "ue2", "--format", "netplan"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("renderer: networkd") && out.contains("routing-policy:"),
        "{out}"
    );

    let (code, out, _) = run(&["net", "render", "--host", "ue2", "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["host"], "ue2");
    let plan = v["plan"].as_array().unwrap();
    let laminar: Vec<&serde_json::Value> = plan.iter().filter(|s| s["op"] == "endpoint").collect();
    assert_eq!(laminar.len(), 3);
    assert_eq!(
        laminar[0]["argv"],
        serde_json::json!([
            "ip", "mptcp", "endpoint", "add", "10.1.1.4", "dev", "enp0s8", "id", "1", "laminar"
        ])
    );
    let rule = plan.iter().find(|s| s["op"] == "rule").unwrap();
    assert_eq!(
        rule["argv_by_id"],
        serde_json::json!(["ip", "rule", "add", "from", "10.1.1.4", "table", "100"])
    );

    // Without --host: every host.
    let (code, out, _) = run(&["net", "render", "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
}

#[test]
fn unknown_host_is_a_clear_error() {
    let (code, _, err) = run(&["net", "render", "--host", "ue3"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("has no host `ue3`") && err.contains("ue1, ue2"),
        "{err}"
    );
}

#[test]
fn doctor_guide_fails_naming_limits_and_roles() {
    let (code, out, _) = run(&["doctor", "--preset", "guide"]);
    assert_eq!(code, 1, "{out}");
    for code in [
        "limits-too-low",
        "no-signal-endpoint",
        "subflow-endpoint-on-server",
    ] {
        assert!(out.contains(code), "missing {code} in\n{out}");
    }
    let (code, out, _) = run(&["doctor", "--preset", "guide", "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["clean"], false);
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["fix"].as_str().is_some_and(|s| !s.is_empty()))
    );
}

#[test]
fn doctor_builtin_is_clean() {
    let (code, out, err) = run(&["doctor"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no problems found"));
    let (code, out, _) = run(&["doctor", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["clean"],
        true
    );
}

fn init_in(dir: &std::path::Path) -> String {
    let (code, _, err) = run_in(dir, &["init"]);
    assert_eq!(code, 0, "{err}");
    std::fs::read_to_string(dir.join("Lab.toml")).unwrap()
}

#[test]
fn init_writes_the_builtin_lab_and_will_not_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let text = init_in(dir.path());
    // The preset named after its directory, with a `#:schema` line naming the schema
    // `lab init` wrote beside it.
    let dir_name = dir.path().file_name().unwrap().to_str().unwrap();
    let name = lab::presets::lab_name_for(dir_name);
    assert_eq!(
        text,
        format!(
            "#:schema .lab/lab.schema.json\n{}",
            lab::Preset::Builtin.source_named(&name)
        )
    );
    let (_, schema, _) = run(&["schema"]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".lab/lab.schema.json")).unwrap(),
        schema
    );
    let parsed: serde_json::Value = serde_json::from_str(&schema).unwrap();
    assert_eq!(parsed["title"], "Lab.toml");
    let (code, _, err) = run_in(dir.path(), &["init"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    let (code, _, _) = run_in(
        dir.path(),
        &["init", "--force", "--preset", "guide", "--name", "exp_1"],
    );
    assert_eq!(code, 0);
    assert!(
        std::fs::read_to_string(dir.path().join("Lab.toml"))
            .unwrap()
            .ends_with(&lab::Preset::Guide.source_named("exp_1"))
    );
    // A name that is not valid is refused at its place, and nothing is written.
    let (code, _, err) = run_in(dir.path(), &["init", "--force", "--name", "no way"]);
    assert_eq!(code, 2);
    assert!(err.contains("`no way` is not a valid lab name"), "{err}");
    assert!(
        std::fs::read_to_string(dir.path().join("Lab.toml"))
            .unwrap()
            .contains("name = \"exp_1\"")
    );
}

#[test]
fn misspelled_key_points_at_file_line_col_with_a_caret() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        init_in(dir.path()).replacen("address = \"10.1.1.5/24\"", "adress = \"10.1.1.5/24\"", 1);
    std::fs::write(dir.path().join("Lab.toml"), &text).unwrap();
    let line = text.lines().position(|l| l.starts_with("adress")).unwrap() + 1;
    // Found as the nearest Lab.toml, and given explicitly.
    for args in [vec!["doctor"], vec!["net", "render", "--lab", "Lab.toml"]] {
        let (code, out, err) = run_in(dir.path(), &args);
        assert_eq!(code, 2, "{out}");
        assert!(err.contains(&format!("Lab.toml:{line}:1]")), "{err}");
        assert!(err.contains("unknown field `adress`"), "{err}");
        assert!(
            err.lines().any(|l| l.trim_start().starts_with(": ^^^")),
            "no caret line in\n{err}"
        );
    }
    let (_, _, err) = run_in(dir.path(), &["doctor", "--lab", "Lab.toml"]);
    insta::assert_snapshot!(err);
}

#[test]
fn bad_address_points_at_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let text = init_in(dir.path()).replacen("\"10.1.1.5/24\"", "\"10.1.1.5/40\"", 1);
    std::fs::write(dir.path().join("Lab.toml"), &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("10.1.1.5/40"))
        .unwrap()
        + 1;
    let (code, _, err) = run_in(dir.path(), &["doctor"]);
    assert_eq!(code, 2);
    assert!(err.contains(&format!("Lab.toml:{line}:11]")), "{err}");
    assert!(
        err.contains("`10.1.1.5/40` is not an address/prefix"),
        "{err}"
    );
}

#[test]
fn lab_toml_is_found_in_a_parent_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run_in(dir.path(), &["init", "--name", "parent"]);
    assert_eq!(code, 0, "{err}");
    let sub = dir.path().join("a/b");
    std::fs::create_dir_all(&sub).unwrap();
    let (code, out, _) = run_in(&sub, &["doctor"]);
    assert_eq!(code, 0);
    assert!(out.contains("lab `parent`"), "{out}");
}

#[test]
fn missing_file_and_conflicting_flags() {
    let (code, _, err) = run(&["doctor", "--lab", "nope.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read nope.toml"), "{err}");
    let (code, _, _) = run(&["doctor", "--lab", "x.toml", "--preset", "guide"]);
    assert_eq!(code, 2);
    let (code, _, err) = run(&["doctor", "--preset", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown preset"), "{err}");
}

#[test]
fn kernel_grub_menu_and_default() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/kernel");
    let cfg = fixtures.join("ubuntu-22.04.cfg");
    let (code, out, err) = run(&["kernel", "grub-menu", "--file", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("1>2       Ubuntu, with Linux 6.4.0-mptcp\n"),
        "{out}"
    );
    let (code, out, _) = run(&[
        "kernel",
        "grub-menu",
        "--file",
        cfg.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[3]["release"], "6.4.0-mptcp");
    // A file without a menu entry is the wrong file, not an empty menu.
    let not_grub = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_grub.path(), "myhost\n").unwrap();
    let (code, _, err) = run(&[
        "kernel",
        "grub-menu",
        "--file",
        not_grub.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no GRUB menu entry"), "{err}");

    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("boot/grub")).unwrap();
    std::fs::create_dir_all(root.path().join("etc/default")).unwrap();
    std::fs::copy(&cfg, root.path().join("boot/grub/grub.cfg")).unwrap();
    std::fs::write(
        root.path().join("etc/default/grub"),
        "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n",
    )
    .unwrap();
    let r = root.path().to_str().unwrap();
    let (code, out, err) = run(&[
        "kernel",
        "grub-default",
        "--root",
        r,
        "--release",
        "6.4.0-mptcp",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("default set: Ubuntu, with Linux 6.4.0-mptcp (1>2)"),
        "{out}"
    );
    assert!(out.contains("(was 0)") && out.contains("backup:"), "{out}");
    let (code, _, err) = run(&["kernel", "grub-default", "--root", r, "--release", "9.9"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no GRUB entry for kernel release 9.9"),
        "{err}"
    );
}

#[test]
fn kernel_from_host_needs_a_running_profile() {
    let (code, _, err) = run(&[
        "kernel",
        "config",
        "--source",
        "/nonexistent",
        "--config",
        "tiny",
        "--from",
        "ue1",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--from HOST only goes with --config running or localmod"),
        "{err}"
    );
}

/// `lab kernel config --config running` on Debian's linux-source-6.1: this machine's own
/// kernel config, MPTCP forced on, and the path of the result.
#[test]
#[cfg_attr(not(lab_has_linux_source), ignore = "needs Debian's linux-source-6.1")]
fn kernel_config_from_the_running_kernel() {
    const SOURCE: &str = "/usr/src/linux-source-6.1.tar.xz";
    let have = if std::path::Path::new(SOURCE).is_file() {
        Ok(())
    } else {
        Err(format!("{SOURCE} is missing (Debian: linux-source-6.1)"))
    };
    if !testkit::require("kernel config", have) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let (code, out, err) = run_in(
        dir.path(),
        &[
            "kernel",
            "config",
            "--source",
            SOURCE,
            "--config",
            "running",
            "--work",
            work.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("configured linux 6.1."), "{out}");
    assert!(out.contains("  CONFIG_MPTCP=y\n"), "{out}");
    assert!(err.contains("configuring (given (local: "), "{err}");
    let path = out
        .lines()
        .next()
        .and_then(|l| l.rsplit(": ").next())
        .unwrap();
    let config = std::fs::read_to_string(path).unwrap();
    assert!(config.lines().any(|l| l == "CONFIG_INET_MPTCP_DIAG=y"));
}

/// netplan is one file per host: without --host the render refuses (two documents in one
/// stream would read as the last one), and --out writes one file per host, each accepted by
/// a YAML parser as one netplan document.
#[test]
fn netplan_for_several_hosts_is_one_file_each() {
    let (code, _, err) = run(&["net", "render", "--format", "netplan"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("one file per host"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let (code, out, err) = run(&[
        "net",
        "render",
        "--format",
        "netplan",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    for h in ["ue1", "ue2"] {
        let f = out_dir.join(format!("{h}.yaml"));
        assert!(out.contains(&f.display().to_string()), "{out}");
        let text = std::fs::read_to_string(&f).unwrap();
        assert_eq!(text.matches("\nnetwork:").count(), 1, "{text}");
        assert!(text.contains(&format!("host {h}")), "{text}");
    }
}

/// The README's claims that the binary can check: every command is in its table, the limits
/// lab derives for the built-in lab are the ones rendered, and the share `lab test` asks of
/// every path is the one its help and its defaults give.
#[test]
fn readme_claims_match_the_binary() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let (_, help, _) = run(&["--help"]);
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() > 15, "{help}");
    for c in commands {
        assert!(
            readme.contains(&format!("`lab {c}")),
            "README lacks `lab {c}`"
        );
    }
    // Derived limits: what the README says, what `net render` gives.
    let claim = "`subflow 5 add_addr_accepted 3` for the\n  built-in lab";
    assert!(
        readme.contains(claim),
        "README's derived-limits line changed"
    );
    let (_, script, _) = run(&["net", "render", "--host", "ue1"]);
    assert!(
        script.contains("ip mptcp limits set subflow 5 add_addr_accepted 3"),
        "{script}"
    );
    // The share every path must carry.
    let share = format!("{:.0}%", lab::TestOptions::default().min_share * 100.0);
    let (_, test_help, _) = run(&["test", "--help"]);
    assert!(
        test_help.contains(&format!("{share} of its fair share"))
            || test_help.contains(&format!("{share} of a fair share")),
        "{test_help}"
    );
    assert!(
        readme.contains(&format!("at least {share} of a fair share on every path")),
        "README's share for lab test"
    );
    // Every status the binary uses has its row (each is asserted by the test of its case:
    // 4 dry runs, 5 not up, 6 unreachable, 130 instant.rs's SIGINT test).
    for status in ["0", "1", "2", "3", "4", "5", "6", "130"] {
        assert!(
            readme.contains(&format!("\n| {status} | ")),
            "README's exit-status table lacks {status}"
        );
    }
}

/// A lab that is not up has its own exit status (5), with the fix.
#[test]
fn a_lab_that_is_not_up_exits_5() {
    let dir = tempfile::tempdir().unwrap();
    let text = lab::Preset::Builtin
        .source()
        .replace("name = \"mptcp\"", "name = \"labtest-notup\"");
    std::fs::write(dir.path().join("Lab.toml"), text).unwrap();
    for args in [
        &["exec", "ue1", "--", "true"][..],
        &["test", "--seconds", "1"],
    ] {
        let (code, _, err) = run_in(dir.path(), args);
        assert_eq!(code, 5, "{args:?}: {err}");
        assert!(err.contains("is not up: run `lab up`"), "{args:?}: {err}");
    }
}

/// `lab completions bash` loads in bash and completes `lab`'s commands; zsh's and fish's are
/// theirs; `lab man --out DIR` writes a page per command that `man -l` renders.
#[test]
#[cfg_attr(not(all(lab_has_bash, lab_has_man)), ignore = "needs bash and man")]
fn completions_load_in_bash_and_man_pages_render() {
    let dir = tempfile::tempdir().unwrap();
    let (code, bash, err) = run(&["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    let file = dir.path().join("lab.bash");
    std::fs::write(&file, &bash).unwrap();
    if testkit::require("bash completions", testkit::tool("bash")) {
        // Load it, then ask the completion function what follows `lab ker`.
        let script = format!(
            "source {}; complete -p lab; COMP_WORDS=(lab ker); COMP_CWORD=1; COMP_LINE='lab ker'; COMP_POINT=7; _lab lab ker lab; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display()
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("-F _lab lab"), "{text}");
        assert!(text.lines().any(|l| l == "kernel"), "{text}");
    }
    let (_, zsh, _) = run(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef lab"), "{zsh}");
    let (_, fish, _) = run(&["completions", "fish"]);
    assert!(fish.contains("complete -c lab"), "{fish}");
    let (code, _, err) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{err}");

    let pages = dir.path().join("man");
    let (code, out, err) = run(&["man", "--out", pages.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let mut names: Vec<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(out.contains(&format!("{} pages", names.len())), "{out}");
    for want in ["lab.1", "lab-up.1", "lab-kernel-build.1", "lab-net-apply.1"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    if testkit::require("man pages", testkit::tool("man")) {
        for name in ["lab.1", "lab-kernel-build.1"] {
            let out = std::process::Command::new("man")
                .args(["-P", "cat", "-l"])
                .arg(pages.join(name))
                .env("MANWIDTH", "100")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                text.contains("NAME") && text.contains("SYNOPSIS"),
                "{name}: {text}"
            );
        }
        let page = std::fs::read_to_string(pages.join("lab-kernel-build.1")).unwrap();
        assert!(page.contains("insecure\\-skip\\-signature"), "{page}");
    }
}

/// User-facing text names only what a user has (files lab ships or writes, public URLs): no
/// path of this project's workplace in the help of any command, the presets `lab init` writes,
/// or the README.
#[test]
fn user_facing_text_names_only_what_users_have() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man");
    assert_eq!(run(&["man", "--out", pages.to_str().unwrap()]).0, 0);
    let mut texts: Vec<(String, String)> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    for preset in ["builtin", "guide"] {
        let (code, out, err) = run_in(dir.path(), &["init", "--preset", preset, "--force"]);
        assert_eq!(code, 0, "{err}");
        let written = std::fs::read_to_string(dir.path().join("Lab.toml")).unwrap();
        texts.push((format!("lab init --preset {preset}: {out}"), written));
    }
    texts.push((
        "README.md".into(),
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
        )
        .unwrap(),
    ));
    for (what, text) in &texts {
        for bad in [
            "../shared",
            "shared/seed",
            "MEASURED.md",
            "ANCHORS.md",
            "DESIGN.md",
        ] {
            assert!(!text.contains(bad), "{what} names {bad}");
        }
    }
}

/// `lab graph`: the dot output renders with Graphviz, the SVG is well-formed XML (read by
/// Python's parser), Mermaid is a flowchart; `--out` writes the file.
#[test]
#[cfg_attr(
    not(all(lab_has_dot, lab_has_python3)),
    ignore = "needs dot and python3"
)]
fn graph_renders_with_graphviz_and_as_svg() {
    let dir = tempfile::tempdir().unwrap();
    let (code, dot, err) = run(&["graph", "--preset", "guide"]);
    assert_eq!(code, 0, "{err}");
    assert!(dot.contains("graph \"lab "), "{dot}");
    if testkit::require("lab graph | dot", testkit::tool("dot")) {
        let mut child = std::process::Command::new("dot")
            .arg("-Tsvg")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dot.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
    }
    let svg = dir.path().join("lab.svg");
    let (code, _, err) = run(&["graph", "--format", "svg", "--out", svg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    if testkit::require("SVG parsed by python3", testkit::tool("python3")) {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); print(d.documentElement.tagName)",
            ])
            .arg(&svg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "svg");
    }
    let (code, mermaid, _) = run(&["graph", "--format", "mermaid"]);
    assert_eq!(code, 0);
    assert!(mermaid.starts_with("flowchart TB\n"), "{mermaid}");
    let (code, _, _) = run(&["graph", "--format", "png"]);
    assert_eq!(code, 2);
}

/// `lab inventory` on a lab that is not up: the host is named, exit 5 (README's table).
#[test]
fn inventory_of_a_lab_that_is_not_up_exits_5() {
    let (code, out, err) = run(&["inventory"]);
    assert_eq!(code, 5, "{out}{err}");
    assert!(
        common::flat(&err).contains("is not up: run `lab up`"),
        "{err}"
    );
}
