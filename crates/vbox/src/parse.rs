//! Parsers for what VBoxManage prints: `showvminfo --machinereadable`, `list vms`,
//! `guestproperty get`, `snapshot list --machinereadable`, and its error messages.
//! Tested on the recordings in fixtures/vbox (see its README for their sources).

use crate::args::Forward;

/// `key=value` pairs of machine-readable output, in order. Keys may be quoted
/// (`"SATA-0-0"="..."`); quoted values may contain `\"`, `\\` and newlines (a VM's
/// description); numbers are unquoted. Lines that are not `key=value` are skipped (7.0.0
/// printed `Encryption:     disabled` among them).
pub fn machine_readable(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = String::new();
    // Read logical lines: a quoted value may span physical lines.
    let mut logical: Vec<String> = Vec::new();
    let mut in_quotes = false;
    let mut escaped = false;
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        if c == '\n' && !in_quotes {
            logical.push(std::mem::take(&mut line));
            continue;
        }
        if escaped {
            escaped = false;
        } else if c == '\\' && in_quotes {
            escaped = true;
        } else if c == '"' {
            in_quotes = !in_quotes;
        }
        line.push(c);
    }
    if !line.is_empty() {
        logical.push(line);
    }
    for l in logical {
        let (key, rest) = if let Some(stripped) = l.strip_prefix('"') {
            match stripped.find("\"=") {
                Some(i) => (stripped[..i].to_string(), &stripped[i + 2..]),
                None => continue,
            }
        } else {
            match l.find('=') {
                Some(i) if !l[..i].contains(char::is_whitespace) => {
                    (l[..i].to_string(), &l[i + 1..])
                }
                _ => continue,
            }
        };
        out.push((key, unquote(rest)));
    }
    out
}

fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return v.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A VM's state, as `showvminfo --machinereadable` names it (`VMState=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    PowerOff,
    Saved,
    Aborted,
    /// 7.0: aborted with a saved state kept.
    AbortedSaved,
    Running,
    Paused,
    Starting,
    Stopping,
    Saving,
    Restoring,
    /// The VM's settings file cannot be read (`name="<inaccessible>"`).
    Inaccessible,
    Other(String),
}

impl State {
    pub fn parse(s: &str) -> State {
        match s {
            "poweroff" => State::PowerOff,
            "saved" => State::Saved,
            "aborted" => State::Aborted,
            "aborted-saved" => State::AbortedSaved,
            "running" => State::Running,
            "paused" => State::Paused,
            "starting" => State::Starting,
            "stopping" => State::Stopping,
            "saving" => State::Saving,
            "restoring" => State::Restoring,
            other => State::Other(other.to_string()),
        }
    }

    /// Whether the VM runs (a session holds it): it must be stopped before settings change.
    pub fn is_on(&self) -> bool {
        matches!(
            self,
            State::Running
                | State::Paused
                | State::Starting
                | State::Stopping
                | State::Saving
                | State::Restoring
        )
    }

    pub fn as_str(&self) -> &str {
        match self {
            State::PowerOff => "poweroff",
            State::Saved => "saved",
            State::Aborted => "aborted",
            State::AbortedSaved => "aborted-saved",
            State::Running => "running",
            State::Paused => "paused",
            State::Starting => "starting",
            State::Stopping => "stopping",
            State::Saving => "saving",
            State::Restoring => "restoring",
            State::Inaccessible => "inaccessible",
            State::Other(s) => s,
        }
    }
}

/// A network adapter as `showvminfo` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicInfo {
    pub slot: u8,
    /// `nat`, `intnet`, `bridged`, `hostonly`, ...
    pub kind: String,
    pub intnet: Option<String>,
    pub mac: Option<String>,
    pub cable_connected: Option<bool>,
    pub forwards: Vec<Forward>,
}

/// What lab reads of a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmInfo {
    /// `None` for an inaccessible VM.
    pub name: Option<String>,
    pub uuid: String,
    pub groups: Vec<String>,
    pub state: State,
    pub memory_mib: Option<u32>,
    pub cpus: Option<u32>,
    pub cfg_file: Option<String>,
    /// Adapters that are present (`nicN` other than `none`), by slot.
    pub nics: Vec<NicInfo>,
    /// `(controller-port-device, medium)` for attached media (`"SATA-0-0"="/path.vdi"`).
    pub media: Vec<(String, String)>,
    pub current_snapshot: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected `showvminfo --machinereadable` output: {0}")]
pub struct ParseError(pub String);

/// Parse `showvminfo VM --machinereadable`.
pub fn showvminfo(text: &str) -> Result<VmInfo, ParseError> {
    let kv = machine_readable(text);
    let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let uuid = get("UUID").ok_or_else(|| ParseError("no UUID".into()))?;
    let name = get("name").ok_or_else(|| ParseError("no name".into()))?;
    if name == "<inaccessible>" {
        return Ok(VmInfo {
            name: None,
            uuid,
            groups: Vec::new(),
            state: State::Inaccessible,
            memory_mib: None,
            cpus: None,
            cfg_file: None,
            nics: Vec::new(),
            media: Vec::new(),
            current_snapshot: None,
        });
    }
    let state = State::parse(&get("VMState").ok_or_else(|| ParseError("no VMState".into()))?);
    let mut nics: Vec<NicInfo> = Vec::new();
    let mut current: Option<u8> = None;
    let nic = |nics: &mut Vec<NicInfo>, slot: u8| -> usize {
        match nics.iter().position(|n| n.slot == slot) {
            Some(i) => i,
            None => {
                nics.push(NicInfo {
                    slot,
                    kind: String::new(),
                    intnet: None,
                    mac: None,
                    cable_connected: None,
                    forwards: Vec::new(),
                });
                nics.len() - 1
            }
        }
    };
    let indexed = |key: &str, prefix: &str| -> Option<u8> {
        key.strip_prefix(prefix)
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
    };
    let mut media = Vec::new();
    for (k, v) in &kv {
        if let Some(slot) = indexed(k, "nic").filter(|_| !k.starts_with("nictype")) {
            current = Some(slot);
            let i = nic(&mut nics, slot);
            nics[i].kind = v.clone();
        } else if let Some(slot) = indexed(k, "natnet") {
            current = Some(slot);
        } else if let Some(slot) = indexed(k, "intnet") {
            let i = nic(&mut nics, slot);
            nics[i].intnet = Some(v.clone());
        } else if let Some(slot) = indexed(k, "macaddress") {
            current = Some(slot);
            let i = nic(&mut nics, slot);
            nics[i].mac = Some(v.clone());
        } else if let Some(slot) = indexed(k, "cableconnected") {
            let i = nic(&mut nics, slot);
            nics[i].cable_connected = Some(v == "on");
        } else if k.starts_with("Forwarding(") {
            let slot = current.ok_or_else(|| ParseError(format!("{k} before any NIC")))?;
            let f = Forward::parse(v).ok_or_else(|| ParseError(format!("{k}=\"{v}\"")))?;
            let i = nic(&mut nics, slot);
            nics[i].forwards.push(f);
        } else if is_medium_key(k) && v != "none" {
            media.push((k.clone(), v.clone()));
        }
    }
    nics.retain(|n| !n.kind.is_empty() && n.kind != "none");
    nics.sort_by_key(|n| n.slot);
    Ok(VmInfo {
        name: Some(name),
        uuid,
        groups: get("groups")
            .map(|g| g.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        state,
        memory_mib: get("memory").and_then(|m| m.parse().ok()),
        cpus: get("cpus").and_then(|m| m.parse().ok()),
        cfg_file: get("CfgFile"),
        nics,
        media,
        current_snapshot: get("CurrentSnapshotName"),
    })
}

/// `"SATA-0-0"`, `"IDE Controller-1-0"`: controller name, port, device.
fn is_medium_key(k: &str) -> bool {
    let mut parts = k.rsplitn(3, '-');
    let (Some(dev), Some(port), Some(ctl)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !ctl.is_empty()
        && !ctl.ends_with("ImageUUID")
        && dev.chars().all(|c| c.is_ascii_digit())
        && port.chars().all(|c| c.is_ascii_digit())
        && !dev.is_empty()
        && !port.is_empty()
}

/// A line of `list vms` / `list runningvms`: `"name" {uuid}`, or `"<inaccessible>" {uuid}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// `None` for an inaccessible VM.
    pub name: Option<String>,
    pub uuid: String,
}

/// Parse `list vms` or `list runningvms`. Lines in another shape (the vboxdrv warning) are
/// skipped.
pub fn list(text: &str) -> Vec<Listed> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_end();
            let open = l.rfind(" {")?;
            let uuid = l[open + 2..].strip_suffix('}')?;
            let name = l[..open].strip_prefix('"')?.strip_suffix('"')?;
            Some(Listed {
                name: (name != "<inaccessible>").then(|| name.to_string()),
                uuid: uuid.to_string(),
            })
        })
        .collect()
}

/// `guestproperty get`: `Value: 10.0.2.15`, or `No value set!`.
pub fn guestproperty(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("Value: "))
        .map(|v| v.trim_end().to_string())
}

/// Snapshot names from `snapshot VM list --machinereadable` (`SnapshotName="base"`,
/// `SnapshotName-1="after-kernel"`, ...), in order.
pub fn snapshots(text: &str) -> Vec<String> {
    machine_readable(text)
        .into_iter()
        .filter(|(k, _)| {
            k == "SnapshotName"
                || k.strip_prefix("SnapshotName-")
                    .is_some_and(|r| r.split('-').all(|n| n.chars().all(|c| c.is_ascii_digit())))
        })
        .map(|(_, v)| v)
        .collect()
}

/// What went wrong, read from VBoxManage's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// VBOX_E_OBJECT_NOT_FOUND: no such VM, medium or snapshot.
    NotFound,
    /// A session holds the VM (VBOX_E_INVALID_OBJECT_STATE "locked"): try again shortly.
    Locked,
    /// E_ACCESSDENIED: files or settings not writable by this user.
    AccessDenied,
    /// The vboxdrv kernel module is not loaded: no VM can start.
    Driver,
    /// A syntax error (`Unknown option`, `Invalid parameter`).
    Syntax,
    Other,
}

/// A VBoxManage error message, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VBoxError {
    pub kind: ErrorKind,
    /// The first `VBoxManage: error:` line's text.
    pub message: String,
    /// `VBOX_E_OBJECT_NOT_FOUND`, `E_ACCESSDENIED`, ...
    pub code: Option<String>,
}

/// Read VBoxManage's stderr (and the wrapper's stdout warnings).
pub fn error(text: &str) -> VBoxError {
    let errors: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("VBoxManage: error: ")
                .or_else(|| l.strip_prefix("VBoxManage.exe: error: "))
        })
        .collect();
    // `Details: code VBOX_E_... (0x...), component ...`, or without details:
    // `Code E_ACCESSDENIED (0x80070005) - Access denied (extended info not available)`.
    let code = errors.iter().find_map(|l| {
        let rest = l
            .strip_prefix("Details: code ")
            .or_else(|| l.strip_prefix("Code "))?;
        Some(rest.split([' ', ',']).next()?.to_string())
    });
    let message = errors
        .iter()
        .find(|l| {
            !l.starts_with("Details:") && !l.starts_with("Context:") && !l.starts_with("Code ")
        })
        .map(|s| (*s).to_string())
        .or_else(|| {
            text.lines()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_default();
    let lower = text.to_ascii_lowercase();
    let kind = if lower.contains("vboxdrv kernel module is not loaded")
        || lower.contains("verr_vm_driver_not_installed")
        || lower.contains("kernel driver not installed")
    {
        ErrorKind::Driver
    } else if code.as_deref() == Some("VBOX_E_OBJECT_NOT_FOUND")
        || lower.contains("could not find a registered machine")
    {
        ErrorKind::NotFound
    } else if lower.contains("is already locked") || lower.contains("while it is locked") {
        ErrorKind::Locked
    } else if code.as_deref() == Some("E_ACCESSDENIED") {
        ErrorKind::AccessDenied
    } else if lower.contains("unknown option")
        || lower.contains("invalid parameter")
        || lower.contains("syntax error")
    {
        ErrorKind::Syntax
    } else {
        ErrorKind::Other
    };
    VBoxError {
        kind,
        message,
        code,
    }
}
