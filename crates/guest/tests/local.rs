//! The local and namespace executors against real processes.

use std::path::Path;
use std::time::{Duration, Instant};

use guest::{Command, Error, Exec, Fake, FileMode, Local, Netns, Output, Status, Stream};

fn sh(script: &str) -> Command {
    Command::new(["sh", "-c", script])
}

#[test]
fn captures_status_stdout_and_stderr() {
    let out = Local::default()
        .run(&sh("echo out; echo err >&2; exit 3"))
        .unwrap();
    assert_eq!(out.status, Status::Code(3));
    assert_eq!(out.stdout_lossy(), "out\n");
    assert_eq!(out.stderr_lossy(), "err\n");
}

#[test]
fn check_turns_a_failure_into_an_error_with_argv_status_and_stderr() {
    let err = Local::new("ue1")
        .check(&sh("echo boom >&2; exit 7"))
        .unwrap_err();
    match &err {
        Error::Failed {
            host,
            argv,
            status,
            stderr,
        } => {
            assert_eq!(host, "ue1");
            assert_eq!(argv, &["sh", "-c", "echo boom >&2; exit 7"]);
            assert_eq!(*status, Status::Code(7));
            assert_eq!(stderr, "boom\n");
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("ue1: `sh -c 'echo boom >&2; exit 7'` failed with exit status 7: boom"),
        "{msg}"
    );
}

#[test]
fn large_output_on_both_streams_is_captured_whole() {
    // 16 MiB on stdout and 16 MiB on stderr at once: a reader that drained one pipe after the
    // other would deadlock here.
    let out = Local::default()
        .run(&sh(
            "head -c 16777216 /dev/zero & head -c 16777216 /dev/zero >&2; wait",
        ))
        .unwrap();
    assert!(out.success());
    assert_eq!(out.stdout.len(), 16 << 20);
    assert_eq!(out.stderr.len(), 16 << 20);
}

#[test]
fn stdin_is_passed() {
    let out = Local::default()
        .run(&Command::new(["cat"]).stdin("hello\n"))
        .unwrap();
    assert_eq!(out.stdout_lossy(), "hello\n");
}

#[test]
fn arguments_reach_the_program_verbatim() {
    let words = [
        "a b",
        "it's",
        "x;rm -rf /",
        "$(id)",
        "`id`",
        "new\nline",
        "",
        "*",
    ];
    let mut argv = vec!["printf", "%s\\0"];
    argv.extend(words);
    let out = Local::default().run(&Command::new(argv)).unwrap();
    let got: Vec<String> = out.stdout_lossy().split('\0').map(String::from).collect();
    assert_eq!(&got[..words.len()], &words);
}

#[test]
fn timeout_kills_the_command_and_what_it_started() {
    let t = Instant::now();
    let err = Local::default()
        .run(&sh("sleep 30 & sleep 30").timeout(Duration::from_millis(300)))
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    // The background `sleep` held the output pipe: had it survived, reading would hang.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn signals_are_reported() {
    let out = Local::default().run(&sh("kill -TERM $$")).unwrap();
    assert_eq!(out.status, Status::Signal(15));
    assert!(!out.success());
}

#[test]
fn missing_program_is_a_spawn_error() {
    let err = Local::default()
        .run(&Command::new(["/nonexistent/lab-tool"]))
        .unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
    let err = Local::default()
        .run(&Command::new(Vec::<String>::new()))
        .unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }));
}

#[test]
fn streaming_delivers_lines_in_order_as_they_come() {
    let mut lines = Vec::new();
    let t = Instant::now();
    let mut first_at = None;
    let st = Local::default()
        .run_streaming(
            &sh("echo one; echo warn >&2; sleep 0.3; echo two; printf 'three'"),
            &mut |s, l| {
                first_at.get_or_insert(t.elapsed());
                lines.push((s, l.to_string()));
            },
        )
        .unwrap();
    assert_eq!(st, Status::Code(0));
    let stdout: Vec<&str> = lines
        .iter()
        .filter(|(s, _)| *s == Stream::Stdout)
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(stdout, ["one", "two", "three"]);
    assert!(lines.contains(&(Stream::Stderr, "warn".into())));
    // The first line arrived before the command finished.
    assert!(
        first_at.unwrap() < Duration::from_millis(250),
        "{first_at:?}"
    );
}

#[test]
fn streaming_times_out() {
    let err = Local::default()
        .run_streaming(
            &sh("echo start; sleep 30").timeout(Duration::from_millis(300)),
            &mut |_, _| {},
        )
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

#[test]
fn put_file_is_atomic_with_mode_and_get_file_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("60-lab.yaml");
    let local = Local::default();
    local
        .put_file(&path, b"first\n", FileMode::mode(0o600))
        .unwrap();
    local
        .put_file(&path, b"second\n", FileMode::mode(0o600))
        .unwrap();
    assert_eq!(local.get_file(&path).unwrap(), b"second\n");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // No temp file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("60-lab.yaml")]);
    let err = local.get_file(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(err, Error::File { op: "read", .. }));
    let err = local
        .put_file(Path::new("/nonexistent-dir/x"), b"", FileMode::mode(0o644))
        .unwrap_err();
    assert!(matches!(err, Error::File { .. }), "{err:?}");
}

/// A network namespace with a unique name, deleted when dropped (also on panic).
struct TestNetns(String);

impl TestNetns {
    fn create() -> Self {
        let name = format!("labtest-guest-{}-{}", std::process::id(), rand_suffix());
        Local::default()
            .check(&Command::new(["ip", "netns", "add", &name]))
            .unwrap();
        TestNetns(name)
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Local::default().run(&Command::new(["ip", "netns", "delete", &self.0]));
    }
}

fn rand_suffix() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.subsec_nanos()
}

fn root_and_ip() -> Result<(), String> {
    testkit::tool("ip")?;
    if !nix_is_root() {
        return Err("needs root (network namespaces)".into());
    }
    Ok(())
}

fn nix_is_root() -> bool {
    // /proc/self/status: "Uid:\treal\teffective..."
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
#[cfg_attr(not(all(lab_has_ip, lab_has_root)), ignore = "needs ip and root")]
fn netns_commands_run_inside_the_namespace() {
    if !testkit::require("netns executor", root_and_ip()) {
        return;
    }
    let ns = TestNetns::create();
    let exec = Netns::new("ue1", &ns.0);
    let out = exec
        .check(&Command::new(["ip", "-o", "link", "show"]))
        .unwrap();
    let links: Vec<String> = out.stdout_lossy().lines().map(String::from).collect();
    assert_eq!(links.len(), 1, "a new namespace has only lo: {links:?}");
    assert!(links[0].contains("lo:"));
    let err = exec
        .check(&Command::new(["ip", "link", "show", "dev", "enp0s8"]))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("ue1: `ip link show dev enp0s8` failed"),
        "{err}"
    );
}

#[test]
fn fake_answers_in_order_and_refuses_the_unexpected() {
    let fake = Fake::new("ue2")
        .expect(&["ip", "-j", "addr"], Output::ok("[]"))
        .expect(
            &["ip", "mptcp", "limits", "set", "subflow", "3"],
            Output::failed(2, "nope"),
        );
    assert_eq!(
        fake.run(&Command::new(["ip", "-j", "addr"]))
            .unwrap()
            .stdout_lossy(),
        "[]"
    );
    let err = fake.run(&Command::new(["ip", "rule", "add"])).unwrap_err();
    assert!(matches!(err, Error::Unexpected { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("expected `ip mptcp limits set subflow 3`"),
        "{err}"
    );
    assert_eq!(
        fake.finish(),
        Err(vec![vec![
            "ip".to_string(),
            "mptcp".into(),
            "limits".into(),
            "set".into(),
            "subflow".into(),
            "3".into()
        ]])
    );
    let err = fake
        .check(&Command::new([
            "ip", "mptcp", "limits", "set", "subflow", "3",
        ]))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Failed {
            status: Status::Code(2),
            ..
        }
    ));
    assert_eq!(fake.finish(), Ok(()));
    assert!(matches!(
        fake.run(&Command::new(["true"])),
        Err(Error::Unexpected { .. })
    ));
    fake.put_file(
        Path::new("/etc/netplan/60-lab.yaml"),
        b"x",
        FileMode::mode(0o600),
    )
    .unwrap();
    assert_eq!(
        fake.file(Path::new("/etc/netplan/60-lab.yaml"))
            .unwrap()
            .1
            .mode,
        0o600
    );
    assert_eq!(fake.ran().len(), 2);
}
