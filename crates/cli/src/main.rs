//! `lab`: one declarative, reproducible, verified MPTCP testbed from a Lab.toml.
//!
//! A thin layer: it parses arguments, picks the lab (`--lab FILE`, `--preset NAME`, the nearest
//! Lab.toml, or the built-in lab), calls the library crates and prints. It spawns no process.

mod diagnostics;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use lab::{Lab, Preset};

/// Exit status for findings (`lab doctor`) and failed verdicts.
const EXIT_FINDINGS: u8 = 1;
/// Exit status for an invalid Lab.toml or bad usage (as clap uses for usage errors).
const EXIT_INVALID: u8 = 2;

#[derive(Parser, Debug)]
#[command(name = "lab", version, about = "Declarative, verified MPTCP v1 testbeds", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write the built-in lab (or a preset) to Lab.toml, to edit.
    Init {
        /// Which lab to write.
        #[arg(long, default_value = "builtin", value_parser = parse_preset)]
        preset: Preset,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
        /// Where to write it.
        #[arg(default_value = "Lab.toml")]
        path: PathBuf,
    },
    /// Network configuration: render it for people and appliers.
    #[command(subcommand)]
    Net(NetCommand),
    /// Check a lab for the MPTCP misconfigurations people hit, each with its fix.
    Doctor {
        #[command(flatten)]
        lab: LabArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum NetCommand {
    /// Print a host's configuration: a script in the guide's order, netplan YAML, rt_tables
    /// lines, or the structured plan (JSON).
    Render {
        #[command(flatten)]
        lab: LabArgs,
        /// The host to render; every host when left out.
        #[arg(long)]
        host: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Script)]
        format: Format,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Script,
    Netplan,
    #[value(name = "rt_tables")]
    RtTables,
    Json,
}

/// Which lab a command works on.
#[derive(Args, Debug)]
struct LabArgs {
    /// A Lab.toml file. Default: the nearest Lab.toml here or above, else the built-in lab.
    #[arg(long, value_name = "FILE", conflicts_with = "preset")]
    lab: Option<PathBuf>,
    /// A lab that ships with lab: `builtin` or `guide` (the guide's settings, verbatim).
    #[arg(long, value_name = "NAME", value_parser = parse_preset)]
    preset: Option<Preset>,
}

fn parse_preset(s: &str) -> Result<Preset, String> {
    s.parse()
}

/// A failure the CLI reports and turns into an exit status.
enum Failure {
    /// Already printed; exit with this status.
    Exit(u8),
    Report(miette::Report),
}

impl From<miette::Report> for Failure {
    fn from(r: miette::Report) -> Self {
        Failure::Report(r)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Exit(code)) => ExitCode::from(code),
        Err(Failure::Report(r)) => {
            eprintln!("{r:?}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Init {
            preset,
            force,
            path,
        } => init(preset, force, &path),
        Command::Net(NetCommand::Render { lab, host, format }) => {
            let lab = select_lab(&lab)?;
            render(&lab, host.as_deref(), format)
        }
        Command::Doctor { lab, json } => {
            let lab = select_lab(&lab)?;
            doctor(&lab, json)
        }
    }
}

/// `--lab FILE`, `--preset NAME`, the nearest Lab.toml, or the built-in lab.
fn select_lab(args: &LabArgs) -> Result<Lab, Failure> {
    let loaded = if let Some(path) = &args.lab {
        lab::load_file(path)
    } else if let Some(preset) = args.preset {
        preset.load()
    } else {
        let cwd = std::env::current_dir()
            .map_err(|e| miette::miette!("cannot read the current directory: {e}"))?;
        match lab::find_lab_file(&cwd) {
            Some(path) => lab::load_file(&path),
            None => Preset::Builtin.load(),
        }
    };
    loaded.map_err(|e| match e {
        lab::LoadError::Invalid(invalid) => {
            diagnostics::print(&invalid);
            Failure::Exit(EXIT_INVALID)
        }
        other => Failure::Report(miette::Report::msg(other.to_string())),
    })
}

fn init(preset: Preset, force: bool, path: &Path) -> Result<(), Failure> {
    if path.exists() && !force {
        return Err(miette::miette!(
            help = "pass --force to overwrite it",
            "{} already exists",
            path.display()
        )
        .into());
    }
    std::fs::write(path, preset.source())
        .map_err(|e| miette::miette!("cannot write {}: {e}", path.display()))?;
    println!(
        "wrote {} (the {} lab); next: `lab doctor`, `lab net render --host ue1`",
        path.display(),
        preset.name()
    );
    Ok(())
}

fn hosts<'a>(lab: &'a Lab, host: Option<&str>) -> Result<Vec<&'a lab::Host>, Failure> {
    match host {
        None => Ok(lab.hosts.iter().collect()),
        Some(name) => match lab.host(name) {
            Some(h) => Ok(vec![h]),
            None => {
                let names: Vec<&str> = lab.hosts.iter().map(|h| h.name.as_str()).collect();
                Err(miette::miette!(
                    help = format!("hosts of lab `{}`: {}", lab.name, names.join(", ")),
                    "lab `{}` has no host `{name}`",
                    lab.name
                )
                .into())
            }
        },
    }
}

fn render(lab: &Lab, host: Option<&str>, format: Format) -> Result<(), Failure> {
    let hosts = hosts(lab, host)?;
    let mut out = String::new();
    match format {
        Format::Json => {
            let docs: Vec<serde_json::Value> = hosts
                .iter()
                .map(|h| {
                    let net = h.net();
                    let steps = net::plan(&net);
                    serde_json::json!({
                        "lab": lab.name,
                        "host": h.name,
                        "role": h.role,
                        "config": net,
                        "rt_tables": net::rt_tables::lines(&net),
                        "plan": net::plan::rendered(&steps),
                    })
                })
                .collect();
            let value = if host.is_some() {
                docs.into_iter().next().unwrap_or_default()
            } else {
                serde_json::Value::Array(docs)
            };
            out = serde_json::to_string_pretty(&value).map_err(|e| miette::miette!("{e}"))?;
            out.push('\n');
        }
        _ => {
            for (n, h) in hosts.iter().enumerate() {
                let net = h.net();
                let title = format!("lab `{}`, host {} ({})", lab.name, h.name, h.role.as_str());
                if hosts.len() > 1 {
                    if n > 0 {
                        out.push('\n');
                    }
                    out.push_str(&format!("# ==> {} <==\n", h.name));
                }
                match format {
                    Format::Script => out.push_str(&net::script::render(&net, &title)),
                    Format::Netplan => out.push_str(
                        &net::netplan::render(&net, &title).map_err(|e| miette::miette!("{e}"))?,
                    ),
                    Format::RtTables => out.push_str(&net::rt_tables::render(&net)),
                    Format::Json => unreachable!("handled above"),
                }
            }
        }
    }
    print_out(&out)
}

fn print_out(s: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(s.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`lab ... | head`) is not an error worth a report.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(miette::miette!("cannot write to stdout: {e}").into()),
    }
}

fn doctor(lab: &Lab, json: bool) -> Result<(), Failure> {
    let findings = lab::doctor::check(lab);
    let out = if json {
        let mut s = serde_json::to_string_pretty(&serde_json::json!({
            "lab": lab.name,
            "clean": findings.is_empty(),
            "findings": findings,
        }))
        .map_err(|e| miette::miette!("{e}"))?;
        s.push('\n');
        s
    } else if findings.is_empty() {
        format!(
            "lab `{}`: no problems found ({} hosts checked)\n",
            lab.name,
            lab.hosts.len()
        )
    } else {
        let mut s = format!("lab `{}`: {} problem(s) found\n", lab.name, findings.len());
        for f in &findings {
            s.push_str(&format!(
                "\n{} [{}]\n  {}\n  fix: {}\n",
                f.host, f.code, f.message, f.fix
            ));
        }
        s
    };
    print_out(&out)?;
    if findings.is_empty() {
        Ok(())
    } else {
        Err(Failure::Exit(EXIT_FINDINGS))
    }
}
