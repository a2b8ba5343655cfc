//! `VBoxManage --version` and what differs between the versions lab supports.

use std::fmt;

/// A VirtualBox version, e.g. `7.0.14r161095` or `6.1.38_Ubuntur153438`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// The build revision (`r161095`), when printed.
    pub revision: Option<u32>,
    /// A distribution's tag (`_Ubuntu`, `_Debian`), when built by one.
    pub vendor: Option<String>,
}

/// The oldest and the newest minor versions lab knows the syntax of.
pub const SUPPORTED: ((u32, u32), (u32, u32)) = ((6, 1), (7, 1));

impl Version {
    /// Parse `VBoxManage --version` output. Lines before the version are skipped: on Linux
    /// the wrapper script prints a multi-line `WARNING:` about the vboxdrv kernel module
    /// first, and exits 0.
    pub fn parse(output: &str) -> Option<Version> {
        output
            .lines()
            .rev()
            .find_map(|l| Self::parse_line(l.trim()))
    }

    fn parse_line(line: &str) -> Option<Version> {
        let (numbers, rest) = match line.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
            Some(i) => line.split_at(i),
            None => (line, ""),
        };
        let mut parts = numbers.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        let (vendor, revision) = match rest.rfind('r') {
            Some(i) if rest[i + 1..].chars().all(|c| c.is_ascii_digit()) && i + 1 < rest.len() => {
                (&rest[..i], rest[i + 1..].parse().ok())
            }
            _ if rest.is_empty() => ("", None),
            _ => return None,
        };
        let vendor = vendor.strip_prefix('_').unwrap_or(vendor);
        Some(Version {
            major,
            minor,
            patch,
            revision,
            vendor: (!vendor.is_empty()).then(|| vendor.to_string()),
        })
    }

    /// Whether lab knows this version's syntax.
    pub fn supported(&self) -> bool {
        let v = (self.major, self.minor);
        v >= SUPPORTED.0 && v <= SUPPORTED.1
    }

    /// What differs between versions, in one place.
    pub fn quirks(&self) -> Quirks {
        let seven = self.major >= 7;
        Quirks {
            hyphenated_options: seven,
            // 7.0.0 printed no Forwarding(N) lines in `showvminfo --machinereadable` (Vagrant
            // reads the .vbox file for that release); every other release prints them.
            forwards_in_showvminfo: !(self.major == 7 && self.minor == 0 && self.patch == 0),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(v) = &self.vendor {
            write!(f, "_{v}")?;
        }
        if let Some(r) = self.revision {
            write!(f, "r{r}")?;
        }
        Ok(())
    }
}

/// Syntax and output differences between VirtualBox releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// 7.0 renamed modifyvm's options to hyphenated forms (`--nic-promisc2`,
    /// `--cable-connected2`, `--nat-pf1`, `--mac-address2`, `--nic-type2`); 6.1 knows only the
    /// old ones (`--nicpromisc2`, ...). 7.x still accepts the old forms, deprecated.
    pub hyphenated_options: bool,
    /// Whether `showvminfo --machinereadable` lists NAT port forwards.
    pub forwards_in_showvminfo: bool,
}

impl Quirks {
    /// The spelling of a modifyvm option for this release: `("nic-promisc", "nicpromisc")`.
    pub fn option(&self, new: &'static str, old: &'static str) -> &'static str {
        if self.hyphenated_options { new } else { old }
    }
}

impl Default for Quirks {
    /// The newest supported release's behaviour.
    fn default() -> Self {
        Quirks {
            hyphenated_options: true,
            forwards_in_showvminfo: true,
        }
    }
}
