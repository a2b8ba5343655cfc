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
}

/// A built package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    pub file: PathBuf,
    pub size: u64,
}

/// What a build produced.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub release: String,
    pub packages: Vec<Package>,
    pub config: PathBuf,
    pub log: PathBuf,
    pub seconds: f64,
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
    if let Ok(m) = host.get_file(&marker)
        && String::from_utf8_lossy(&m).trim() == path(&spec.source)
    {
        return tree_of(host);
    }
    progress(Progress::Step(format!(
        "unpacking {}",
        spec.source.display()
    )));
    host.check(&Command::new([
        "tar",
        "-xf",
        &path(&spec.source),
        "-C",
        &path(&spec.work),
    ]))?;
    host.put_file(
        &marker,
        path(&spec.source).as_bytes(),
        guest::FileMode::mode(0o644),
    )?;
    tree_of(host)
}

/// Configure the tree: the profile's starting .config, lab's fragment merged over it,
/// `olddefconfig`, then the MPTCP check. Returns the final .config's text.
pub fn configure(
    host: &dyn Exec,
    tree: &Path,
    profile: &Profile,
    work: &Path,
) -> Result<String, BuildError> {
    let t = path(tree);
    match profile.make_target() {
        Some(target) => {
            host.check(
                &Command::new(["make", "-C", &t, target]).timeout(Duration::from_secs(600)),
            )?;
        }
        None => {
            let Profile::File(f) = profile else {
                unreachable!("only File has no target")
            };
            let text = host.get_file(Path::new(f))?;
            host.put_file(&tree.join(".config"), &text, guest::FileMode::mode(0o644))?;
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
    host.check(
        &Command::new(["make", "-C", &t, "olddefconfig"]).timeout(Duration::from_secs(600)),
    )?;
    let text = String::from_utf8_lossy(&host.get_file(&tree.join(".config"))?).into_owned();
    config::check(&text).map_err(BuildError::Config)?;
    Ok(text)
}

/// The whole build.
pub fn build(
    host: &dyn Exec,
    spec: &BuildSpec,
    progress: &mut dyn FnMut(Progress),
) -> Result<Manifest, BuildError> {
    let start = Instant::now();
    progress(Progress::Step("checking build dependencies".into()));
    check_dependencies(host)?;
    let tree = prepare_tree(host, spec, progress)?;
    let t = path(&tree);
    progress(Progress::Step(format!("configuring ({:?})", spec.profile)));
    host.check(&Command::new(["mkdir", "-p", &path(&spec.work)]))?;
    configure(host, &tree, &spec.profile, &spec.work)?;
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

    progress(Progress::Step(format!(
        "building {release} with {} jobs",
        spec.jobs
    )));
    let counted = spec.work.join(".lab-objects");
    let expected = host
        .get_file(&counted)
        .ok()
        .and_then(|b| String::from_utf8_lossy(&b).trim().parse().ok());
    let log_path = spec.work.join("build.log");
    let mut log = Vec::new();
    let mut done = 0u64;
    let status = host.run_streaming(
        &Command::new(words(&[
            "make",
            "-C",
            &t,
            &format!("-j{}", spec.jobs.max(1)),
            "bindeb-pkg",
            &localversion,
            &format!("KDEB_PKGVERSION={}", spec.pkgversion),
        ])),
        &mut |stream, line| {
            log.extend_from_slice(line.as_bytes());
            log.push(b'\n');
            if stream == Stream::Stdout && line.trim_start().starts_with("CC ") {
                done += 1;
                progress(Progress::Compiled { done, expected });
            }
        },
    )?;
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
    host.put_file(
        &counted,
        done.to_string().as_bytes(),
        guest::FileMode::mode(0o644),
    )?;

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
        config: tree.join(".config"),
        log: log_path,
        seconds: start.elapsed().as_secs_f64(),
    })
}
