//! Which accelerator a VM can use here.

use std::path::Path;

/// How QEMU runs guest code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    /// Software emulation, with the reason KVM is not used.
    Tcg {
        why: String,
    },
}

impl Accel {
    /// `-accel kvm -cpu host` or `-accel tcg -cpu max`.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg { .. } => ["-accel", "tcg", "-cpu", "max"],
        }
        .iter()
        .map(|s| (*s).to_string())
        .collect()
    }

    pub fn name(&self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg { .. } => "tcg",
        }
    }
}

/// Probe under `root` (`/` on a real machine): /dev/kvm must exist and be usable, and must not
/// be the PVM nested-KVM module, which accepts KVM_CREATE_VM but cannot run a normal guest
/// (a stock kernel hangs after "Probing EDD"). `LAB_QEMU_ACCEL=kvm|tcg` overrides.
pub fn probe(root: &Path) -> Accel {
    match std::env::var("LAB_QEMU_ACCEL").as_deref() {
        Ok("kvm") => return Accel::Kvm,
        Ok("tcg") => {
            return Accel::Tcg {
                why: "LAB_QEMU_ACCEL=tcg".into(),
            };
        }
        _ => {}
    }
    let kvm = root.join("dev/kvm");
    if !kvm.exists() {
        return Accel::Tcg {
            why: "/dev/kvm does not exist".into(),
        };
    }
    if root.join("sys/module/kvm_pvm").exists() {
        return Accel::Tcg {
            why: "/dev/kvm is the PVM nested-KVM module (kvm_pvm), which cannot run normal guests"
                .into(),
        };
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&kvm)
        .is_err()
    {
        return Accel::Tcg {
            why: "/dev/kvm cannot be opened by this user".into(),
        };
    }
    Accel::Kvm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reads_the_machine_not_the_device_node() {
        if std::env::var_os("LAB_QEMU_ACCEL").is_some() {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        assert!(matches!(probe(root.path()), Accel::Tcg { why } if why.contains("does not exist")));
        std::fs::create_dir_all(root.path().join("dev")).unwrap();
        std::fs::write(root.path().join("dev/kvm"), "").unwrap();
        std::fs::create_dir_all(root.path().join("sys/module/kvm_pvm")).unwrap();
        assert!(matches!(probe(root.path()), Accel::Tcg { why } if why.contains("kvm_pvm")));
        std::fs::remove_dir(root.path().join("sys/module/kvm_pvm")).unwrap();
        assert_eq!(probe(root.path()), Accel::Kvm);
        assert_eq!(Accel::Kvm.argv(), ["-accel", "kvm", "-cpu", "host"]);
    }
}
