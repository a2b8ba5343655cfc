//! `lab bench kernel`: how long the kernel builds of the profiles take on this machine, and
//! what an edit and a rebuild cost against a build from scratch, measured in one run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use guest::Exec;
use serde::Serialize;

use crate::build::{self, BuildError, BuildSpec, Progress};
use crate::config::Profile;

/// The file touched for the rebuild figure: MPTCP's core, what a lab user edits.
pub const TOUCHED: &str = "net/mptcp/protocol.c";

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: PathBuf,
    /// Profiles built from scratch, each in its own tree with its own empty ccache. The first
    /// one also gets the rebuild figures.
    pub profiles: Vec<Profile>,
    /// Where the trees are unpacked (each profile's tree is deleted after its figures unless
    /// `keep`).
    pub work: PathBuf,
    pub jobs: usize,
    pub keep: bool,
}

/// One measured build.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub seconds: f64,
    pub objects: u64,
    pub ccache: bool,
    /// The figure this one is compared with, and this one's time as a fraction of it.
    pub against: Option<(String, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub release: String,
    pub jobs: usize,
    pub figures: Vec<Figure>,
}

/// Build each profile from scratch; for the first one also rebuild after touching
/// [`TOUCHED`] (the edit loop) and after `make clean` with the warm ccache.
pub fn run(
    host: &dyn Exec,
    opts: &Options,
    progress: &mut dyn FnMut(&str, Progress),
) -> Result<Report, BuildError> {
    let mut figures = Vec::new();
    let mut release = String::new();
    for (i, profile) in opts.profiles.iter().enumerate() {
        let name = profile.describe();
        let work = opts.work.join(&name);
        // A stale tree from an interrupted run would turn "from scratch" into a rebuild.
        host.check(&guest::Command::new([
            "rm",
            "-rf",
            &work.display().to_string(),
        ]))?;
        let mut spec = BuildSpec::new(
            opts.source.clone(),
            profile.clone(),
            work.join("tree"),
            work.join("out"),
        );
        spec.jobs = opts.jobs;
        spec.ccache_dir = Some(work.join("ccache"));
        let timed = |label: String,
                     spec: &BuildSpec,
                     progress: &mut dyn FnMut(&str, Progress)|
         -> Result<(build::Manifest, f64), BuildError> {
            let started = Instant::now();
            let m = build::build(host, spec, &mut |p| progress(&label, p))?;
            Ok((m, started.elapsed().as_secs_f64()))
        };
        let cold_name = format!("{name}: from scratch");
        let (m, cold) = timed(cold_name.clone(), &spec, progress)?;
        release = m.release.clone();
        figures.push(Figure {
            name: cold_name.clone(),
            seconds: cold,
            objects: m.objects,
            ccache: m.ccache,
            against: None,
        });
        if i == 0 {
            let tree = tree_of(&m.config);
            build::touch(host, &tree, TOUCHED)?;
            let label = format!("{name}: rebuild after touching {TOUCHED}");
            let (r, secs) = timed(label.clone(), &spec, progress)?;
            figures.push(Figure {
                name: label,
                seconds: secs,
                objects: r.objects,
                ccache: r.ccache,
                against: Some((cold_name.clone(), secs / cold)),
            });
            if m.ccache {
                build::clean(host, &tree)?;
                let label = format!("{name}: after make clean, warm ccache");
                let (r, secs) = timed(label.clone(), &spec, progress)?;
                figures.push(Figure {
                    name: label,
                    seconds: secs,
                    objects: r.objects,
                    ccache: r.ccache,
                    against: Some((cold_name.clone(), secs / cold)),
                });
            }
        }
        if !opts.keep {
            host.check(&guest::Command::new([
                "rm",
                "-rf",
                &work.display().to_string(),
            ]))?;
        }
    }
    Ok(Report {
        release,
        jobs: opts.jobs,
        figures,
    })
}

fn tree_of(config: &Path) -> PathBuf {
    config
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The report as text, one figure a line.
pub fn render(r: &Report) -> String {
    let mut out = format!("kernel builds of {} with {} jobs:\n", r.release, r.jobs);
    for f in &r.figures {
        out.push_str(&format!(
            "  {:<58} {:>7.1} s  {:>5} objects{}",
            f.name,
            f.seconds,
            f.objects,
            if f.ccache { ", ccache" } else { "" }
        ));
        if let Some((base, ratio)) = &f.against {
            out.push_str(&format!(
                "  = {ratio:.2} of \"{base}\" ({:.1}x faster)",
                1.0 / ratio
            ));
        }
        out.push('\n');
    }
    out
}
