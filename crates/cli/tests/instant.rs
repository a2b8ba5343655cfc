//! `lab up|status|net apply|link|test|down|demo` end to end on namespace hosts, as root.
//! Every lab has a unique name and is removed by a guard, also when a test fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static N: AtomicU32 = AtomicU32::new(0);

/// One transfer at a time: tests in this binary run in parallel, and transfers competing for two
/// cores would measure each other.
static TRAFFIC: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn traffic() -> std::sync::MutexGuard<'static, ()> {
    TRAFFIC.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`ready`], and tshark installed (the decoder is checked against it).
fn ready_with_tshark(what: &str) -> bool {
    testkit::require(
        what,
        testkit::root()
            .and_then(|()| testkit::mptcp())
            .and_then(|()| testkit::tool("tshark")),
    )
}

fn ready(what: &str) -> bool {
    testkit::require(what, testkit::root().and_then(|()| testkit::mptcp()))
}

/// A directory with a Lab.toml: the built-in lab under a unique name. `lab down` on drop.
struct LabDir {
    dir: tempfile::TempDir,
    name: String,
}

impl LabDir {
    fn new(shaped: bool) -> Self {
        Self::from_source(lab::Preset::Builtin.source(), "mptcp", shaped)
    }

    /// A lab from `source`, whose `[lab] name` is `name`, renamed to a unique name.
    fn from_source(source: &str, name: &str, shaped: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let unique = format!(
            "labtest-c{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut src = source.replace(
            &format!("name = \"{name}\""),
            &format!("name = \"{unique}\""),
        );
        let name = unique;
        if shaped {
            src = src.replace(
                "table = { id",
                "shaping = { rate = \"50mbit\" }\ntable = { id",
            );
        }
        std::fs::write(dir.path().join("Lab.toml"), src).unwrap();
        Self { dir, name }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn lab(&self, args: &[&str]) -> (i32, String, String) {
        common::run_in(self.path(), args)
    }

    fn namespaces(&self) -> Vec<String> {
        netns::topology::existing(&self.name).unwrap()
    }
}

impl Drop for LabDir {
    fn drop(&mut self) {
        let (code, out, err) = self.lab(&["down"]);
        // A `lab down` that leaves the lab behind is a failure of the test, with lab's words,
        // unless the test failed already.
        if !std::thread::panicking() {
            assert_eq!(code, 0, "lab down: {out}{err}");
            assert!(self.namespaces().is_empty(), "lab down left: {out}{err}");
        }
    }
}

#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn up_status_apply_link_test_down() {
    if !ready("lab up/test/down") {
        return;
    }
    let d = LabDir::new(true);
    let (code, out, err) = d.lab(&["up"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("2 hosts up in") && out.contains("(2 created)"),
        "{out}"
    );
    assert_eq!(d.namespaces().len(), 3);

    // Namespaces have no SSH: an inventory has nothing to list, and says why (exit 2).
    let (code, _, err) = d.lab(&["inventory"]);
    assert_eq!(code, 2, "{err}");
    let err = common::flat(&err);
    assert!(
        err.contains("is reachable over SSH") && err.contains("ue1: a network namespace"),
        "{err}"
    );

    // A second apply changes nothing, and says so.
    let (code, out, err) = d.lab(&["net", "apply"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ue1: 0 changes") && out.contains("ue2: 0 changes"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("0 changes"), "{out}");

    let (code, out, _) = d.lab(&["status", "--json"]);
    assert_eq!(code, 0);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["state"], "up");
    assert_eq!(s["hosts"][1]["pending_changes"], 0);
    assert_eq!(s["hosts"][1]["endpoints"].as_array().unwrap().len(), 3);
    let (_, out, _) = d.lab(&["status"]);
    assert!(
        out.contains("enp0s9     UP") && out.contains("tbf 50mbit"),
        "{out}"
    );

    // Commands run inside a host; the exit status passes through.
    let (code, out, err) = d.lab(&["exec", "ue1", "--", "ip", "-br", "addr"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("enp0s9@") && l.contains("10.1.1.2/24")),
        "{out}"
    );
    let (code, _, _) = d.lab(&["exec", "ue2", "--", "sh", "-c", "exit 4"]);
    assert_eq!(code, 4);

    // Link down: the kernel drops the table's routes; status shows a pending change.
    let (code, _, err) = d.lab(&["link", "down", "ue2", "enp0s9"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = d.lab(&["net", "apply", "--dry-run", "--host", "ue2"]);
    assert!(out.contains("ip link set dev enp0s9 up"), "{out}");
    assert!(
        out.contains("ip route add default via 10.1.1.1 dev enp0s9 table 200"),
        "{out}"
    );
    let (code, out, err) = d.lab(&["link", "up", "ue2", "enp0s9"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("restored: ip route add 10.1.1.0/24 dev enp0s9 scope link table 200"),
        "{out}"
    );

    let guard = traffic();
    let (code, out, err) = d.lab(&["test", "--seconds", "3", "--json"]);
    drop(guard);
    assert_eq!(code, 0, "{out}\n{err}");
    let t: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(t["verdict"]["pass"], true);
    assert_eq!(t["report"]["subflows_max"], 3);

    let (code, out, _) = d.lab(&["down"]);
    assert_eq!(code, 0);
    assert!(out.contains("removed"), "{out}");
    assert!(d.namespaces().is_empty());
    let (_, out, _) = d.lab(&["status"]);
    assert!(out.starts_with(&format!("lab `{}`: down", d.name)), "{out}");
}

#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn failover_mid_transfer_survives() {
    if !ready("lab test --fail") {
        return;
    }
    let d = LabDir::new(true);
    assert_eq!(d.lab(&["up"]).0, 0);
    let guard = traffic();
    let (code, out, err) = d.lab(&["test", "--seconds", "6", "--fail", "enp0s9@2"]);
    drop(guard);
    assert!(
        out.contains("event       2.0s: ue2 enp0s9 down"),
        "{out}\n{err}"
    );
    assert!(out.contains("[ok] transfer survived"), "{out}");
    // Goodput goes on after the failure: every second after it carries data.
    let per_second: Vec<f64> = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("per second"))
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(per_second.len() >= 5, "{out}");
    assert!(per_second[3..].iter().all(|v| *v > 20.0), "{out}");
    // The downed path carries no share after the failure, so the verdict may fail; the link
    // is back up with its routes either way.
    assert!(code == 0 || code == 1, "{err}");
    let (_, out, _) = d.lab(&["net", "apply", "--dry-run"]);
    assert!(
        out.trim_end()
            .ends_with("0 changes (dry run: nothing changed)"),
        "{out}"
    );
}

#[test]
#[cfg_attr(
    not(all(lab_has_iperf3, lab_has_mptcpize, lab_netns)),
    ignore = "needs iperf3, mptcpize and root and the kernel's MPTCP"
)]
fn iperf3_through_mptcpize_as_in_the_guide() {
    if !ready("lab test --tool iperf3")
        || !testkit::require(
            "lab test --tool iperf3",
            testkit::tool("iperf3").and(testkit::tool("mptcpize")),
        )
    {
        return;
    }
    let d = LabDir::new(true);
    assert_eq!(d.lab(&["up"]).0, 0);
    let guard = traffic();
    let (code, out, err) = d.lab(&["test", "--tool", "iperf3", "--seconds", "3", "--json"]);
    drop(guard);
    assert_eq!(code, 0, "{out}\n{err}");
    let t: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(t["report"]["subflows_mib"], 3, "{out}");
    assert!(
        t["report"]["goodput_bps"].as_f64().unwrap() > 100e6,
        "{out}"
    );
}

/// `lab up` killed with SIGKILL at many points, then `lab down`: nothing of the lab is left.
#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn up_killed_at_random_points_then_down_leaves_nothing() {
    if !ready("lab up under SIGKILL") {
        return;
    }
    let d = LabDir::new(false);
    let bin: PathBuf = assert_cmd::cargo::cargo_bin("lab");
    // How long a whole `lab up` (process start included) takes here: kills land inside it.
    let t = Instant::now();
    assert_eq!(d.lab(&["up", "--no-apply"]).0, 0);
    let full = t.elapsed().as_micros() as u64;
    assert_eq!(d.lab(&["down"]).0, 0);
    let mut seed = u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15;
    let mut killed_midway = 0;
    for round in 0..24 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_micros((seed >> 33) % full.max(1));
        let mut child = std::process::Command::new(&bin)
            .arg("up")
            .current_dir(d.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while start.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        // SIGKILL to the child we started, by PID.
        let _ = child.kill();
        let status = child.wait().unwrap();
        let left = d.namespaces().len();
        // Killed (not finished) with namespaces already created: an interrupted `up`.
        if !status.success() && left > 0 {
            killed_midway += 1;
        }
        if round % 2 == 0 {
            // Half the time the state file is lost too: the prefix still finds everything.
            let _ = std::fs::remove_dir_all(d.path().join(".lab"));
        }
        let (code, _, err) = d.lab(&["down"]);
        assert_eq!(code, 0, "round {round}: {err}");
        assert!(
            d.namespaces().is_empty(),
            "round {round} after {delay:?}: {:?}",
            d.namespaces()
        );
    }
    eprintln!("{killed_midway} of 24 kills interrupted `lab up` after it had created namespaces");
    assert!(
        killed_midway > 0,
        "no kill landed inside `lab up` ({full} us): the test proved nothing"
    );
}

#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn demo_builtin_passes_and_guide_fails_with_reasons() {
    if !ready("lab demo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| common::run_in(dir.path(), args);
    let _guard = traffic();
    let (code, out, err) = run(&["demo", "--seconds", "5"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("subflows    3 established, 3 expected"),
        "{out}"
    );
    assert!(out.contains("verdict: PASS"), "{out}");
    for iface in ["enp0s8", "enp0s9", "enp0s10"] {
        assert!(
            out.contains(&format!("[ok] ue1 {iface}"))
                && out.contains(&format!("[ok] ue2 {iface}")),
            "{out}"
        );
    }
    assert!(out.contains("[ok] goodput"), "{out}");
    assert!(err.contains("down: removed 3 namespaces"), "{err}");

    let (code, out, _) = run(&["demo", "--preset", "guide", "--seconds", "3"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("verdict: FAIL"), "{out}");
    assert!(out.contains("[FAIL] ue1 enp0s9"), "{out}");
    assert!(
        out.contains("why (lab doctor):") && out.contains("[no-signal-endpoint]"),
        "{out}"
    );
    assert!(netns::topology::existing("demo-guide").unwrap().is_empty());
}

/// `lab check`: exit 2 when no check could run, 0 when all hold, 3 when only a warning
/// fails, 1 when an error-level check fails; TAP 13 and JSON output. Checks about a transfer
/// are judged against the last `lab test`; commands run on the hosts.
#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn check_exit_codes_and_tap() {
    if !ready("lab check") {
        return;
    }
    let d = LabDir::new(false);
    let base = std::fs::read_to_string(d.path().join("Lab.toml")).unwrap();
    let with = |checks: &str| {
        std::fs::write(d.path().join("Lab.toml"), format!("{base}\n{checks}")).unwrap();
    };
    let joins =
        "[[checks]]\nname = \"two joins\"\nhost = \"ue1\"\ncounter = \"MPJoinAckRx\"\nequals = 2\n";
    let limits = |level: &str, want: &str| {
        format!(
            "[[checks]]\nname = \"limits\"\nlevel = \"{level}\"\nhost = \"ue2\"\ncommand = [\"ip\", \"mptcp\", \"limits\", \"show\"]\nstdout = \"subflows {want}\"\n"
        )
    };
    with(joins);
    // No test has run: nothing could be judged.
    let (code, out, err) = d.lab(&["check"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("[skip] two joins: no test result"), "{out}");

    assert_eq!(d.lab(&["up"]).0, 0);
    let guard = traffic();
    let (code, out, err) = d.lab(&["test", "--seconds", "2"]);
    drop(guard);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("checks of"), "{out}");
    with(&format!("{joins}\n{}", limits("error", "5")));
    let (code, out, err) = d.lab(&["check", "--format", "tap"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("TAP version 13\n1..2\nok 1 - two joins\n"),
        "{out}"
    );
    assert!(out.contains("ok 2 - limits"), "{out}");

    // A warning that fails: exit 3, and TAP marks it.
    with(&format!("{joins}\n{}", limits("warning", "7")));
    let (code, out, _) = d.lab(&["check", "--format", "tap"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("not ok 2 - limits # TODO warning"), "{out}");

    // An error-level check that fails: exit 1, in JSON too.
    with(&joins.replace("equals = 2", "equals = 9"));
    let (code, out, _) = d.lab(&["check", "--format", "json"]);
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["exit"], 1);
    assert_eq!(v["outcomes"][0]["pass"], false);
    assert_eq!(
        v["outcomes"][0]["detail"],
        "ue1 MPJoinAckRx 2, expected = 9"
    );
}

/// The scenario library from the command line: the list, and two scenarios run with TAP.
#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn scenarios_list_and_run() {
    let (code, out, _) = common::run_in(Path::new("."), &["scenarios"]);
    assert_eq!(code, 0);
    assert!(out.lines().count() > 12, "{out}");
    assert!(
        out.contains("signal-address") && out.contains("(signal_address_tests)"),
        "{out}"
    );
    if !ready("lab scenarios run") {
        return;
    }
    let _guard = traffic();
    let (code, out, err) = common::run_in(
        Path::new("."),
        &[
            "scenarios",
            "run",
            "signal-address",
            "multiple-subflows-limited-by-server",
            "--seconds",
            "1",
            "--format",
            "tap",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok 1 - signal-address"), "{out}");
    assert!(
        out.contains("ok 2 - multiple-subflows-limited-by-server"),
        "{out}"
    );
    for lab in ["signal-address", "multiple-subflows-limited-by-server"] {
        assert!(
            netns::topology::existing(lab).unwrap().is_empty(),
            "{lab} left"
        );
    }
    let (code, _, err) = common::run_in(Path::new("."), &["scenarios", "run", "nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("no scenario `nope`"), "{err}");
}

/// Events during a transfer, from Lab.toml and the command line: a link failure, a rate
/// change and an endpoint removal at set seconds, each on the time line with goodput per
/// second; delay needs netem, which this kernel may lack: then the event fails, named, and so
/// does the verdict. Afterwards every host is back to its plan.
#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn events_on_the_time_line() {
    if !ready("lab test --event") {
        return;
    }
    let d = LabDir::new(true);
    let base = std::fs::read_to_string(d.path().join("Lab.toml")).unwrap();
    let with_events = base.replace(
        "[lab]\n",
        "[test]\nevents = [\"1s ue2 link-down enp0s9\"]\n\n[lab]\n",
    );
    std::fs::write(d.path().join("Lab.toml"), with_events).unwrap();
    assert_eq!(d.lab(&["up"]).0, 0);
    let guard = traffic();
    let (code, out, err) = d.lab(&[
        "test",
        "--seconds",
        "5",
        "--event",
        "2s ue2 rate enp0s10 10mbit",
        "--event",
        "3s ue1 endpoint-remove 10.1.1.3",
    ]);
    drop(guard);
    assert!(code == 0 || code == 1, "{out}{err}");
    let line = |sec: usize| {
        out.lines()
            .skip_while(|l| !l.contains("time line"))
            .find(|l| l.trim_start().starts_with(&format!("{sec} ")))
            .unwrap_or_else(|| panic!("no second {sec} on the time line:\n{out}"))
            .to_string()
    };
    assert!(out.contains("time line   second  Mbit/s  events"), "{out}");
    assert!(line(1).contains("ue2 enp0s9 down"), "{out}");
    assert!(line(2).contains("ue2 enp0s10 rate 10mbit"), "{out}");
    assert!(line(3).contains("ue1 endpoint 10.1.1.3 removed"), "{out}");
    // The first path is untouched: data flows to the end.
    assert!(out.contains("[ok] transfer survived"), "{out}");
    let (_, out, _) = d.lab(&["net", "apply", "--dry-run"]);
    assert!(
        out.trim_end()
            .ends_with("0 changes (dry run: nothing changed)"),
        "{out}"
    );

    // Delay: netem, or a named failure.
    let guard = traffic();
    let (code, out, _) = d.lab(&[
        "test",
        "--seconds",
        "2",
        "--event",
        "1s ue2 netem enp0s10 delay=5ms",
    ]);
    drop(guard);
    let netem = std::process::Command::new("modprobe")
        .args(["-n", "sch_netem"])
        .status()
        .is_ok_and(|s| s.success());
    if out.contains("failed:") {
        assert!(out.contains("CONFIG_NET_SCH_NETEM"), "{out}");
        assert!(out.contains("[FAIL] event"), "{out}");
        assert_eq!(code, 1, "{out}");
    } else {
        assert!(netem, "netem worked without the module: {out}");
        assert!(out.contains("ue2 enp0s10 delay 5ms"), "{out}");
    }
    // A bad event is refused before anything runs.
    let (code, _, err) = d.lab(&["test", "--event", "1s ue9 link-down enp0s9"]);
    assert_ne!(code, 0);
    assert!(err.contains("no host `ue9`"), "{err}");
}

/// `lab tc set|show|reset` change what a following `lab test` measures: a path slowed to
/// 5 Mbit/s carries a fraction of what the others carry, and carries its share again after
/// the reset.
#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn tc_set_show_reset_change_what_test_measures() {
    if !ready("lab tc") {
        return;
    }
    let d = LabDir::new(true);
    assert_eq!(d.lab(&["up"]).0, 0);
    let share = |d: &LabDir| -> f64 {
        let guard = traffic();
        let (_, out, err) = d.lab(&["test", "--seconds", "3", "--json"]);
        drop(guard);
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
        let bytes = |iface: &str| {
            v["report"]["interfaces"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["host"] == "ue2" && i["iface"] == iface)
                .map(|i| i["tx_bytes"].as_u64().unwrap_or(0) + i["rx_bytes"].as_u64().unwrap_or(0))
                .unwrap()
        };
        bytes("enp0s9") as f64 / bytes("enp0s8") as f64
    };
    let (code, out, err) = d.lab(&["tc", "set", "ue2", "enp0s9", "--rate", "5mbit"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("tbf rate 5mbit"), "{out}");
    let (_, out, _) = d.lab(&["tc", "show", "ue2", "enp0s9"]);
    assert!(
        out.contains("tbf 5mbit") && out.contains("plan: rate 50mbit"),
        "{out}"
    );
    let slowed = share(&d);
    assert!(
        slowed < 0.3,
        "enp0s9 at 5 Mbit/s carried {slowed:.2} of enp0s8"
    );

    assert_eq!(d.lab(&["tc", "reset", "ue2", "enp0s9"]).0, 0);
    let (_, out, _) = d.lab(&["tc", "show", "ue2", "enp0s9", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["rate_bps"], 50_000_000, "{out}");
    let back = share(&d);
    assert!(
        back > 0.6,
        "enp0s9 back at 50 Mbit/s carried {back:.2} of enp0s8"
    );

    let (code, _, err) = d.lab(&["tc", "set", "ue2", "eth9", "--rate", "1mbit"]);
    assert_ne!(code, 0);
    assert!(err.contains("no interface `eth9`"), "{err}");
}

/// IPv6 only and dual stack on namespaces: `lab up` converges (a second apply changes
/// nothing), `lab doctor` is clean, and `lab test` passes with the plan's exact counters; the
/// dual-stack lab's main-table routes carry their metrics.
#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn ipv6_only_and_dual_stack_labs_pass_lab_test() {
    if !ready("IPv6 and dual-stack labs") {
        return;
    }
    for (file, name) in [
        (include_str!("../../../fixtures/labs/ipv6.toml"), "ipv6"),
        (
            include_str!("../../../fixtures/labs/dual-stack.toml"),
            "dual-stack",
        ),
    ] {
        let d = LabDir::from_source(file, name, false);
        let (code, out, err) = d.lab(&["doctor"]);
        assert_eq!(code, 0, "{name} doctor: {out}{err}");
        let (code, out, err) = d.lab(&["up"]);
        assert_eq!(code, 0, "{name} up: {out}{err}");
        let (code, out, err) = d.lab(&["net", "apply", "--dry-run"]);
        assert!(
            code == 0 && out.contains("0 changes"),
            "{name}: a second apply must change nothing: {out}{err}"
        );
        let (code, out, _) = d.lab(&["exec", "cli", "--", "ip", "-6", "rule", "show"]);
        assert!(
            code == 0 && out.contains("from dead:beef:2::2 lookup 200"),
            "{name}: IPv6 per-source rule: {out}"
        );
        if name == "dual-stack" {
            let (_, out, _) = d.lab(&["exec", "srv", "--", "ip", "route", "show"]);
            assert!(
                out.contains("10.99.0.0/16 via 10.0.1.2 dev eth1 proto static metric 100")
                    && out.contains("10.99.0.0/16 via 10.0.2.2 dev eth2 proto static metric 200"),
                "main-table routes with metrics: {out}"
            );
        }
        let _t = traffic();
        let (code, out, err) = d.lab(&["test", "--seconds", "3"]);
        assert_eq!(code, 0, "{name} test: {out}{err}");
        assert!(out.contains("verdict: PASS"), "{out}");
        let subflows = if name == "ipv6" { 3 } else { 2 };
        assert!(
            out.contains(&format!(
                "{subflows} established (expected exactly {subflows}"
            )),
            "{name}: {out}"
        );
    }
}

/// A backup path the plan surely opens stays idle, and the verdict says so (and counts the
/// backup join); a path written as a backup on the server's side too.
#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn backup_paths_stay_idle_as_the_plan_says() {
    if !ready("idle backup paths") {
        return;
    }
    for (scenario, from, to, idle) in [
        (
            "single-subflow",
            "flags = [\"subflow\"]",
            "flags = [\"subflow\", \"backup\"]",
            "ns2 eth3",
        ),
        (
            "signal-address",
            "flags = [\"signal\"]",
            "flags = [\"signal\", \"backup\"]",
            "ns1 eth2",
        ),
    ] {
        let src = lab::scenarios::get(scenario)
            .unwrap()
            .source
            .replace(from, to);
        let d = LabDir::from_source(&src, scenario, false);
        let (code, out, err) = d.lab(&["up"]);
        assert_eq!(code, 0, "{scenario} up: {out}{err}");
        let _t = traffic();
        let (code, out, err) = d.lab(&["test", "--seconds", "3"]);
        assert_eq!(code, 0, "{scenario} test: {out}{err}");
        assert!(
            out.contains(&format!("[ok] {idle}: idle, as expected")),
            "{scenario}: {out}"
        );
        let backup_join = if scenario == "single-subflow" {
            "[ok] ns1 MPJoinSynBackupRx: 1, expected 1"
        } else {
            "[ok] ns2 MPJoinSynAckBackupRx: 1, expected 1"
        };
        assert!(out.contains(backup_join), "{scenario}: {out}");
    }
}

/// Odd numbers are errors with the reason, before any traffic: a length out of range, a
/// failure or an event after the transfer ends, a congestion control the kernel lacks.
#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn odd_numbers_are_refused_with_the_reason() {
    for secs in ["0", "18446744073709551615", "86401"] {
        let (code, _, err) = common::run_in(Path::new("."), &["test", "--seconds", secs]);
        assert_eq!(code, 2, "--seconds {secs}: {err}");
        assert!(err.contains("is not in 1..=86400"), "{err}");
    }
    if !ready("odd numbers on a lab that is up") {
        return;
    }
    let d = LabDir::new(false);
    let (code, out, err) = d.lab(&["up"]);
    assert_eq!(code, 0, "{out}{err}");
    for (args, says) in [
        (
            &["--fail", "enp0s9@6"][..],
            "--fail enp0s9@6: the transfer ends at 2 s",
        ),
        (
            &["--event", "5s ue2 link-down enp0s9"][..],
            "at 5.0 s: the transfer ends at 2 s",
        ),
        (
            &["--cc", "nosuchcc"][..],
            "congestion control `nosuchcc` is not in this kernel",
        ),
    ] {
        let mut argv = vec!["test", "--seconds", "2"];
        argv.extend_from_slice(args);
        let (code, out, err) = d.lab(&argv);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!out.contains("verdict"), "no transfer ran: {out}");
    }
}

/// Two directories, one lab name: the second directory's `up`, `test` and `down` refuse,
/// naming the first directory, and leave its lab alone.
#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn a_second_directory_with_the_same_lab_name_is_refused() {
    if !ready("two labs of one name") {
        return;
    }
    let first = LabDir::new(false);
    let (code, out, err) = first.lab(&["up"]);
    assert_eq!(code, 0, "{out}{err}");
    let before = first.namespaces();
    let second = tempfile::tempdir().unwrap();
    std::fs::copy(
        first.path().join("Lab.toml"),
        second.path().join("Lab.toml"),
    )
    .unwrap();
    let first_dir = std::fs::canonicalize(first.path()).unwrap();
    for args in [&["up"][..], &["test", "--seconds", "1"], &["down"]] {
        let (code, out, err) = common::run_in(second.path(), args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        let said = common::flat(&err);
        assert!(
            said.contains(&format!("is up in {}:", first_dir.display())),
            "{args:?}: {err}"
        );
    }
    assert_eq!(first.namespaces(), before, "the first lab is untouched");
}

/// Labs made by `lab init` in two directories of the same name run side by side: the second
/// gets a name of its own, and `lab down` in one leaves the other up and working.
#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn two_labs_made_by_init_run_side_by_side() {
    if !ready("two labs side by side") {
        return;
    }
    let base = format!(
        "labtest-c{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let (p1, p2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (p1.path().join(&base), p2.path().join(&base));
    /// `lab down` in each directory, also when the test fails.
    struct Down<'a>(Vec<&'a Path>);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            for d in &self.0 {
                common::run_in(d, &["down"]);
            }
        }
    }
    let _down = Down(vec![&a, &b]);
    let name_of = |dir: &Path| {
        lab::load_file(&dir.join("Lab.toml"))
            .map(|l| l.name)
            .unwrap()
    };
    std::fs::create_dir(&a).unwrap();
    let (code, out, err) = common::run_in(&a, &["init"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(name_of(&a), base, "named after its directory: {out}");
    let (code, out, err) = common::run_in(&a, &["up"]);
    assert_eq!(code, 0, "{out}{err}");
    // The same directory name elsewhere, while the first lab is up: a name of its own.
    std::fs::create_dir(&b).unwrap();
    let (code, out, err) = common::run_in(&b, &["init"]);
    assert_eq!(code, 0, "{out}{err}");
    let second = name_of(&b);
    assert!(
        second.starts_with(&format!("{base}-")) && second.len() <= 32,
        "{second}"
    );
    let (code, out, err) = common::run_in(&b, &["up"]);
    assert_eq!(code, 0, "{out}{err}");
    let first_ns = netns::topology::existing(&base).unwrap();
    let second_ns = netns::topology::existing(&second).unwrap();
    assert!(!first_ns.is_empty() && first_ns.len() == second_ns.len());
    assert!(first_ns.iter().all(|n| !second_ns.contains(n)));
    // Both labs use the same addresses, each in its own namespaces: a transfer in one while the
    // other is up.
    {
        let _t = traffic();
        let (code, out, err) = common::run_in(&b, &["test", "--seconds", "2"]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let (code, out, err) = common::run_in(&a, &["down"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(netns::topology::existing(&base).unwrap().is_empty());
    assert_eq!(netns::topology::existing(&second).unwrap(), second_ns);
    let (code, out, err) = common::run_in(&b, &["status"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("applied"), "the second lab is intact: {out}");
    let (code, out, err) = common::run_in(&b, &["down"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(netns::topology::existing(&second).unwrap().is_empty());
}

/// `lab exec` passes statuses through as shells do: the command's own, 127 for a command
/// that is not there, 126 for one that cannot be executed, each with the shell's words.
#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn exec_passes_statuses_through_as_shells_do() {
    if !ready("lab exec statuses") {
        return;
    }
    let d = LabDir::new(false);
    let (code, out, err) = d.lab(&["up", "--no-apply"]);
    assert_eq!(code, 0, "{out}{err}");
    // Not applied yet: a dry run says what is pending, and exits 4 for it; 0 once applied.
    let (code, out, _) = d.lab(&["net", "apply", "--dry-run"]);
    assert!(code == 4 && out.contains("changes needed"), "{code}: {out}");
    assert_eq!(d.lab(&["net", "apply"]).0, 0);
    assert_eq!(d.lab(&["net", "apply", "--dry-run"]).0, 0);
    let not_exec = d.path().join("plain.txt");
    std::fs::write(&not_exec, "not a program\n").unwrap();
    let not_exec = not_exec.display().to_string();
    for (cmd, want, says) in [
        (vec!["sh", "-c", "exit 7"], 7, ""),
        (vec!["no-such-command-here"], 127, "command not found"),
        (vec!["/no/such/program"], 127, "No such file or directory"),
        (vec![not_exec.as_str()], 126, "Permission denied"),
    ] {
        let mut argv = vec!["exec", "ue1", "--"];
        argv.extend(cmd.iter().copied());
        let (code, _, err) = d.lab(&argv);
        assert_eq!(code, want, "{cmd:?}: {err}");
        assert!(err.contains(says), "{cmd:?}: {err}");
    }
}

/// Renaming a lab that is up: `lab up` refuses and says what to do; `lab down` removes the
/// hosts under the name they were brought up with.
#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn a_lab_renamed_while_up_is_still_removed() {
    if !ready("renaming a lab that is up") {
        return;
    }
    let d = LabDir::new(false);
    let (code, out, err) = d.lab(&["up", "--no-apply"]);
    assert_eq!(code, 0, "{out}{err}");
    let old = d.namespaces();
    assert!(!old.is_empty());
    let toml = d.path().join("Lab.toml");
    let renamed = format!("{}r", d.name);
    let text = std::fs::read_to_string(&toml).unwrap().replace(
        &format!("name = \"{}\"", d.name),
        &format!("name = \"{renamed}\""),
    );
    std::fs::write(&toml, text).unwrap();
    let (code, _, err) = d.lab(&["up", "--no-apply"]);
    assert_eq!(code, 2, "{err}");
    let said = common::flat(&err);
    assert!(
        said.contains(&format!("is up as `{}`", d.name)) && said.contains("run `lab down`"),
        "{err}"
    );
    assert!(netns::topology::existing(&renamed).unwrap().is_empty());
    let (code, out, err) = d.lab(&["down"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("(as `{}`)", d.name)), "{out}");
    assert!(d.namespaces().is_empty(), "left: {:?}", d.namespaces());
}

/// A lab that is up follows its Lab.toml's wiring: an MTU removed goes back to the default, a
/// sysctl removed goes back to the value it had before lab set it, an interface added is wired
/// and configured, and a second apply finds nothing to do.
#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn changed_wiring_is_converged_by_up() {
    if !ready("changing a lab that is up") {
        return;
    }
    let d = LabDir::new(false);
    let toml = d.path().join("Lab.toml");
    let plain = std::fs::read_to_string(&toml).unwrap();
    let mtu_of = |d: &LabDir| {
        let (_, out, _) = d.lab(&["exec", "ue1", "--", "cat", "/sys/class/net/enp0s9/mtu"]);
        out.trim().to_string()
    };
    let with_mtu = plain.replacen("name = \"enp0s9\"\n", "name = \"enp0s9\"\nmtu = 1400\n", 1);
    std::fs::write(&toml, &with_mtu).unwrap();
    assert_eq!(d.lab(&["up"]).0, 0);
    assert_eq!(mtu_of(&d), "1400");
    std::fs::write(&toml, &plain).unwrap();
    let (code, out, err) = d.lab(&["up"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(mtu_of(&d), "1500", "the MTU Lab.toml no longer sets");
    // A sysctl Lab.toml sets, then no longer sets: back to the value it had before lab set it
    // (a fresh namespace's: tcp_ecn 2), with nothing pending and the record forgotten.
    let ecn_of = |d: &LabDir| {
        let (_, out, _) = d.lab(&["exec", "ue1", "--", "cat", "/proc/sys/net/ipv4/tcp_ecn"]);
        out.trim().to_string()
    };
    assert_eq!(ecn_of(&d), "2");
    std::fs::write(
        &toml,
        format!("{plain}\n[hosts.ue1.sysctls]\n\"net.ipv4.tcp_ecn\" = 1\n"),
    )
    .unwrap();
    assert_eq!(d.lab(&["up"]).0, 0);
    assert_eq!(ecn_of(&d), "1");
    std::fs::write(&toml, &plain).unwrap();
    let (code, out, _) = d.lab(&["net", "apply", "--dry-run"]);
    assert!(
        code == 4 && out.contains("net.ipv4.tcp_ecn"),
        "the value to put back is pending: {out}"
    );
    let (code, out, err) = d.lab(&["up"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(ecn_of(&d), "2", "the sysctl Lab.toml no longer sets");
    let (code, out, _) = d.lab(&["net", "apply", "--dry-run"]);
    assert!(code == 0 && out.contains("0 changes"), "{out}");
    let (_, status, _) = d.lab(&["status"]);
    assert!(status.contains("applied"), "{status}");

    let more = format!(
        "{plain}\n[[hosts.ue2.interfaces]]\nname = \"enp0s11\"\nnetwork = \"ue1-ue2_v1_2\"\naddress = \"10.1.1.8/24\"\n"
    );
    std::fs::write(&toml, more).unwrap();
    let (code, out, err) = d.lab(&["up"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("wired again") || out.contains("wired again"),
        "{out}{err}"
    );
    let (code, out, _) = d.lab(&["net", "apply", "--dry-run"]);
    assert!(code == 0 && out.contains("0 changes"), "{out}");
    let (_, out, _) = d.lab(&[
        "exec", "ue2", "--", "ip", "-br", "addr", "show", "dev", "enp0s11",
    ]);
    assert!(out.contains("10.1.1.8/24"), "{out}");
}

/// Two demos at once: each brings up, tests and removes a lab of its own (they may slow each
/// other, so the verdicts are not asserted), and neither hangs nor leaves anything.
#[test]
#[cfg_attr(not(lab_netns), ignore = "needs root and the kernel's MPTCP")]
fn two_demos_at_once_keep_to_their_own_labs() {
    if !ready("two demos at once") {
        return;
    }
    let _t = traffic();
    // Both in one directory of the test's own (each demo keeps its run there, never in the
    // source tree).
    let dir = tempfile::tempdir().unwrap();
    let run = || common::run_in(dir.path(), &["demo", "--seconds", "3"]);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(run);
        let b = s.spawn(run);
        (a.join().unwrap(), b.join().unwrap())
    });
    let name = |err: &str| {
        err.lines()
            .find_map(|l| l.split("(lab `").nth(1))
            .and_then(|r| r.split('`').next())
            .map(String::from)
            .unwrap_or_default()
    };
    for (code, out, err) in [&a, &b] {
        assert!(*code == 0 || *code == 1, "{out}{err}");
        assert!(out.contains("verdict:"), "{out}{err}");
    }
    let (na, nb) = (name(&a.2), name(&b.2));
    assert!(
        na.starts_with("demo-") && nb.starts_with("demo-") && na != nb,
        "{na} {nb}"
    );
    for n in [na, nb] {
        assert!(
            netns::topology::existing(&n).unwrap().is_empty(),
            "{n} left"
        );
    }
}

/// SIGINT at points spread over a `lab test --fail` and a `lab test --tool iperf3` run (before
/// the link goes down, right after, late in the transfer): lab exits 130 saying it was
/// interrupted, no link is left down, the hosts are back at their plan (`net apply --dry-run`
/// finds nothing), and no process lab started runs on in the lab's namespaces.
#[test]
#[cfg_attr(
    not(all(lab_has_iperf3, lab_netns)),
    ignore = "needs iperf3 and root and the kernel's MPTCP"
)]
fn sigint_during_test_leaves_no_link_down_and_no_process() {
    if !ready("SIGINT during lab test") || !testkit::require("iperf3", testkit::tool("iperf3")) {
        return;
    }
    let _t = traffic();
    let d = LabDir::new(false);
    assert_eq!(d.lab(&["up"]).0, 0);
    // The points: a pseudo-random spread seeded by the process id, plus fixed edges.
    let seed = u64::from(std::process::id());
    let jitter = |i: u64| ((seed.wrapping_mul(2_654_435_761).wrapping_add(i * 97)) % 400) as u64;
    let runs: Vec<(Vec<&str>, u64)> = vec![
        (vec!["--fail", "enp0s9@1"], 150 + jitter(1)),
        (vec!["--fail", "enp0s9@1"], 1_100 + jitter(2)),
        (vec!["--fail", "enp0s9@1"], 2_500 + jitter(3)),
        (vec!["--tool", "iperf3"], 300 + jitter(4)),
        (vec!["--tool", "iperf3"], 1_800 + jitter(5)),
        (
            vec!["--tool", "iperf3", "--fail", "enp0s9@1"],
            1_400 + jitter(6),
        ),
    ];
    for (extra, after_ms) in runs {
        let mut args = vec!["test", "--seconds", "4"];
        args.extend(extra.iter().copied());
        let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lab"))
            .current_dir(d.path())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(after_ms));
        // Our own child, by PID.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let t = std::time::Instant::now();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let what = format!("lab {} with SIGINT after {after_ms} ms", args.join(" "));
        assert_eq!(out.status.code(), Some(130), "{what}: {err}");
        assert!(err.contains("interrupted"), "{what}: {err}");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(3),
            "{what}: took {:?} to stop",
            t.elapsed()
        );
        // No link down: every interface of both hosts is up, and nothing is pending.
        for host in ["ue1", "ue2"] {
            let (_, links, _) = d.lab(&["exec", host, "--", "ip", "-o", "link", "show"]);
            for l in links.lines().filter(|l| !l.contains(": lo:")) {
                assert!(l.contains(",UP"), "{what}: {host}: {l}");
            }
        }
        let (code, plan, _) = d.lab(&["net", "apply", "--dry-run"]);
        assert!(code == 0 && plan.contains("0 changes"), "{what}: {plan}");
        // No process in the lab's namespaces (iperf3 ran there).
        for ns in d.namespaces() {
            let pids = std::process::Command::new("ip")
                .args(["netns", "pids", &ns])
                .output()
                .unwrap();
            let pids = String::from_utf8_lossy(&pids.stdout);
            assert!(pids.trim().is_empty(), "{what}: {ns} still runs {pids}");
        }
    }
}

/// A real capture, as Wireshark users make one (dumpcap on the server's three path NICs) during
/// `lab test`: lab's decoder reads every frame as tshark does, field by field, and groups the
/// subflows as tshark's `mptcp.stream` does. On the built-in lab and the guide's preset (whose
/// verdict fails; its traffic is what is read).
#[test]
#[cfg_attr(
    not(all(lab_netns, lab_has_tshark)),
    ignore = "needs root, the kernel's MPTCP and tshark (dumpcap)"
)]
fn real_captures_decode_as_tshark_reads_them() {
    if !testkit::require(
        "real captures against tshark",
        testkit::root()
            .and_then(|()| testkit::mptcp())
            .and_then(|()| testkit::tool("tshark"))
            .and_then(|()| testkit::tool("dumpcap")),
    ) {
        return;
    }
    for (source, name) in [
        (lab::Preset::Builtin.source(), "mptcp"),
        (lab::Preset::Guide.source(), "guide"),
    ] {
        let lab = LabDir::from_source(source, name, false);
        let (code, out, err) = lab.lab(&["up"]);
        assert_eq!(code, 0, "{out}{err}");
        let file = lab.path().join("capture.pcapng");
        let ns = format!("lab.{}.ue2", lab.name);
        let _turn = traffic();
        let mut dumpcap = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "dumpcap", "-q", "-s", "256"])
            .args(["-i", "enp0s8", "-i", "enp0s9", "-i", "enp0s10", "-w"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // dumpcap writes the section and interface blocks once it captures.
        let until = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&file).map_or(0, |m| m.len()) == 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        let (code, out, err) = lab.lab(&["test", "--seconds", "2"]);
        // dumpcap is ours: ended by its PID, as Ctrl-C would.
        let _ = std::process::Command::new("kill")
            .args(["-INT", &dumpcap.id().to_string()])
            .status();
        let status = dumpcap.wait().unwrap();
        let mut stderr = String::new();
        use std::io::Read as _;
        let _ = dumpcap.stderr.take().unwrap().read_to_string(&mut stderr);
        assert!(
            status.success() || status.code() == Some(0),
            "dumpcap: {stderr}"
        );
        if name == "mptcp" {
            assert_eq!(code, 0, "{out}{err}");
        }
        let bytes = std::fs::read(&file).unwrap();
        let cap = decode::read(&bytes).unwrap();
        assert!(cap.problems.is_empty(), "{name}: {:?}", cap.problems);
        assert_eq!(cap.interfaces.len(), 3);
        assert!(
            cap.packets.len() > 1000,
            "{name}: {} packets",
            cap.packets.len()
        );
        let compared = testkit::tshark::compare(&file, &cap);
        assert_eq!(compared, cap.packets.len());
        testkit::tshark::same_connections(&file, &cap);
        let conns = cap.connections();
        assert!(
            conns.iter().any(|c| c.subflows.len() > 1),
            "{name}: no connection with joins: {conns:#?}"
        );
        // Bytes per second of each subflow, both directions, against tshark's io,stat per
        // tcp.stream (intervals from the file's first frame, as tshark counts them). dumpcap
        // writes three interfaces' frames as its threads get them, a few microseconds out of
        // time order, and io,stat counts a frame older than one before it into the later
        // interval: both read reordercap's time-sorted copy.
        let sorted = lab.path().join("sorted.pcapng");
        let st = std::process::Command::new("reordercap")
            .arg(&file)
            .arg(&sorted)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let cap = decode::read(&std::fs::read(&sorted).unwrap()).unwrap();
        let conns = cap.connections();
        let mptcp = conns.iter().find(|c| c.subflows.len() > 1).unwrap();
        let opts = decode::analysis::Options {
            interval: 1.0,
            origin_ns: cap.first_ts_ns,
        };
        let reports =
            decode::analysis::analyze(&cap.packets, std::slice::from_ref(mptcp), opts, |_| true);
        let streams = testkit::tshark::tcp_streams(&sorted);
        let ids: Vec<u32> = mptcp
            .subflows
            .iter()
            .map(|s| streams[&(s.client, s.server)])
            .collect();
        let theirs = testkit::tshark::io_stat_bytes(&sorted, 1, &ids);
        for (s, t) in reports[0].subflows.iter().zip(&theirs) {
            let n = s.up.per_interval.len().max(s.down.per_interval.len());
            let mut ours: Vec<u64> = (0..n)
                .map(|i| {
                    s.up.per_interval.get(i).copied().unwrap_or(0)
                        + s.down.per_interval.get(i).copied().unwrap_or(0)
                })
                .collect();
            while ours.last() == Some(&0) {
                ours.pop();
            }
            assert_eq!(&ours, t, "{name}: subflow {} -> {}", s.client, s.server);
        }
        eprintln!(
            "{name}: {} frames, {} TCP segments, {} connections, {} subflows in the transfer",
            cap.frames,
            cap.packets.len(),
            conns.len(),
            mptcp.subflows.len()
        );
    }
}

/// `lab test --capture --out DIR`: the run's pcapng has both hosts' path interfaces, nothing
/// dropped, and reads as tshark reads it; `lab capture HOST:IFACE --seconds N` alongside a
/// test captures that interface alone; an interface the host does not have is refused.
#[test]
#[cfg_attr(
    not(all(lab_netns, lab_has_tshark)),
    ignore = "needs root, the kernel's MPTCP and tshark"
)]
fn test_capture_and_capture_command() {
    if !ready_with_tshark("lab test --capture") {
        return;
    }
    let lab = LabDir::new(true);
    let (code, out, err) = lab.lab(&["up"]);
    assert_eq!(code, 0, "{out}{err}");
    let _turn = traffic();
    let run = lab.path().join("run1");
    // The verdict must pass, but the kernel's MPTCP now and then resets a subflow on its own
    // (seen once in CI: DSSNotMatching, then MP_RST, 2 subflows of 3): such a run is shown
    // and the test is run once more; a second failure fails the test.
    let mut attempt = 0;
    let (code, out, err) = loop {
        attempt += 1;
        let _ = std::fs::remove_dir_all(&run);
        let (code, out, err) = lab.lab(&[
            "test",
            "--seconds",
            "2",
            "--capture",
            "--out",
            run.to_str().unwrap(),
        ]);
        if code == 1 && attempt == 1 && out.contains("MPRstTx") {
            eprintln!("RETRY: the kernel reset a subflow during the first run:\n{out}");
            continue;
        }
        break (code, out, err);
    };
    assert_eq!(code, 0, "{out}{err}");
    let file = run.join("capture.pcapng");
    // The packet-level view agrees with the counters on every path of both hosts.
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("B of MPTCP payload") && l.contains("[ok]"))
            .count(),
        6,
        "{out}"
    );
    eprintln!("{out}");
    assert_eq!(common::disagreements(&out), Vec::<&str>::new());
    assert!(
        out.contains("pm events   ue1 (ip mptcp monitor):") && out.contains("2 SF_ESTABLISHED"),
        "{out}"
    );
    // The signalling in the capture equals the kernel's counters (2 joins, 2 announcements).
    for (host, counter, n) in [
        ("ue1", "MPJoinSynRx", 2),
        ("ue1", "MPJoinAckRx", 2),
        ("ue2", "AddAddr", 2),
        ("ue1", "EchoAdd", 2),
        ("ue2", "subflows (MPTCP_INFO)", 3),
    ] {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("{host} {counter}")))
            .unwrap_or_else(|| panic!("{host} {counter}: {out}"));
        assert!(
            line.contains("[ok]") && line.contains(&format!("capture {n:>4}, kernel {n:>4}")),
            "{line}"
        );
    }
    assert!(
        out.contains(&format!("capture: {}", file.display()))
            && out.contains(", 0 dropped by the kernel"),
        "{out}"
    );
    // The run's files beside the capture: run.json and each plot as SVG and PNG.
    for f in [
        "run.json",
        "throughput.svg",
        "throughput.png",
        "cumulative.svg",
        "cumulative.png",
        "interfaces.svg",
        "interfaces.png",
        "dsn.svg",
        "dsn.png",
        "rtt.svg",
        "rtt.png",
        "delays-cdf.svg",
        "delays-cdf.png",
        "events.svg",
        "events.png",
    ] {
        let bytes = std::fs::read(run.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        match f.rsplit('.').next() {
            Some("png") => assert_eq!(&bytes[1..4], b"PNG", "{f}"),
            Some("svg") => assert!(String::from_utf8_lossy(&bytes).contains("<svg"), "{f}"),
            _ => {
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(
                    (v["format"].as_str(), v["version"].as_u64()),
                    (Some("lab-run"), Some(1))
                );
                // What the hosts ran, read on them.
                for host in ["ue1", "ue2"] {
                    let m = &v["metadata"]["hosts"][host];
                    assert!(m["kernel"].as_str().is_some_and(|k| !k.is_empty()), "{m}");
                    assert_eq!(m["sysctls"]["net.mptcp.enabled"], "1", "{m}");
                    assert!(
                        m["endpoints"].as_array().is_some_and(|e| !e.is_empty()),
                        "{m}"
                    );
                    assert!(m["qdiscs"].as_array().is_some(), "{m}");
                }
                assert_eq!(v["metadata"]["lab"]["name"], v["lab"]);
                // The path managers' events: the server saw both joins established.
                let pm = v["test"]["monitor"].as_array().unwrap();
                let count = |host: &str, kind: &str| {
                    pm.iter()
                        .filter(|e| e["host"] == host && e["kind"] == kind)
                        .count()
                };
                assert_eq!(count("ue1", "SF_ESTABLISHED"), 2, "{pm:?}");
                assert_eq!(count("ue2", "ANNOUNCED"), 2, "{pm:?}");
                assert_eq!(count("ue1", "CREATED"), 1, "{pm:?}");
                let subflows = v["analysis"][0]["subflows"].as_array().unwrap();
                assert_eq!(subflows.len(), 3, "{v}");
                assert!(subflows.iter().all(|s| s["up"]["bytes"].as_u64() > Some(0)));
            }
        }
    }
    assert!(
        out.contains(&format!("run: {} (run.json, throughput.svg", run.display())),
        "{out}"
    );
    let cap = decode::read(&std::fs::read(&file).unwrap()).unwrap();
    let names: Vec<String> = cap
        .interfaces
        .iter()
        .map(|i| i.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        // The server (ue1) first, then the client.
        [
            "ue1:enp0s8",
            "ue1:enp0s9",
            "ue1:enp0s10",
            "ue2:enp0s8",
            "ue2:enp0s9",
            "ue2:enp0s10"
        ]
    );
    assert!(
        cap.problems.is_empty() && cap.not_tcp == 0,
        "{:?}",
        cap.problems
    );
    assert!(cap.interfaces.iter().all(|i| i.drops == Some(0)));
    // Every path interface carried the transfer (shaped at 50 Mbit/s each).
    for i in 0..6u32 {
        let n = cap.packets.iter().filter(|p| p.iface == i).count();
        assert!(n > 500, "{}: {n} frames", names[i as usize]);
    }
    assert_eq!(testkit::tshark::compare(&file, &cap), cap.packets.len());
    testkit::tshark::same_connections(&file, &cap);
    let json = {
        let (code, out, err) = lab.lab(&["test", "--seconds", "1", "--capture", "--json"]);
        assert_eq!(code, 0, "{out}{err}");
        out
    };
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    // The goodput's seconds start on the same clock (the built-in receiver's first byte: no
    // uncertainty), within a second of the counters' first samples.
    let goodput = v["report"]["goodput_start_ns"].as_u64().unwrap();
    assert_eq!(v["report"]["goodput_start_error_ns"], 0);
    // Every interface's samples carry where they started on this machine's clock.
    for i in v["report"]["interfaces"].as_array().unwrap() {
        assert!(
            i["start_ns"].as_u64() > Some(1_700_000_000_000_000_000),
            "{i}"
        );
        let start = i["start_ns"].as_u64().unwrap();
        assert!(
            start.abs_diff(goodput) < 1_000_000_000,
            "counters start at {start}, goodput at {goodput}"
        );
        assert!(
            i.get("clock").is_none(),
            "namespaces share this machine's clock: {i}"
        );
    }
    let paths = v["capture"]["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 6);
    assert!(
        paths
            .iter()
            .all(|p| p["agree"] == true && p["mptcp_payload"].as_u64() > Some(0)),
        "{paths:?}"
    );
    let default_file = std::path::PathBuf::from(v["capture"]["file"].as_str().unwrap());
    assert!(
        default_file.starts_with(lab.path().join(".lab/runs")) && default_file.is_file(),
        "{default_file:?}"
    );

    // Without --capture, a test still writes its run: run.json, the path managers' events
    // and the counters' chart.
    let plain = lab.path().join("plain");
    let (code, out, err) = lab.lab(&["test", "--seconds", "1", "--out", plain.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "run: {} (run.json, events.svg, events.png, interfaces.svg, interfaces.png)",
            plain.display()
        )),
        "{out}"
    );
    assert!(!plain.join("capture.pcapng").exists());

    // `lab capture` on one interface while a test runs.
    let alone = lab.path().join("alone.pcapng");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lab"))
        .current_dir(lab.path())
        .args([
            "capture",
            "ue1:enp0s9",
            "--seconds",
            "3",
            "--out",
            alone.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (code, out, err) = lab.lab(&["test", "--seconds", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    let first_run = run_of(&out);
    let done = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(text.contains("ue1:enp0s9"), "{text}");
    let one = decode::read(&std::fs::read(&alone).unwrap()).unwrap();
    assert_eq!(one.interfaces.len(), 1);
    // A second test of the lab in the same second keeps its own run directory: the names of
    // the next seconds are taken beforehand, so this one must add `-2`.
    let name = first_run
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let lab_name = &name[..name.len() - "-20261201T041900Z".len()];
    let runs = first_run.parent().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for t in now..now + 30 {
        std::fs::create_dir_all(runs.join(lab::capture::run_name(lab_name, t))).unwrap();
    }
    let (code, out, err) = lab.lab(&["test", "--seconds", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    let second = run_of(&out);
    assert!(
        second.to_string_lossy().ends_with("Z-2") && second.join("run.json").is_file(),
        "{second:?}"
    );
    assert!(one.packets.len() > 100, "{}", one.packets.len());

    let (code, _, err) = lab.lab(&["capture", "ue1:eth9", "--seconds", "1"]);
    assert_ne!(code, 0);
    assert!(
        common::flat(&err).contains("no interface `eth9`") && err.contains("enp0s8"),
        "{err}"
    );
}

/// `lab bench capture` runs end to end and prints its ratio against tshark and the shaped
/// capture's drops (the figures themselves are the bench's to judge, not a timed test's).
#[test]
#[cfg_attr(
    not(all(lab_netns, lab_has_tshark)),
    ignore = "needs root, the kernel's MPTCP and tshark"
)]
fn bench_capture_prints_its_ratio() {
    if !ready_with_tshark("lab bench capture") {
        return;
    }
    let _turn = traffic();
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = common::run_in(
        dir.path(),
        &[
            "bench",
            "capture",
            "--seconds",
            "1",
            "--runs",
            "1",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["frames"].as_u64() > Some(1000), "{v}");
    assert!(v["ratio"].as_f64() > Some(0.0), "{v}");
    assert_eq!(v["target"].as_f64(), Some(20.0));
    assert_eq!(v["shaped_dropped"].as_u64(), Some(0), "{v}");
    assert!(v["shaped_frames"].as_u64() > Some(100), "{v}");
}

/// `lab demo --capture --out DIR` leaves the run (a pcapng tshark reads, run.json, the charts
/// as SVG and PNG), and `lab report` writes it as Markdown and, with the guide's settings
/// side by side, as one self-contained HTML file where the guide's idle paths show.
#[test]
#[cfg_attr(
    not(all(lab_netns, lab_has_tshark)),
    ignore = "needs root, the kernel's MPTCP and tshark"
)]
fn demo_capture_and_report() {
    if !ready_with_tshark("lab demo --capture and lab report") {
        return;
    }
    let _turn = traffic();
    let dir = tempfile::tempdir().unwrap();
    let (builtin, guide) = (dir.path().join("builtin"), dir.path().join("guide"));
    let (code, out, err) = common::run_in(
        dir.path(),
        &[
            "demo",
            "--seconds",
            "3",
            "--capture",
            "--out",
            builtin.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = common::run_in(
        dir.path(),
        &[
            "demo",
            "--preset",
            "guide",
            "--seconds",
            "3",
            "--capture",
            "--out",
            guide.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "the guide's settings fail the verdict: {out}{err}");
    for d in [&builtin, &guide] {
        for f in [
            "capture.pcapng",
            "run.json",
            "throughput.svg",
            "throughput.png",
            "interfaces.png",
        ] {
            assert!(d.join(f).is_file(), "{}: {f}", d.display());
        }
        let t = std::process::Command::new("tshark")
            .args(["-n", "-r"])
            .arg(d.join("capture.pcapng"))
            .args(["-T", "fields", "-e", "frame.number"])
            .output()
            .unwrap();
        assert!(
            t.status.success() && t.stdout.len() > 1000,
            "tshark reads {}",
            d.display()
        );
    }

    // One run: report.md in its directory, charts linked.
    let (code, out, err) = common::run_in(dir.path(), &["report", builtin.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let md = std::fs::read_to_string(builtin.join("report.md")).unwrap();
    assert!(
        md.contains("## Run 1: lab `demo-") && md.contains(", PASS"),
        "{md}"
    );
    assert!(
        md.contains("![throughput per subflow, stacked](throughput.png)"),
        "{md}"
    );
    assert!(
        md.contains("### Subflows (capture)") && md.contains("MP_JOIN SYN"),
        "{md}"
    );
    // Every series' start on one clock, and the remaining alignment error (namespaces share
    // this machine's clock: none).
    assert!(
        md.contains("### One clock")
            && md.contains("| goodput | ")
            && md.contains("Remaining alignment error between these series: 0.000 ms."),
        "{md}"
    );

    // Both side by side, as one HTML file with every chart inline.
    let html = dir.path().join("both.html");
    let (code, out, err) = common::run_in(
        dir.path(),
        &[
            "report",
            builtin.to_str().unwrap(),
            guide.to_str().unwrap(),
            "--format",
            "html",
            "--out",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.starts_with("<!DOCTYPE html>")
            && !page.contains("http://")
            && !page.contains("https://")
    );
    assert!(
        page.matches("data:image/png;base64,").count() >= 7,
        "the comparison and 3 per run"
    );
    assert!(page.contains("<h2>Runs side by side</h2>"), "{page}");
    // The guide's server uses only some of its paths: an interface with 0% in the table.
    let side = page
        .split("<h2>Runs side by side</h2>")
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    let guide_row = side.lines().find(|l| l.contains("demo-guide-")).unwrap();
    assert!(
        guide_row.contains("FAIL") && guide_row.contains(" 0%"),
        "{guide_row}"
    );
    // Markdown of both: the comparison chart beside it.
    let (code, out, err) = common::run_in(
        dir.path(),
        &["report", builtin.to_str().unwrap(), guide.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(dir.path().join("report.md").is_file() && dir.path().join("comparison.png").is_file());
}

/// The run directory `lab test` printed (`run: DIR (files)`).
fn run_of(out: &str) -> std::path::PathBuf {
    let line = out
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("run: "))
        .unwrap_or_else(|| panic!("no run directory in {out}"));
    std::path::PathBuf::from(line.split(" (").next().unwrap())
}
