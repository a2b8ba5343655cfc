//! A stand-in VBoxManage for tests, run as a program named `VBoxManage` put first on PATH.
//!
//! It keeps its VMs in a JSON file in `$LAB_FAKE_VBOX_DIR`, checks every invocation against
//! the grammar of the VirtualBox manual (and VBoxManage's own option tables: 6.1 knows only
//! `--nicpromisc2`, 7.x also `--nic-promisc2`), answers in the recorded formats of
//! fixtures/vbox, and fails the way VirtualBox fails: unknown VMs, a running VM's session
//! lock, syntax errors. Tests inject faults (a lock error N times, a missing kernel driver)
//! and change the world behind lab's back through [`World`].
//!
//! A started VM with a NAT rule named `ssh` gets an OpenSSH server on that rule's loopback
//! port when `$LAB_FAKE_VBOX_AUTHORIZED_KEYS` names a key file, so that lab's wait for SSH
//! is real. That server is not a VM: it answers only `true`, `uname -r` and `hostname`, and
//! refuses everything else, so nothing can configure the machine running the tests.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::args::Forward;
use crate::version::Version;

/// The directory holding the fake's state.
pub const DIR_ENV: &str = "LAB_FAKE_VBOX_DIR";
/// A file of public keys the fake's per-VM sshd accepts (for user root).
pub const KEYS_ENV: &str = "LAB_FAKE_VBOX_AUTHORIZED_KEYS";

/// A fault to inject into the next matching calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// The subcommand it hits (`startvm`, `modifyvm`, ...).
    pub subcommand: String,
    pub kind: FaultKind,
    /// How many calls it hits.
    pub times: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Another session holds the VM (VBOX_E_INVALID_OBJECT_STATE).
    Locked,
    /// The vboxdrv module is not loaded: a VM cannot start.
    Driver,
    /// E_ACCESSDENIED.
    AccessDenied,
    /// ACPI shutdown requests are ignored (a guest without acpid).
    IgnoreAcpi,
}

/// A network adapter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeNic {
    pub kind: String,
    pub intnet: Option<String>,
    pub mac: String,
    pub promisc: String,
    pub cable: bool,
    pub nic_type: String,
    pub forwards: Vec<String>,
}

/// A registered VM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeVm {
    pub name: String,
    pub uuid: String,
    pub groups: Vec<String>,
    pub ostype: String,
    pub folder: PathBuf,
    pub memory: u32,
    pub cpus: u32,
    pub state: String,
    pub nics: BTreeMap<u8, FakeNic>,
    pub controllers: Vec<String>,
    /// `"SATA-0-0"` -> medium path or `emptydrive`.
    pub media: BTreeMap<String, String>,
    pub snapshots: Vec<String>,
    pub boot: BTreeMap<u8, String>,
    /// The settings file cannot be read.
    pub inaccessible: bool,
    /// The sshd standing in for the guest's, while running.
    pub sshd_pid: Option<u32>,
}

/// Everything the fake knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct World {
    /// What `--version` prints, e.g. `7.0.14r161095`.
    pub version: String,
    pub vms: Vec<FakeVm>,
    pub faults: Vec<Fault>,
    /// Every invocation, in order.
    pub calls: Vec<Vec<String>>,
    pub serial: u32,
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join("world.json")
}

impl World {
    /// A world with no VMs, for VirtualBox `version`.
    pub fn create(dir: &Path, version: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        World {
            version: version.to_string(),
            ..World::default()
        }
        .save(dir)
    }

    pub fn load(dir: &Path) -> std::io::Result<World> {
        let text = std::fs::read(state_file(dir))?;
        serde_json::from_slice(&text).map_err(std::io::Error::other)
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join("world.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, state_file(dir))
    }

    /// Change the world under the fake's lock (for tests acting behind lab's back).
    pub fn update<T>(dir: &Path, f: impl FnOnce(&mut World) -> T) -> std::io::Result<T> {
        let lock = File::create(dir.join("lock"))?;
        lock.lock()?;
        let mut w = World::load(dir)?;
        let out = f(&mut w);
        w.save(dir)?;
        Ok(out)
    }

    pub fn vm(&self, id: &str) -> Option<&FakeVm> {
        self.vms.iter().find(|v| v.name == id || v.uuid == id)
    }

    fn vm_index(&self, id: &str) -> Option<usize> {
        self.vms.iter().position(|v| v.name == id || v.uuid == id)
    }

    fn version(&self) -> Version {
        Version::parse(&self.version).unwrap_or(Version {
            major: 7,
            minor: 0,
            patch: 14,
            revision: None,
            vendor: None,
        })
    }
}

/// What one invocation printed, and its exit code.
#[derive(Debug, Default)]
pub struct Reply {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    fn ok(stdout: impl Into<String>) -> Reply {
        Reply {
            code: 0,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    fn error(lines: &[String]) -> Reply {
        Reply {
            code: 1,
            stdout: String::new(),
            stderr: lines
                .iter()
                .map(|l| format!("VBoxManage: error: {l}\n"))
                .collect(),
        }
    }

    fn syntax(message: String) -> Reply {
        Reply {
            code: 2,
            stdout: String::new(),
            stderr: format!("VBoxManage: error: {message}\n"),
        }
    }
}

fn not_found(name: &str, file: &str) -> Reply {
    Reply::error(&[
        format!("Could not find a registered machine named '{name}'"),
        "Details: code VBOX_E_OBJECT_NOT_FOUND (0x80bb0001), component VirtualBoxWrap, interface IVirtualBox, callee nsISupports".into(),
        format!("Context: \"FindMachine(Bstr(a->argv[0]).raw(), machine.asOutParam())\" at line 2795 of file {file}"),
    ])
}

fn locked(name: &str, file: &str) -> Reply {
    Reply::error(&[
        format!("The machine '{name}' is already locked for a session (or being unlocked)"),
        "Details: code VBOX_E_INVALID_OBJECT_STATE (0x80bb0007), component MachineWrap, interface IMachine, callee nsISupports".into(),
        format!("Context: \"LockMachine(a->session, LockType_Write)\" at line 640 of file {file}"),
    ])
}

fn access_denied(name: &str) -> Reply {
    Reply::error(&[
        format!("Could not lock the settings file of '{name}' (VERR_ACCESS_DENIED)"),
        "Details: code E_ACCESSDENIED (0x80070005), component MachineWrap, interface IMachine, callee nsISupports".into(),
    ])
}

fn driver(name: &str) -> Reply {
    Reply {
        code: 1,
        stdout: "WARNING: The vboxdrv kernel module is not loaded. Either there is no module\n         available for the current kernel (6.1.0-18-amd64) or it failed to\n         load. Please recompile the kernel module and install it by\n\n           sudo /sbin/vboxconfig\n\n         You will not be able to start VMs until this problem is fixed.\n".into(),
        stderr: format!(
            "VBoxManage: error: The virtual machine '{name}' has terminated unexpectedly during startup with exit code 1 (0x1)\nVBoxManage: error: Details: code NS_ERROR_FAILURE (0x80004005), component MachineWrap, interface IMachine\n"
        ),
    }
}

/// Options of a subcommand: `(spelling, takes a value)`. Indexed options (`--nic<N>`) are
/// listed without the index.
struct Grammar {
    options: Vec<(&'static str, bool)>,
    indexed: Vec<(&'static str, bool)>,
}

impl Grammar {
    /// Split `args` into `(option, index, value)` and positionals; unknown options fail as
    /// VBoxManage's RTGetOpt does.
    #[allow(clippy::type_complexity)]
    fn parse(
        &self,
        args: &[String],
    ) -> Result<(Vec<(String, Option<u8>, Option<String>)>, Vec<String>), Reply> {
        let mut opts = Vec::new();
        let mut pos = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            i += 1;
            if !a.starts_with("--") {
                pos.push(a.clone());
                continue;
            }
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (a.as_str(), None),
            };
            let plain = self.options.iter().find(|(o, _)| *o == name);
            let indexed = self.indexed.iter().find_map(|(o, v)| {
                let n = name.strip_prefix(o)?;
                let idx: u8 = n.parse().ok().filter(|i| (1..=8).contains(i))?;
                Some((*o, *v, idx))
            });
            let (key, takes, idx) = match (plain, indexed) {
                (Some((o, v)), _) => (*o, *v, None),
                (None, Some((o, v, idx))) => (o, v, Some(idx)),
                (None, None) => return Err(Reply::syntax(format!("Unknown option: {name}"))),
            };
            let value = if takes {
                match inline {
                    Some(v) => Some(v),
                    None => {
                        let v = args.get(i).cloned().ok_or_else(|| {
                            Reply::syntax(format!("Option {name} requires a value"))
                        })?;
                        i += 1;
                        Some(v)
                    }
                }
            } else {
                None
            };
            // `--natpfN delete NAME` takes two words.
            let value = match (key, value) {
                ("--natpf" | "--nat-pf", Some(v)) if v == "delete" => {
                    let rule = args
                        .get(i)
                        .cloned()
                        .ok_or_else(|| Reply::syntax(format!("{name} delete needs a rule name")))?;
                    i += 1;
                    Some(format!("delete {rule}"))
                }
                (_, v) => v,
            };
            opts.push((key.to_string(), idx, value));
        }
        Ok((opts, pos))
    }
}

fn g(options: &[(&'static str, bool)], indexed: &[(&'static str, bool)]) -> Grammar {
    Grammar {
        options: options.to_vec(),
        indexed: indexed.to_vec(),
    }
}

/// modifyvm's options lab may use, as VBoxManageModifyVM.cpp spells them: 6.1 knows the old
/// forms; 7.x adds the hyphenated ones and keeps the old ones.
fn modifyvm_grammar(v: &Version) -> Grammar {
    let mut indexed = vec![
        ("--nic", true),
        ("--nictype", true),
        ("--nicpromisc", true),
        ("--cableconnected", true),
        ("--intnet", true),
        ("--natpf", true),
        ("--macaddress", true),
        ("--boot", true),
    ];
    let mut options = vec![
        ("--memory", true),
        ("--cpus", true),
        ("--ioapic", true),
        ("--acpi", true),
        ("--ostype", true),
        ("--groups", true),
        ("--name", true),
    ];
    if v.major >= 7 {
        indexed.extend([
            ("--nic-type", true),
            ("--nic-promisc", true),
            ("--cable-connected", true),
            ("--nat-pf", true),
            ("--mac-address", true),
        ]);
        options.push(("--os-type", true));
    }
    // Longest first, so `--nic-type2` is not read as `--nic` + `-type2`.
    indexed.sort_by_key(|(o, _)| std::cmp::Reverse(o.len()));
    g(&options, &indexed)
}

fn onoff(v: &str) -> Result<bool, Reply> {
    match v {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(Reply::syntax(format!("Invalid on/off value '{v}'"))),
    }
}

fn uuid(serial: u32) -> String {
    format!("6c0ff1ce-0000-4000-8000-{serial:012x}")
}

/// Run one invocation against the world in `dir` (locked for the duration).
pub fn run(dir: &Path, args: &[String]) -> Reply {
    let lock = match File::create(dir.join("lock")) {
        Ok(f) => f,
        Err(e) => return Reply::syntax(format!("fake VBoxManage: {}: {e}", dir.display())),
    };
    if let Err(e) = lock.lock() {
        return Reply::syntax(format!("fake VBoxManage: lock: {e}"));
    }
    let mut w = match World::load(dir) {
        Ok(w) => w,
        Err(e) => {
            return Reply::syntax(format!(
                "fake VBoxManage: no world in {}: {e}",
                dir.display()
            ));
        }
    };
    w.calls.push(args.to_vec());
    let reply = dispatch(&mut w, dir, args);
    if let Err(e) = w.save(dir) {
        return Reply::syntax(format!("fake VBoxManage: saving: {e}"));
    }
    reply
}

/// The program's entry: `$LAB_FAKE_VBOX_DIR`, argv, printed replies, exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        eprintln!("fake VBoxManage: {DIR_ENV} is not set");
        return 2;
    };
    let r = run(Path::new(&dir), &args);
    print!("{}", r.stdout);
    eprint!("{}", r.stderr);
    let _ = std::io::stdout().flush();
    r.code
}

fn take_fault(w: &mut World, sub: &str) -> Option<FaultKind> {
    let f = w
        .faults
        .iter_mut()
        .find(|f| f.subcommand == sub && f.times > 0)?;
    f.times -= 1;
    Some(f.kind)
}

fn dispatch(w: &mut World, dir: &Path, args: &[String]) -> Reply {
    let Some((sub, rest)) = args.split_first() else {
        return Reply::syntax("No command given".into());
    };
    let vm_name = rest
        .iter()
        .find(|a| !a.starts_with('-'))
        .cloned()
        .unwrap_or_default();
    match take_fault(w, sub) {
        Some(FaultKind::Locked) => return locked(&vm_name, "VBoxManageMisc.cpp"),
        Some(FaultKind::AccessDenied) => return access_denied(&vm_name),
        Some(FaultKind::Driver) if sub == "startvm" => return driver(&vm_name),
        Some(FaultKind::IgnoreAcpi)
            if sub == "controlvm" && rest.get(1).is_some_and(|a| a == "acpipowerbutton") =>
        {
            return if w.vm(&vm_name).is_some() {
                Reply::ok("")
            } else {
                not_found(&vm_name, "VBoxManageControlVM.cpp")
            };
        }
        _ => {}
    }
    let r = match sub.as_str() {
        "--version" | "-v" | "-V" => Ok(Reply::ok(format!("{}\n", w.version))),
        "list" => list(w, rest),
        "showvminfo" => showvminfo(w, rest),
        "createvm" => createvm(w, rest),
        "modifyvm" => modifyvm(w, rest),
        "createmedium" | "createhd" => createmedium(rest),
        "storagectl" => storagectl(w, rest),
        "storageattach" => storageattach(w, rest),
        "clonevm" => clonevm(w, rest),
        "import" => import(w, rest),
        "unattended" => unattended(w, dir, rest),
        "startvm" => startvm(w, dir, rest),
        "controlvm" => controlvm(w, rest),
        "snapshot" => snapshot(w, dir, rest),
        "unregistervm" => unregistervm(w, rest),
        "guestproperty" => guestproperty(w, rest),
        other => Err(Reply::syntax(format!("Invalid command '{other}'"))),
    };
    r.unwrap_or_else(|e| e)
}

fn find<'w>(w: &'w mut World, id: &str, file: &str) -> Result<&'w mut FakeVm, Reply> {
    match w.vm_index(id) {
        Some(i) => Ok(&mut w.vms[i]),
        None => Err(not_found(id, file)),
    }
}

fn one_positional(pos: &[String], what: &str) -> Result<String, Reply> {
    match pos {
        [one] => Ok(one.clone()),
        [] => Err(Reply::syntax(format!("Missing {what}"))),
        more => Err(Reply::syntax(format!("Invalid parameter '{}'", more[1]))),
    }
}

fn list(w: &mut World, rest: &[String]) -> Result<Reply, Reply> {
    let (_, pos) = g(&[("--long", false), ("--sorted", false)], &[]).parse(rest)?;
    let what = one_positional(&pos, "list type")?;
    let line = |v: &FakeVm| {
        if v.inaccessible {
            format!("\"<inaccessible>\" {{{}}}\n", v.uuid)
        } else {
            format!("\"{}\" {{{}}}\n", v.name, v.uuid)
        }
    };
    match what.as_str() {
        "vms" => Ok(Reply::ok(w.vms.iter().map(line).collect::<String>())),
        "runningvms" => Ok(Reply::ok(
            w.vms
                .iter()
                .filter(|v| v.state == "running")
                .map(line)
                .collect::<String>(),
        )),
        other => Err(Reply::syntax(format!("Invalid parameter '{other}'"))),
    }
}

fn showvminfo(w: &mut World, rest: &[String]) -> Result<Reply, Reply> {
    let (opts, pos) = g(&[("--machinereadable", false), ("--details", false)], &[]).parse(rest)?;
    let id = one_positional(&pos, "VM name")?;
    if !opts.iter().any(|(o, _, _)| o == "--machinereadable") {
        return Err(Reply::syntax(
            "the fake answers only --machinereadable".into(),
        ));
    }
    let version = w.version();
    let vm = find(w, &id, "VBoxManageInfo.cpp")?;
    Ok(Reply::ok(render_showvminfo(vm, &version)))
}

/// `showvminfo --machinereadable` in the recorded format (fixtures/vbox).
pub fn render_showvminfo(vm: &FakeVm, v: &Version) -> String {
    if vm.inaccessible {
        return format!("name=\"<inaccessible>\"\nUUID=\"{}\"\n", vm.uuid);
    }
    let mut o = String::new();
    let cfg = vm.folder.join(format!("{}.vbox", vm.name));
    o.push_str(&format!("name=\"{}\"\n", vm.name));
    if v.major == 7 && v.minor == 0 && v.patch == 0 {
        o.push_str("Encryption:     disabled\n");
    }
    o.push_str(&format!("groups=\"{}\"\n", vm.groups.join(",")));
    o.push_str(&format!("ostype=\"{}\"\n", os_description(&vm.ostype)));
    o.push_str(&format!("UUID=\"{}\"\n", vm.uuid));
    o.push_str(&format!("CfgFile=\"{}\"\n", cfg.display()));
    o.push_str(&format!(
        "SnapFldr=\"{}\"\n",
        vm.folder.join("Snapshots").display()
    ));
    o.push_str(&format!(
        "LogFldr=\"{}\"\n",
        vm.folder.join("Logs").display()
    ));
    o.push_str(&format!("hardwareuuid=\"{}\"\n", vm.uuid));
    o.push_str(&format!("memory={}\n", vm.memory));
    o.push_str("pagefusion=\"off\"\nvram=16\ncpuexecutioncap=100\nhpet=\"off\"\n");
    o.push_str("chipset=\"piix3\"\nfirmware=\"BIOS\"\n");
    o.push_str(&format!("cpus={}\n", vm.cpus));
    o.push_str("pae=\"on\"\nlongmode=\"on\"\n");
    for i in 1..=4u8 {
        o.push_str(&format!(
            "boot{i}=\"{}\"\n",
            vm.boot.get(&i).map_or("none", String::as_str)
        ));
    }
    o.push_str("acpi=\"on\"\nioapic=\"on\"\n");
    o.push_str(&format!("VMState=\"{}\"\n", vm.state));
    o.push_str("VMStateChangeTime=\"2026-11-24T10:00:00.000000000\"\n");
    if vm.state == "saved" {
        o.push_str(&format!(
            "VMStateFile=\"{}\"\n",
            vm.folder
                .join("Snapshots/2026-11-24T10-00-00-000000000Z.sav")
                .display()
        ));
    }
    for (i, c) in vm.controllers.iter().enumerate() {
        o.push_str(&format!(
            "storagecontrollername{i}=\"{c}\"\nstoragecontrollertype{i}=\"IntelAhci\"\nstoragecontrollerinstance{i}=\"0\"\nstoragecontrollermaxportcount{i}=\"30\"\nstoragecontrollerportcount{i}=\"2\"\nstoragecontrollerbootable{i}=\"on\"\n"
        ));
    }
    for (slot, medium) in &vm.media {
        o.push_str(&format!("\"{slot}\"=\"{medium}\"\n"));
        if medium != "emptydrive" {
            let (ctl, rest) = slot.split_once('-').unwrap_or((slot, ""));
            o.push_str(&format!(
                "\"{ctl}-ImageUUID-{rest}\"=\"{}\"\n",
                uuid(medium.len() as u32)
            ));
        }
    }
    for slot in 1..=8u8 {
        let Some(n) = vm.nics.get(&slot).filter(|n| n.kind != "none") else {
            o.push_str(&format!("nic{slot}=\"none\"\n"));
            continue;
        };
        match n.kind.as_str() {
            "nat" => o.push_str(&format!("natnet{slot}=\"nat\"\n")),
            "intnet" => o.push_str(&format!(
                "intnet{slot}=\"{}\"\n",
                n.intnet.clone().unwrap_or_default()
            )),
            _ => {}
        }
        o.push_str(&format!(
            "macaddress{slot}=\"{}\"\ncableconnected{slot}=\"{}\"\nnic{slot}=\"{}\"\nnictype{slot}=\"{}\"\nnicspeed{slot}=\"0\"\n",
            n.mac,
            if n.cable { "on" } else { "off" },
            n.kind,
            n.nic_type
        ));
        if n.kind == "nat" {
            o.push_str(
                "mtu=\"0\"\nsockSnd=\"64\"\nsockRcv=\"64\"\ntcpWndSnd=\"64\"\ntcpWndRcv=\"64\"\n",
            );
            if v.quirks().forwards_in_showvminfo {
                for (i, f) in n.forwards.iter().enumerate() {
                    o.push_str(&format!("Forwarding({i})=\"{f}\"\n"));
                }
            }
        }
    }
    o.push_str("hidpointing=\"ps2mouse\"\nhidkeyboard=\"ps2kbd\"\nuart1=\"off\"\nuart2=\"off\"\n");
    if let Some(s) = vm.snapshots.last() {
        o.push_str(&format!(
            "SnapshotName=\"{}\"\nCurrentSnapshotName=\"{s}\"\n",
            vm.snapshots[0]
        ));
    }
    o
}

fn os_description(id: &str) -> &str {
    match id {
        "Ubuntu_64" => "Ubuntu (64-bit)",
        "Debian_64" => "Debian (64-bit)",
        other => other,
    }
}

const OSTYPES: &[&str] = &[
    "Other",
    "Ubuntu_64",
    "Debian_64",
    "Linux_64",
    "Ubuntu22_LTS_64",
];

fn createvm(w: &mut World, rest: &[String]) -> Result<Reply, Reply> {
    let mut opts = vec![
        ("--name", true),
        ("--groups", true),
        ("--ostype", true),
        ("--register", false),
        ("--basefolder", true),
        ("--uuid", true),
        ("--default", false),
    ];
    let v = w.version();
    if v.major >= 7 && v.minor >= 1 {
        opts.push(("--platform-architecture", true));
    }
    let (opts, pos) = g(&opts, &[]).parse(rest)?;
    if let Some(p) = pos.first() {
        return Err(Reply::syntax(format!("Invalid parameter '{p}'")));
    }
    let get = |k: &str| {
        opts.iter()
            .find(|(o, _, _)| o == k)
            .and_then(|(_, _, v)| v.clone())
    };
    let name = get("--name").ok_or_else(|| Reply::syntax("Parameter --name is required".into()))?;
    if !opts.iter().any(|(o, _, _)| o == "--register") {
        return Err(Reply::syntax(
            "the fake registers every VM: pass --register".into(),
        ));
    }
    let ostype = get("--ostype").unwrap_or_else(|| "Other".into());
    if !OSTYPES.contains(&ostype.as_str()) {
        return Err(Reply::error(&[format!(
            "Guest OS type '{ostype}' is invalid"
        )]));
    }
    let groups: Vec<String> = get("--groups")
        .map(|g| g.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| vec!["/".into()]);
    if let Some(bad) = groups.iter().find(|g| !g.starts_with('/')) {
        return Err(Reply::error(&[format!("Invalid machine group '{bad}'")]));
    }
    let base = get("--basefolder")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root/VirtualBox VMs"));
    let folder = base.join(&name);
    if w.vm(&name).is_some() || folder.join(format!("{name}.vbox")).exists() {
        return Err(Reply::error(&[
            format!(
                "Machine settings file '{}' already exists",
                folder.join(format!("{name}.vbox")).display()
            ),
            "Details: code VBOX_E_FILE_ERROR (0x80bb0004), component MachineWrap, interface IMachine, callee nsISupports".into(),
        ]));
    }
    if let Err(e) = std::fs::create_dir_all(&folder)
        .and_then(|()| std::fs::write(folder.join(format!("{name}.vbox")), "<VirtualBox/>\n"))
    {
        return Err(Reply::error(&[format!(
            "Could not create the machine folder '{}' ({e})",
            folder.display()
        )]));
    }
    w.serial += 1;
    let id = uuid(w.serial);
    let mut nics = BTreeMap::new();
    nics.insert(
        1,
        FakeNic {
            kind: "nat".into(),
            mac: format!("080027{:06X}", w.serial),
            promisc: "deny".into(),
            cable: true,
            nic_type: "82540EM".into(),
            ..FakeNic::default()
        },
    );
    w.vms.push(FakeVm {
        name: name.clone(),
        uuid: id.clone(),
        groups,
        ostype,
        folder: folder.clone(),
        memory: 128,
        cpus: 1,
        state: "poweroff".into(),
        nics,
        boot: [(1, "floppy"), (2, "dvd"), (3, "disk"), (4, "none")]
            .into_iter()
            .map(|(i, d)| (i, d.to_string()))
            .collect(),
        ..FakeVm::default()
    });
    Ok(Reply::ok(format!(
        "Virtual machine '{name}' is created and registered.\nUUID: {id}\nSettings file: '{}'\n",
        folder.join(format!("{name}.vbox")).display()
    )))
}

fn canonical(opt: &str) -> &str {
    match opt {
        "--nic-type" => "--nictype",
        "--nic-promisc" => "--nicpromisc",
        "--cable-connected" => "--cableconnected",
        "--nat-pf" => "--natpf",
        "--mac-address" => "--macaddress",
        "--os-type" => "--ostype",
        o => o,
    }
}

fn modifyvm(w: &mut World, rest: &[String]) -> Result<Reply, Reply> {
    let grammar = modifyvm_grammar(&w.version());
    let (opts, pos) = grammar.parse(rest)?;
    let id = one_positional(&pos, "VM name")?;
    let vm = find(w, &id, "VBoxManageModifyVM.cpp")?;
    if vm.state == "running" || vm.state == "paused" {
        return Err(locked(&vm.name, "VBoxManageModifyVM.cpp"));
    }
    for (opt, idx, value) in opts {
        let value = value.unwrap_or_default();
        let uint = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| Reply::syntax(format!("Invalid number '{v}' for {opt}")))
        };
        match (canonical(&opt), idx) {
            ("--memory", None) => vm.memory = uint(&value)?,
            ("--cpus", None) => {
                let c = uint(&value)?;
                if c == 0 || c > 64 {
                    return Err(Reply::error(&[format!("Invalid number of CPUs: {c}")]));
                }
                vm.cpus = c;
            }
            ("--ioapic" | "--acpi", None) => {
                onoff(&value)?;
            }
            ("--ostype", None) => vm.ostype = value,
            ("--groups", None) => vm.groups = value.split(',').map(str::to_string).collect(),
            ("--name", None) => vm.name = value,
            ("--boot", Some(i)) if i <= 4 => {
                if !["none", "floppy", "dvd", "disk", "net"].contains(&value.as_str()) {
                    return Err(Reply::syntax(format!("Invalid boot device '{value}'")));
                }
                vm.boot.insert(i, value);
            }
            ("--nic", Some(i)) => {
                if ![
                    "none",
                    "null",
                    "nat",
                    "bridged",
                    "intnet",
                    "hostonly",
                    "generic",
                    "natnetwork",
                ]
                .contains(&value.as_str())
                {
                    return Err(Reply::syntax(format!(
                        "Invalid type '{value}' specfied for NIC {i}"
                    )));
                }
                let n = vm.nics.entry(i).or_insert_with(|| FakeNic {
                    mac: format!("080027{:02X}{:04X}", i, vm.uuid.len()),
                    promisc: "deny".into(),
                    cable: true,
                    nic_type: "82540EM".into(),
                    ..FakeNic::default()
                });
                n.kind = value;
            }
            ("--nictype", Some(i)) => {
                if ![
                    "Am79C970A",
                    "Am79C973",
                    "Am79C960",
                    "82540EM",
                    "82543GC",
                    "82545EM",
                    "virtio",
                ]
                .contains(&value.as_str())
                {
                    return Err(Reply::syntax(format!(
                        "Invalid NIC type '{value}' specified for NIC {i}"
                    )));
                }
                nic(vm, i)?.nic_type = value;
            }
            ("--nicpromisc", Some(i)) => {
                if !["deny", "allow-vms", "allow-all"].contains(&value.as_str()) {
                    return Err(Reply::syntax(format!(
                        "Unknown promiscuous mode policy '{value}'"
                    )));
                }
                nic(vm, i)?.promisc = value;
            }
            ("--cableconnected", Some(i)) => nic(vm, i)?.cable = onoff(&value)?,
            ("--intnet", Some(i)) => {
                if value.is_empty() {
                    return Err(Reply::syntax("Empty internal network name".into()));
                }
                nic(vm, i)?.intnet = Some(value);
            }
            ("--macaddress", Some(i)) => {
                if !(value == "auto"
                    || (value.len() == 12 && value.chars().all(|c| c.is_ascii_hexdigit())))
                {
                    return Err(Reply::error(&[format!(
                        "Invalid MAC address format '{value}'"
                    )]));
                }
                nic(vm, i)?.mac = value.to_ascii_uppercase();
            }
            ("--natpf", Some(i)) => {
                let n = nic(vm, i)?;
                if n.kind != "nat" {
                    return Err(Reply::error(&[format!("NIC {i} is not attached to NAT")]));
                }
                if let Some(rule) = value.strip_prefix("delete ") {
                    let before = n.forwards.len();
                    n.forwards.retain(|r| r.split(',').next() != Some(rule));
                    if n.forwards.len() == before {
                        return Err(Reply::error(&[format!("Unknown NAT rule '{rule}'")]));
                    }
                    continue;
                }
                let f = Forward::parse(&value)
                    .ok_or_else(|| Reply::error(&[format!("Invalid NAT rule '{value}'")]))?;
                if n.forwards
                    .iter()
                    .any(|r| r.split(',').next() == Some(f.name.as_str()))
                {
                    return Err(Reply::error(&[
                        "A NAT rule of this name already exists".into(),
                        "Details: code NS_ERROR_INVALID_ARG (0x80070057), component NATEngineWrap, interface INATEngine, callee nsISupports".into(),
                    ]));
                }
                n.forwards.push(f.to_string());
            }
            (o, _) => return Err(Reply::syntax(format!("Unknown option: {o}"))),
        }
    }
    Ok(Reply::ok(""))
}

fn nic(vm: &mut FakeVm, i: u8) -> Result<&mut FakeNic, Reply> {
    vm.nics
        .get_mut(&i)
        .ok_or_else(|| Reply::error(&[format!("NIC {i} is not configured (set --nic{i} first)")]))
}

fn createmedium(rest: &[String]) -> Result<Reply, Reply> {
    let (opts, pos) = g(
        &[
            ("--filename", true),
            ("--size", true),
            ("--sizebyte", true),
            ("--format", true),
            ("--variant", true),
            ("--diffparent", true),
        ],
        &[],
    )
    .parse(rest)?;
    if pos.as_slice() != ["disk"] {
        return Err(Reply::syntax("the fake creates only `disk` media".into()));
    }
    let get = |k: &str| {
        opts.iter()
            .find(|(o, _, _)| o == k)
            .and_then(|(_, _, v)| v.clone())
    };
    let file = get("--filename")
        .ok_or_else(|| Reply::syntax("Parameters --filename is required".into()))?;
    let size: u64 = get("--size")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Reply::syntax("Parameter --size is required".into()))?;
    if let Some(f) = get("--format")
        && !["VDI", "VMDK", "VHD"].contains(&f.as_str())
    {
        return Err(Reply::error(&[format!("Invalid medium format '{f}'")]));
    }
    if Path::new(&file).exists() {
        return Err(Reply::error(&[format!(
            "Failed to create medium: Could not create the medium storage unit '{file}'. VD: Cannot create image: File exists (VERR_ALREADY_EXISTS)"
        )]));
    }
    // A small file standing in for the image: `unregistervm --delete` must remove it.
    std::fs::write(&file, format!("fake VDI, {size} MiB\n"))
        .map_err(|e| Reply::error(&[format!("Could not create '{file}': {e}")]))?;
    Ok(Reply {
        code: 0,
        stdout: format!("Medium created. UUID: {}\n", uuid(size as u32)),
        stderr: "0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\n".into(),
    })
}

fn storagectl(w: &mut World, rest: &[String]) -> Result<Reply, Reply> {
    let (opts, pos) = g(
        &[
            ("--name", true),
            ("--add", true),
            ("--controller", true),
            ("--portcount", true),
            ("--hostiocache", true),
            ("--bootable", true),
            ("--remove", false),
        ],
        &[],
    )
    .parse(rest)?;
    let id = one_positional(&pos, "VM name")?;
    let get = |k: &str| {
        opts.iter()
            .find(|(o, _, _)| o == k)
            .and_then(|(_, _, v)| v.clone())
    };
    let name = get("--name")
        .ok_or_else(|| Reply::syntax("storage controller name not specified".into()))?;
    if let Some(bus) = get("--add")
        && ![
            "ide", "sata", "scsi", "floppy", "sas", "usb", "pcie", "virtio",
        ]
        .contains(&bus.as_str())
    {
        return Err(Reply::syntax(format!("Invalid --add argument '{bus}'")));
    }
    if let Some(b) = get("--bootable") {
        onoff(&b)?;
    }
    let vm = find(w, &id, "VBoxManageStorageController.cpp")?;
    if vm.state == "running" {
        return Err(locked(&vm.name, "VBoxManageStorageController.cpp"));
    }
    if vm.controllers.contains(&name) {
        return Err(Reply::error(&[format!(
            "Storage controller named '{name}' already exists"
        )]));
    }
    vm.controllers.push(name);
    Ok(Reply::ok(""))
}

fn storageattach(w: &mut World, rest: &[String]) -> Result<Reply, Reply> {
    let (opts, pos) = g(
        &[
            ("--storagectl", true),
            ("--port", true),
            ("--device", true),
            ("--type", true),
            ("--medium", true),
        ],
        &[],
    )
    .parse(rest)?;
    let id = one_positional(&pos, "VM name")?;
    let get = |k: &str| {
        opts.iter()
            .find(|(o, _, _)| o == k)
            .and_then(|(_, _, v)| v.clone())
    };
    let ctl = get("--storagectl")
        .ok_or_else(|| Reply::syntax("Storage controller name not specified".into()))?;
    let port = get("--port").unwrap_or_else(|| "0".into());
    let device = get("--device").unwrap_or_else(|| "0".into());
    let ty = get("--type").unwrap_or_default();
    if !["dvddrive", "hdd", "fdd"].contains(&ty.as_str()) {
        return Err(Reply::syntax(format!("Invalid --type argument '{ty}'")));
    }
    let medium = get("--medium").ok_or_else(|| Reply::syntax("--medium is required".into()))?;
    let vm = find(w, &id, "VBoxManageStorageController.cpp")?;
    if !vm.controllers.contains(&ctl) {
        return Err(Reply::error(&[format!(
            "Could not find a controller named '{ctl}'"
        )]));
    }
    if medium != "emptydrive" && medium != "none" && !Path::new(&medium).exists() {
        return Err(Reply::error(&[format!(
            "Could not find file for the medium '{medium}' (VERR_FILE_NOT_FOUND)"
        )]));
    }
    vm.media.insert(format!("{ctl}-{port}-{device}"), medium);
    Ok(Reply::ok(""))
}

fn clonevm(w: &mut World, rest: &[String]) -> Result<Reply, Reply> {
    let (opts, pos) = g(
        &[
            ("--snapshot", true),
            ("--mode", true),
            ("--options", true),
            ("--name", true),
            ("--groups", true),
            ("--basefolder", true),
            ("--uuid", true),
            ("--register", false),
        ],
        &[],
    )
    .parse(rest)?;
    let base = one_positional(&pos, "source VM")?;
    let get = |k: &str| {
        opts.iter()
            .find(|(o, _, _)| o == k)
            .and_then(|(_, _, v)| v.clone())
    };
    let src = w
        .vm(&base)
        .cloned()
        .ok_or_else(|| not_found(&base, "VBoxManageMisc.cpp"))?;
    if let Some(s) = get("--snapshot")
        && !src.snapshots.contains(&s)
    {
        return Err(Reply::error(&[format!(
            "Could not find a snapshot named '{s}'"
        )]));
    }
    let name = get("--name").unwrap_or_else(|| format!("{} Clone", src.name));
    let folder = get("--basefolder")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root/VirtualBox VMs"))
        .join(&name);
    if w.vm(&name).is_some() {
        return Err(Reply::error(&[format!("Machine '{name}' already exists")]));
    }
    std::fs::create_dir_all(&folder)
        .map_err(|e| Reply::error(&[format!("{}: {e}", folder.display())]))?;
    let mut media = BTreeMap::new();
    for (slot, m) in &src.media {
        if m == "emptydrive" {
            media.insert(slot.clone(), m.clone());
            continue;
        }
        let disk = folder.join(format!("{name}-disk1.vdi"));
        std::fs::write(&disk, "fake VDI (clone)\n")
            .map_err(|e| Reply::error(&[format!("{}: {e}", disk.display())]))?;
        media.insert(slot.clone(), disk.display().to_string());
    }
    std::fs::write(folder.join(format!("{name}.vbox")), "<VirtualBox/>\n")
        .map_err(|e| Reply::error(&[e.to_string()]))?;
    w.serial += 1;
    let mut vm = src;
    vm.name = name.clone();
    vm.uuid = uuid(w.serial);
    vm.folder = folder;
    vm.media = media;
    vm.snapshots.clear();
    vm.state = "poweroff".into();
    vm.sshd_pid = None;
    vm.groups = get("--groups")
        .map(|g| g.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| vec!["/".into()]);
    w.vms.push(vm);
    Ok(Reply {
        code: 0,
        stdout: format!("Machine has been successfully cloned as \"{name}\"\n"),
        stderr: "0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\n".into(),
    })
}

fn import(w: &mut World, rest: &[String]) -> Result<Reply, Reply> {
    let (opts, pos) = g(
        &[
            ("--vsys", true),
            ("--vmname", true),
            ("--group", true),
            ("--basefolder", true),
            ("--memory", true),
            ("--cpus", true),
            ("--ostype", true),
            ("--options", true),
            ("--dry-run", false),
        ],
        &[],
    )
    .parse(rest)?;
    let file = one_positional(&pos, "appliance")?;
    if !Path::new(&file).is_file() {
        return Err(Reply::error(&[format!(
            "Appliance read failed\nVBoxManage: error: Failed to open OVF file '{file}' (VERR_FILE_NOT_FOUND)"
        )]));
    }
    let get = |k: &str| {
        opts.iter()
            .find(|(o, _, _)| o == k)
            .and_then(|(_, _, v)| v.clone())
    };
    let name = get("--vmname").ok_or_else(|| Reply::syntax("the fake needs --vmname".into()))?;
    let folder = get("--basefolder")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root/VirtualBox VMs"))
        .join(&name);
    std::fs::create_dir_all(&folder).map_err(|e| Reply::error(&[e.to_string()]))?;
    let disk = folder.join(format!("{name}-disk001.vmdk"));
    std::fs::write(&disk, "fake VMDK (imported)\n").map_err(|e| Reply::error(&[e.to_string()]))?;
    w.serial += 1;
    let mut nics = BTreeMap::new();
    nics.insert(
        1,
        FakeNic {
            kind: "nat".into(),
            mac: format!("080027{:06X}", w.serial),
            promisc: "deny".into(),
            cable: true,
            nic_type: "82540EM".into(),
            ..FakeNic::default()
        },
    );
    w.vms.push(FakeVm {
        name: name.clone(),
        uuid: uuid(w.serial),
        groups: vec![get("--group").unwrap_or_else(|| "/".into())],
        ostype: "Ubuntu_64".into(),
        folder,
        memory: get("--memory").and_then(|m| m.parse().ok()).unwrap_or(1024),
        cpus: get("--cpus").and_then(|m| m.parse().ok()).unwrap_or(1),
        state: "poweroff".into(),
        nics,
        controllers: vec!["SATA".into()],
        media: [("SATA-0-0".to_string(), disk.display().to_string())]
            .into_iter()
            .collect(),
        ..FakeVm::default()
    });
    Ok(Reply::ok(format!(
        "0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\nInterpreting {file}...\nOK.\nSuccessfully imported the appliance.\n"
    )))
}

fn unattended(w: &mut World, dir: &Path, rest: &[String]) -> Result<Reply, Reply> {
    let Some((verb, rest)) = rest.split_first() else {
        return Err(Reply::syntax("Missing subcommand for unattended".into()));
    };
    if verb != "install" {
        return Err(Reply::syntax(format!("Invalid parameter '{verb}'")));
    }
    let (opts, pos) = g(
        &[
            ("--iso", true),
            ("--user", true),
            ("--password", true),
            ("--password-file", true),
            ("--full-user-name", true),
            ("--key", true),
            ("--install-additions", false),
            ("--no-install-additions", false),
            ("--additions-iso", true),
            ("--locale", true),
            ("--country", true),
            ("--time-zone", true),
            ("--hostname", true),
            ("--package-selection-adjustment", true),
            ("--dry-run", false),
            ("--auxiliary-base-path", true),
            ("--image-index", true),
            ("--script-template", true),
            ("--post-install-template", true),
            ("--post-install-command", true),
            ("--extra-install-kernel-parameters", true),
            ("--language", true),
            ("--start-vm", true),
        ],
        &[],
    )
    .parse(rest)?;
    let id = one_positional(&pos, "VM name")?;
    let get = |k: &str| {
        opts.iter()
            .find(|(o, _, _)| o == k)
            .and_then(|(_, _, v)| v.clone())
    };
    let iso = get("--iso").ok_or_else(|| Reply::syntax("Missing --iso".into()))?;
    if !Path::new(&iso).is_file() {
        return Err(Reply::error(&[format!(
            "Could not locate the installation ISO file '{iso}'"
        )]));
    }
    if let Some(h) = get("--hostname")
        && !h.contains('.')
    {
        return Err(Reply::error(&[format!(
            "Invalid hostname '{h}': must be a fully qualified domain name"
        )]));
    }
    let vm = find(w, &id, "VBoxManageUnattended.cpp")?;
    vm.media.insert("SATA-1-0".into(), iso);
    match get("--start-vm").as_deref() {
        None => Ok(Reply::ok("")),
        Some("headless") => {
            let name = vm.name.clone();
            startvm(w, dir, &[name, "--type".into(), "headless".into()])
        }
        Some(other) => Err(Reply::syntax(format!("Invalid --start-vm value '{other}'"))),
    }
}

fn startvm(w: &mut World, dir: &Path, rest: &[String]) -> Result<Reply, Reply> {
    let (opts, pos) = g(&[("--type", true), ("--putenv", true)], &[]).parse(rest)?;
    if let Some((_, _, Some(t))) = opts.iter().find(|(o, _, _)| o == "--type")
        && !["gui", "headless", "separate", "sdl"].contains(&t.as_str())
    {
        return Err(Reply::syntax(format!("Invalid session type '{t}'")));
    }
    let id = one_positional(&pos, "VM name")?;
    let vm = find(w, &id, "VBoxManageMisc.cpp")?;
    if vm.inaccessible {
        return Err(Reply::error(&[format!("Machine '{id}' is inaccessible")]));
    }
    if vm.state == "running" || vm.state == "paused" {
        return Err(Reply::error(&[
            format!("The machine '{}' is already locked by a session (or being locked or unlocked)", vm.name),
            "Details: code VBOX_E_INVALID_OBJECT_STATE (0x80bb0007), component MachineWrap, interface IMachine, callee nsISupports".into(),
            "Context: \"LaunchVMProcess(a->session, sessionType.raw(), ComSafeArrayAsInParam(aBstrEnv), progress.asOutParam())\" at line 881 of file VBoxManageMisc.cpp".into(),
        ]));
    }
    if !vm.media.contains_key("SATA-0-0") {
        return Err(Reply::error(&[format!(
            "The fake VM '{}' has no disk: nothing to boot",
            vm.name
        )]));
    }
    vm.state = "running".into();
    let ssh = vm.nics.get(&1).and_then(|n| {
        n.forwards
            .iter()
            .find_map(|f| Forward::parse(f).filter(|f| f.name == "ssh"))
    });
    if let (Some(f), Some(keys)) = (ssh, std::env::var_os(KEYS_ENV)) {
        vm.sshd_pid = start_sshd(dir, &vm.name, f.host_port, Path::new(&keys));
    }
    Ok(Reply::ok(format!(
        "Waiting for VM \"{0}\" to power on...\nVM \"{0}\" has been successfully started.\n",
        vm.name
    )))
}

/// The guest's SSH server stand-in. VirtualBox starts a VM whose forward cannot bind and
/// only logs it; so does this: the VM runs, unreachable.
fn start_sshd(dir: &Path, vm: &str, port: u16, keys: &Path) -> Option<u32> {
    let host_key = dir.join("host_key");
    if !host_key.exists() {
        let ok = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key)
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
    }
    let _ = std::fs::create_dir_all("/run/sshd");
    let pid_file = dir.join(format!("{vm}.sshd.pid"));
    let _ = std::fs::remove_file(&pid_file);
    let gate = dir.join("guest-commands.sh");
    let _ = std::fs::write(
        &gate,
        "#!/bin/sh\n# The fake VM answers these and nothing else.\ncase \"$SSH_ORIGINAL_COMMAND\" in\n  true|'uname -r'|hostname) exec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\" ;;\n  *) echo \"fake VirtualBox guest: refusing: $SSH_ORIGINAL_COMMAND\" >&2; exit 126 ;;\nesac\n",
    );
    let _ = std::process::Command::new("chmod")
        .arg("755")
        .arg(&gate)
        .status();
    let cfg = dir.join(format!("{vm}.sshd_config"));
    let text = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\nAuthorizedKeysFile {keys}\n\
         UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\nSetEnv SHLVL=1\nForceCommand {gate}\n",
        hk = host_key.display(),
        pid = pid_file.display(),
        keys = keys.display(),
        gate = gate.display(),
    );
    std::fs::write(&cfg, text).ok()?;
    // sshd forks into the background and writes its PID file once it listens.
    let _ = std::process::Command::new("/usr/sbin/sshd")
        .arg("-f")
        .arg(&cfg)
        .arg("-E")
        .arg(dir.join(format!("{vm}.sshd.log")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// End the stand-in sshd of a VM that stops (by its PID).
fn stop_sshd(vm: &mut FakeVm) {
    if let Some(pid) = vm.sshd_pid.take() {
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
    }
}

fn controlvm(w: &mut World, rest: &[String]) -> Result<Reply, Reply> {
    let [id, action] = rest else {
        return Err(Reply::syntax("Usage: controlvm <vm> <action>".into()));
    };
    let vm = find(w, id, "VBoxManageControlVM.cpp")?;
    if ![
        "acpipowerbutton",
        "poweroff",
        "savestate",
        "pause",
        "resume",
        "reset",
    ]
    .contains(&action.as_str())
    {
        return Err(Reply::syntax(format!("Invalid parameter '{action}'")));
    }
    if vm.state != "running" && vm.state != "paused" {
        return Err(Reply::error(&[format!(
            "Machine '{}' is not currently running",
            vm.name
        )]));
    }
    match action.as_str() {
        "acpipowerbutton" | "poweroff" => {
            stop_sshd(vm);
            vm.state = "poweroff".into();
        }
        "savestate" => {
            stop_sshd(vm);
            vm.state = "saved".into();
        }
        "pause" => vm.state = "paused".into(),
        _ => vm.state = "running".into(),
    }
    Ok(Reply {
        code: 0,
        stdout: String::new(),
        stderr: if action == "poweroff" {
            "0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\n".into()
        } else {
            String::new()
        },
    })
}

fn snapshot(w: &mut World, dir: &Path, rest: &[String]) -> Result<Reply, Reply> {
    let [id, verb, args @ ..] = rest else {
        return Err(Reply::syntax(
            "Usage: snapshot <vm> take|restore|list ...".into(),
        ));
    };
    let _ = dir;
    let vm = find(w, id, "VBoxManageSnapshot.cpp")?;
    match (verb.as_str(), args) {
        ("take", [name, flags @ ..]) => {
            if flags.iter().any(|f| f != "--live") {
                return Err(Reply::syntax(format!("Invalid parameter '{}'", flags[0])));
            }
            if vm.snapshots.contains(name) {
                return Err(Reply::error(&[format!(
                    "Snapshot named '{name}' already exists (use --uniquename)"
                )]));
            }
            vm.snapshots.push(name.clone());
            Ok(Reply::ok(format!(
                "0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\nSnapshot taken. UUID: {}\n",
                uuid(vm.snapshots.len() as u32)
            )))
        }
        ("restore", [name]) => {
            if vm.state == "running" || vm.state == "paused" {
                return Err(locked(&vm.name, "VBoxManageSnapshot.cpp"));
            }
            if !vm.snapshots.contains(name) {
                return Err(Reply::error(&[
                    format!("Could not find a snapshot named '{name}'"),
                    "Details: code VBOX_E_OBJECT_NOT_FOUND (0x80bb0001), component SnapshotWrap, interface ISnapshot, callee nsISupports".into(),
                ]));
            }
            Ok(Reply::ok(format!(
                "Restoring snapshot '{name}' ({})\n0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\n",
                uuid(1)
            )))
        }
        ("list", flags) => {
            if flags.iter().any(|f| f != "--machinereadable") {
                return Err(Reply::syntax(
                    "the fake lists only --machinereadable".into(),
                ));
            }
            if vm.snapshots.is_empty() {
                return Err(Reply {
                    code: 1,
                    stdout: "This machine does not have any snapshots\n".into(),
                    stderr: String::new(),
                });
            }
            let mut o = String::new();
            for (i, s) in vm.snapshots.iter().enumerate() {
                let suffix = if i == 0 {
                    String::new()
                } else {
                    format!("-{}", vec!["1"; i].join("-"))
                };
                o.push_str(&format!(
                    "SnapshotName{suffix}=\"{s}\"\nSnapshotUUID{suffix}=\"{}\"\n",
                    uuid(i as u32 + 1)
                ));
            }
            if let Some(last) = vm.snapshots.last() {
                o.push_str(&format!(
                    "CurrentSnapshotName=\"{last}\"\nCurrentSnapshotUUID=\"{}\"\nCurrentSnapshotNode=\"SnapshotName{}\"\n",
                    uuid(vm.snapshots.len() as u32),
                    if vm.snapshots.len() == 1 {
                        String::new()
                    } else {
                        format!("-{}", vec!["1"; vm.snapshots.len() - 1].join("-"))
                    }
                ));
            }
            Ok(Reply::ok(o))
        }
        _ => Err(Reply::syntax(format!("Invalid parameter '{verb}'"))),
    }
}

fn unregistervm(w: &mut World, rest: &[String]) -> Result<Reply, Reply> {
    let (opts, pos) = g(&[("--delete", false), ("--delete-all", false)], &[]).parse(rest)?;
    let id = one_positional(&pos, "VM name")?;
    let i = w
        .vm_index(&id)
        .ok_or_else(|| not_found(&id, "VBoxManageMisc.cpp"))?;
    let vm = &w.vms[i];
    if vm.state == "running" || vm.state == "paused" {
        return Err(Reply::error(&[
            format!("Cannot unregister the machine '{}' while it is locked", vm.name),
            "Details: code VBOX_E_INVALID_OBJECT_STATE (0x80bb0007), component MachineWrap, interface IMachine, callee nsISupports".into(),
            "Context: \"Unregister(CleanupMode_DetachAllReturnHardDisksOnly, ComSafeArrayAsOutParam(aMedia))\" at line 154 of file VBoxManageMisc.cpp".into(),
        ]));
    }
    let mut vm = w.vms.remove(i);
    stop_sshd(&mut vm);
    if opts.iter().any(|(o, _, _)| o.starts_with("--delete")) {
        for m in vm.media.values() {
            // The ISO of an unattended install is not the VM's: it stays.
            if Path::new(m).starts_with(&vm.folder) {
                let _ = std::fs::remove_file(m);
            }
        }
        let _ = std::fs::remove_dir_all(&vm.folder);
    }
    Ok(Reply {
        code: 0,
        stdout: String::new(),
        stderr: "0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\n".into(),
    })
}

fn guestproperty(w: &mut World, rest: &[String]) -> Result<Reply, Reply> {
    let [verb, id, prop, flags @ ..] = rest else {
        return Err(Reply::syntax(
            "Usage: guestproperty get|wait <vm> <property>".into(),
        ));
    };
    let vm = find(w, id, "VBoxManageGuestProp.cpp")?;
    let value = (vm.state == "running" && prop == crate::args::GUEST_IP).then_some("10.0.2.15");
    match verb.as_str() {
        "get" => {
            if flags.iter().any(|f| f != "--verbose") {
                return Err(Reply::syntax(format!("Invalid parameter '{}'", flags[0])));
            }
            Ok(Reply::ok(match value {
                Some(v) => format!("Value: {v}\n"),
                None => "No value set!\n".into(),
            }))
        }
        "wait" => match value {
            Some(v) => Ok(Reply::ok(format!("Name: {prop}, value: {v}, flags: \n"))),
            None => Err(Reply {
                code: 2,
                stdout: "Time out or interruption while waiting for a notification.\n".into(),
                stderr: String::new(),
            }),
        },
        _ => Err(Reply::syntax(format!("Invalid parameter '{verb}'"))),
    }
}
