//! One tiny MPTCP kernel per workspace build, shared by the kernel crate's build test and the
//! QEMU end-to-end test (built once, by whichever runs first; the other waits on a lock).

use std::fs::File;
use std::path::{Path, PathBuf};

use kernel::build::{self, BuildSpec, Manifest};
use kernel::config::Profile;

/// Debian's linux-source-6.1 (the package linux-source-6.1).
pub const SOURCE: &str = "/usr/src/linux-source-6.1.tar.xz";

/// The packages and what the build reported.
#[derive(Debug, Clone)]
pub struct Built {
    pub manifest: Manifest,
    /// Whether this call built it (else it was there already).
    pub fresh: bool,
}

impl Built {
    /// The kernel image package (`linux-image-*.deb`), what `lab kernel install` takes.
    pub fn image_deb(&self) -> String {
        self.manifest
            .packages
            .iter()
            .find(|p| {
                p.file
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("linux-image-"))
            })
            .unwrap_or_else(|| panic!("no linux-image package in {:?}", self.manifest.packages))
            .file
            .display()
            .to_string()
    }
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/lab-test-kernel")
}

/// What the build depends on: the source tarball's size and mtime, and lab's fragment.
fn key() -> Result<String, String> {
    let meta = std::fs::metadata(SOURCE).map_err(|e| format!("{SOURCE}: {e}"))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok(format!(
        "{} {} {}\n{}",
        SOURCE,
        meta.len(),
        mtime,
        kernel::config::fragment(&Profile::Tiny)
    ))
}

/// The tiny kernel's packages, built now or earlier in this target directory. `Err` when the
/// source package is missing (a capability: see `crate::require`).
pub fn tiny() -> Result<Built, String> {
    let key = key()?;
    let dir = dir();
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let lock = File::create(dir.join("lock")).map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| e.to_string())?;
    let stamp = dir.join("key");
    let manifest_file = dir.join("manifest.json");
    if std::fs::read_to_string(&stamp).is_ok_and(|k| k == key)
        && let Some(m) = std::fs::read(&manifest_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
        && m.packages.iter().all(|p| p.file.is_file())
    {
        return Ok(Built {
            manifest: m,
            fresh: false,
        });
    }
    let _ = std::fs::remove_file(&stamp);
    let mut spec = BuildSpec::new(
        SOURCE.into(),
        Profile::Tiny,
        dir.join("work"),
        dir.join("out"),
    );
    spec.history = Some(dir.join("history.json"));
    let m = build::build(&guest::Local::new("local"), &spec, &mut |p| {
        if let build::Progress::Step(s) = p {
            eprintln!("tiny kernel: {s}");
        }
    })
    .map_err(|e| e.to_string())?;
    std::fs::write(
        &manifest_file,
        serde_json::to_vec_pretty(&m).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(&stamp, key).map_err(|e| e.to_string())?;
    // The unpacked tree (1.6 GB) is not needed once the packages are out; ccache keeps the
    // next build fast. The marker goes with it, so a next build unpacks again.
    for entry in std::fs::read_dir(&spec.work)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(entry.path()).map_err(|e| e.to_string())?;
        }
    }
    let _ = std::fs::remove_file(spec.work.join(".lab-unpacked"));
    Ok(Built {
        manifest: m,
        fresh: true,
    })
}
