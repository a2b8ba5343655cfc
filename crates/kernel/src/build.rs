//! `make bindeb-pkg` with MPTCP forced on, non-interactively, through the command seam: unpack
//! the source, configure from a profile plus lab's fragment, check the result, build with stable
//! package names, and hand back a manifest of the packages.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guest::{Command, Exec, Stream};
use serde::Serialize;

use crate::config::{self, Profile};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// A source tarball (.tar.xz, .tar.gz, .tar.bz2) or an unpacked tree.
    pub source: PathBuf,
    pub profile: Profile,
    /// Where a tarball is unpacked and the build runs.
    pub work: PathBuf,
    /// Where the packages go.
    pub out: PathBuf,
    pub jobs: usize,
    /// Appended to the release (`6.1.192-mptcp`).
    pub localversion: String,
    /// The Debian revision of the packages, fixed so names are stable across rebuilds.
    pub pkgversion: String,
    /// Open `make menuconfig` on the terminal after lab's fragment (the guide's manual step).
    pub menuconfig: bool,
    /// Compile through ccache when the host has it.
    pub ccache: bool,
    /// ccache's cache directory (`CCACHE_DIR`), when not the user's own.
    pub ccache_dir: Option<PathBuf>,
    /// A file remembering how many objects earlier builds compiled, per kernel version and
    /// profile: the progress estimate of a first build in a new work directory.
    pub history: Option<PathBuf>,
}

impl BuildSpec {
    /// A spec with lab's defaults: `-mptcp`, package revision 1, ccache when installed, no
    /// menuconfig, no history.
    /// Relative paths are taken from the current directory now: the build runs commands in
    /// other directories (`cd TREE && merge_config.sh ... FRAGMENT`).
    pub fn new(source: PathBuf, profile: Profile, work: PathBuf, out: PathBuf) -> BuildSpec {
        let abs = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
        BuildSpec {
            source: abs(source),
            profile,
            work: abs(work),
            out: abs(out),
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            localversion: "-mptcp".into(),
            pkgversion: "1".into(),
            menuconfig: false,
            ccache: true,
            ccache_dir: None,
            history: None,
        }
    }
}

/// A built package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Package {
    pub file: PathBuf,
    pub size: u64,
}

/// What a build produced.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Manifest {
    pub release: String,
    pub packages: Vec<Package>,
    pub config: PathBuf,
    pub log: PathBuf,
    pub seconds: f64,
    /// The starting configuration, e.g. `tiny`.
    pub profile: String,
    /// Whether the compiler ran through ccache.
    pub ccache: bool,
    /// Objects compiled (`CC` lines), the next build's estimate.
    pub objects: u64,
}

/// A configured tree, ready to build.
#[derive(Debug, Clone)]
pub struct Configured {
    pub tree: PathBuf,
    /// `make kernelversion`, e.g. `6.1.158`.
    pub version: String,
    /// The final .config.
    pub config: PathBuf,
    /// Its text (checked: MPTCP is on).
    pub text: String,
}

/// Progress reports, for a progress bar in the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Step(String),
    /// Objects compiled so far, and how many a previous build of this tree compiled (the
    /// estimate), when known.
    Compiled {
        done: u64,
        expected: Option<u64>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "missing build dependencies: {missing}\n  install them with: apt-get install {packages}"
    )]
    Missing { missing: String, packages: String },
    #[error(transparent)]
    Host(#[from] Box<guest::Error>),
    #[error("the configuration lost MPTCP: {}", .0.iter().map(|(o, v)| format!("{o} is {v}")).collect::<Vec<_>>().join(", "))]
    Config(Vec<(String, String)>),
    #[error("`make bindeb-pkg` failed (full log: {}); last lines:\n{}", log.display(), tail.join("\n"))]
    Failed { log: PathBuf, tail: Vec<String> },
    #[error("{0}")]
    Source(String),
}

impl From<guest::Error> for BuildError {
    fn from(e: guest::Error) -> Self {
        BuildError::Host(Box::new(e))
    }
}

/// (what is checked, the command or file that shows it, the Debian package).
const DEPENDENCIES: &[(&str, &str, &str)] = &[
    ("make", "make", "make"),
    ("gcc", "gcc", "gcc"),
    ("bc", "bc", "bc"),
    ("bison", "bison", "bison"),
    ("flex", "flex", "flex"),
    ("perl", "perl", "perl"),
    ("dpkg-deb", "dpkg-deb", "dpkg-dev"),
    ("rsync", "rsync", "rsync"),
    ("cpio", "cpio", "cpio"),
    ("libelf headers", "/usr/include/libelf.h", "libelf-dev"),
    (
        "OpenSSL headers",
        "/usr/include/openssl/ssl.h",
        "libssl-dev",
    ),
];

/// Check the build dependencies before starting; the error names the `apt-get install` line.
pub fn check_dependencies(host: &dyn Exec) -> Result<(), BuildError> {
    let mut missing = Vec::new();
    for (what, probe, package) in DEPENDENCIES {
        let found = if probe.starts_with('/') {
            host.run(&Command::new(["test", "-e", probe]))?.success()
        } else {
            host.run(&Command::new([
                "sh",
                "-c",
                "command -v \"$1\"",
                "sh",
                probe,
            ]))?
            .success()
        };
        if !found {
            missing.push((*what, *package));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(BuildError::Missing {
            missing: missing
                .iter()
                .map(|(w, _)| *w)
                .collect::<Vec<_>>()
                .join(", "),
            packages: missing
                .iter()
                .map(|(_, p)| *p)
                .collect::<Vec<_>>()
                .join(" "),
        })
    }
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| (*s).to_string()).collect()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Unpack a tarball into `work` (once: a marker records what was unpacked) and return the tree.
fn prepare_tree(
    host: &dyn Exec,
    spec: &BuildSpec,
    progress: &mut dyn FnMut(Progress),
) -> Result<PathBuf, BuildError> {
    if host
        .run(&Command::new(["test", "-d", &path(&spec.source)]))?
        .success()
    {
        return Ok(spec.source.clone());
    }
    host.check(&Command::new(["mkdir", "-p", &path(&spec.work)]))?;
    let marker = spec.work.join(".lab-unpacked");
    let tree_of = |host: &dyn Exec| -> Result<PathBuf, BuildError> {
        let out = host.check(&Command::new([
            "find",
            &path(&spec.work),
            "-mindepth",
            "1",
            "-maxdepth",
            "1",
            "-type",
            "d",
        ]))?;
        let dirs: Vec<String> = out.stdout_lossy().lines().map(str::to_string).collect();
        match dirs.as_slice() {
            [one] => Ok(PathBuf::from(one)),
            _ => Err(BuildError::Source(format!(
                "expected one directory in {} after unpacking, found {}",
                spec.work.display(),
                dirs.len()
            ))),
        }
    };
    // The marker counts only while the tree is still there (a user may delete it for space).
    if let Ok(m) = host.get_file(&marker)
        && String::from_utf8_lossy(&m).trim() == path(&spec.source)
        && let Ok(tree) = tree_of(host)
    {
        return Ok(tree);
    }
    progress(Progress::Step(format!(
        "unpacking {}",
        spec.source.display()
    )));
    // Interruptible; the marker below is written only after a whole unpack.
    host.check(
        &Command::new(["tar", "-xf", &path(&spec.source), "-C", &path(&spec.work)]).cancellable(),
    )?;
    host.put_file(
        &marker,
        path(&spec.source).as_bytes(),
        guest::FileMode::mode(0o644),
    )?;
    tree_of(host)
}

/// Configure the tree: the profile's starting .config, lab's fragment merged over it,
/// `olddefconfig`, optionally `make menuconfig` on the terminal, then the MPTCP check.
/// Returns the final .config's text.
pub fn configure(
    host: &dyn Exec,
    tree: &Path,
    profile: &Profile,
    work: &Path,
    menuconfig: bool,
) -> Result<String, BuildError> {
    let t = path(tree);
    let make = |args: &[&str]| -> Result<(), BuildError> {
        let mut argv = words(&["make", "-C", &t]);
        argv.extend(args.iter().map(|a| (*a).to_string()));
        // kconfig asks about options the starting .config does not mention when stdin is a
        // terminal; an empty stdin takes every default instead.
        host.check(
            &Command::new(argv)
                .stdin(Vec::new())
                .timeout(Duration::from_secs(600))
                .cancellable(),
        )?;
        Ok(())
    };
    let dot_config = tree.join(".config");
    match profile {
        Profile::Defconfig | Profile::Lab | Profile::Tiny => {
            let target = profile.make_target().unwrap_or("defconfig");
            make(&[target])?;
        }
        Profile::Given { text, .. } => {
            host.put_file(&dot_config, text.as_bytes(), guest::FileMode::mode(0o644))?;
        }
        Profile::LocalMod { base, lsmod, .. } => {
            host.put_file(&dot_config, base.as_bytes(), guest::FileMode::mode(0o644))?;
            // First settle the base on this tree, so localmodconfig asks about nothing new.
            make(&["olddefconfig"])?;
            let list = work.join("lsmod");
            host.put_file(&list, lsmod.as_bytes(), guest::FileMode::mode(0o644))?;
            make(&[&format!("LSMOD={}", path(&list)), "localmodconfig"])?;
        }
    }
    let fragment = work.join("lab.config");
    host.put_file(
        &fragment,
        config::fragment(profile).as_bytes(),
        guest::FileMode::mode(0o644),
    )?;
    host.check(
        &Command::new(words(&[
            "sh",
            "-c",
            "cd \"$1\" && ./scripts/kconfig/merge_config.sh -m .config \"$2\"",
            "sh",
            &t,
            &path(&fragment),
        ]))
        .timeout(Duration::from_secs(600)),
    )?;
    make(&["olddefconfig"])?;
    if menuconfig {
        let st = host.interactive(&Command::new(words(&["make", "-C", &t, "menuconfig"])))?;
        if !st.success() {
            return Err(BuildError::Source(format!(
                "`make menuconfig` ended with {st}"
            )));
        }
        make(&["olddefconfig"])?;
    }
    let text = String::from_utf8_lossy(&host.get_file(&dot_config)?).into_owned();
    config::check(&text).map_err(BuildError::Config)?;
    Ok(text)
}

/// Check the dependencies, unpack the source (once) and configure it: what `lab kernel
/// config` does, and the first half of [`build`].
pub fn prepare(
    host: &dyn Exec,
    spec: &BuildSpec,
    progress: &mut dyn FnMut(Progress),
) -> Result<Configured, BuildError> {
    progress(Progress::Step("checking build dependencies".into()));
    check_dependencies(host)?;
    let tree = prepare_tree(host, spec, progress)?;
    let t = path(&tree);
    progress(Progress::Step(format!(
        "configuring ({})",
        spec.profile.describe()
    )));
    host.check(&Command::new(["mkdir", "-p", &path(&spec.work)]))?;
    let text = configure(host, &tree, &spec.profile, &spec.work, spec.menuconfig)?;
    let version = host
        .check(&Command::new(words(&[
            "make",
            "-C",
            &t,
            "-s",
            "kernelversion",
        ])))?
        .stdout_lossy()
        .trim()
        .to_string();
    Ok(Configured {
        config: tree.join(".config"),
        tree,
        version,
        text,
    })
}

/// The history key of a build: the kernel version and the profile.
fn history_key(version: &str, profile: &Profile) -> String {
    format!("{version} {}", profile.describe())
}

fn read_history(host: &dyn Exec, file: &Path) -> std::collections::BTreeMap<String, u64> {
    host.get_file(file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Mark a file as changed (the edit of an edit-build-boot loop), so the next build compiles it
/// again.
pub fn touch(host: &dyn Exec, tree: &Path, file: &str) -> Result<(), BuildError> {
    host.check(&Command::new(words(&["touch", &path(&tree.join(file))])))?;
    Ok(())
}

/// `make clean` in a tree: the next build compiles everything again (from ccache, if on).
pub fn clean(host: &dyn Exec, tree: &Path) -> Result<(), BuildError> {
    host.check(
        &Command::new(words(&["make", "-C", &path(tree), "clean"]))
            .timeout(Duration::from_secs(600)),
    )?;
    Ok(())
}

/// The whole build.
pub fn build(
    host: &dyn Exec,
    spec: &BuildSpec,
    progress: &mut dyn FnMut(Progress),
) -> Result<Manifest, BuildError> {
    let start = Instant::now();
    let Configured {
        tree,
        version,
        config: config_path,
        ..
    } = prepare(host, spec, progress)?;
    let t = path(&tree);
    let localversion = format!("LOCALVERSION={}", spec.localversion);
    let release = host
        .check(&Command::new(words(&[
            "make",
            "-C",
            &t,
            "-s",
            "kernelrelease",
            &localversion,
        ])))?
        .stdout_lossy()
        .trim()
        .to_string();
    let ccache = spec.ccache
        && host
            .run(&Command::new(["sh", "-c", "command -v ccache"]))?
            .success();

    progress(Progress::Step(format!(
        "building {release} with {} jobs{}",
        spec.jobs,
        if ccache { " through ccache" } else { "" }
    )));
    // The estimate: this work directory's last build, else the history's figure for this
    // version and profile.
    let counted = spec.work.join(".lab-objects");
    let key = history_key(&version, &spec.profile);
    let expected = host
        .get_file(&counted)
        .ok()
        .and_then(|b| String::from_utf8_lossy(&b).trim().parse().ok())
        .or_else(|| {
            spec.history
                .as_deref()
                .and_then(|h| read_history(host, h).get(&key).copied())
        });
    let log_path = spec.work.join("build.log");
    let mut log = Vec::new();
    let mut done = 0u64;
    let mut argv = words(&[
        "make",
        "-C",
        &t,
        &format!("-j{}", spec.jobs.max(1)),
        "bindeb-pkg",
        &localversion,
        &format!("KDEB_PKGVERSION={}", spec.pkgversion),
    ]);
    if ccache {
        argv.push("CC=ccache gcc".into());
        // make exports command-line variables to its recipes, so ccache sees this.
        if let Some(dir) = &spec.ccache_dir {
            argv.push(format!("CCACHE_DIR={}", path(dir)));
        }
    }
    // An interrupt (Ctrl-C) ends the build's process group; the tree stays for a rebuild.
    let status = host.run_streaming(&Command::new(argv).cancellable(), &mut |stream, line| {
        log.extend_from_slice(line.as_bytes());
        log.push(b'\n');
        if stream == Stream::Stdout && line.trim_start().starts_with("CC ") {
            done += 1;
            progress(Progress::Compiled { done, expected });
        }
    })?;
    host.put_file(&log_path, &log, guest::FileMode::mode(0o644))?;
    if !status.success() {
        let text = String::from_utf8_lossy(&log);
        let lines: Vec<&str> = text.lines().collect();
        return Err(BuildError::Failed {
            log: log_path,
            tail: lines[lines.len().saturating_sub(40)..]
                .iter()
                .map(|l| (*l).to_string())
                .collect(),
        });
    }
    // Remember the count only for a build from scratch: an incremental one compiles a few.
    if expected.is_none_or(|e| done * 2 >= e) {
        host.put_file(
            &counted,
            done.to_string().as_bytes(),
            guest::FileMode::mode(0o644),
        )?;
        if let Some(h) = &spec.history {
            let mut all = read_history(host, h);
            all.insert(key, done);
            if let Some(dir) = h.parent().filter(|d| !d.as_os_str().is_empty()) {
                host.check(&Command::new(["mkdir", "-p", &path(dir)]))?;
            }
            let json = serde_json::to_vec_pretty(&all).unwrap_or_default();
            host.put_file(h, &json, guest::FileMode::mode(0o644))?;
        }
    }

    // bindeb-pkg writes the packages beside the tree.
    let parent = tree
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    host.check(&Command::new(["mkdir", "-p", &path(&spec.out)]))?;
    let listing = host
        .check(&Command::new([
            "find",
            &path(&parent),
            "-maxdepth",
            "1",
            "-name",
            &format!("*_{}_*.deb", spec.pkgversion),
        ]))?
        .stdout_lossy();
    let mut packages = Vec::new();
    for file in listing
        .lines()
        .filter(|l| l.contains(&release) || l.contains("linux-libc-dev"))
    {
        let name = Path::new(file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dest = spec.out.join(&name);
        if Path::new(file) != dest {
            host.check(&Command::new(["mv", "-f", file, &path(&dest)]))?;
        }
        let size = host
            .check(&Command::new(["stat", "-c", "%s", &path(&dest)]))?
            .stdout_lossy()
            .trim()
            .parse()
            .unwrap_or(0);
        packages.push(Package { file: dest, size });
    }
    packages.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(Manifest {
        release,
        packages,
        config: config_path,
        log: log_path,
        seconds: start.elapsed().as_secs_f64(),
        profile: spec.profile.describe(),
        ccache,
        objects: done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_taken_from_here() {
        let s = BuildSpec::new(
            "linux.tar.xz".into(),
            Profile::Tiny,
            ".lab/kernel-build".into(),
            "out".into(),
        );
        let here = std::env::current_dir().unwrap();
        assert_eq!(s.source, here.join("linux.tar.xz"));
        assert_eq!(s.work, here.join(".lab/kernel-build"));
        assert_eq!(s.out, here.join("out"));
    }
}
