//! Commands on this machine, and in a network namespace of this machine.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::{Command, Error, Exec, FileMode, Output, Status, Stream};

/// This machine. Every command runs in a process group of its own, so that a timeout ends the
/// command and everything it started, and nothing else.
#[derive(Debug, Clone)]
pub struct Local {
    host: String,
}

impl Default for Local {
    fn default() -> Self {
        Self::new("localhost")
    }
}

impl Local {
    pub fn new(host: impl Into<String>) -> Self {
        Self { host: host.into() }
    }

    fn spawn(&self, cmd: &Command) -> Result<Child, Error> {
        let spawn_err = |source| Error::Spawn {
            host: self.host.clone(),
            argv: cmd.argv.clone(),
            source,
        };
        let Some((prog, args)) = cmd.argv.split_first() else {
            return Err(spawn_err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "empty argv",
            )));
        };
        let mut c = std::process::Command::new(prog);
        c.args(args)
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        tracing::debug!(host = %self.host, argv = ?cmd.argv, "run");
        let mut child = c.spawn().map_err(spawn_err)?;
        if let (Some(input), Some(mut stdin)) = (cmd.stdin.clone(), child.stdin.take()) {
            // A writer thread, so that a command that does not read its input cannot block us.
            thread::spawn(move || {
                let _ = stdin.write_all(&input);
            });
        }
        Ok(child)
    }

    /// Wait for `child` until `deadline`; on expiry kill its process group and report a timeout.
    fn wait(&self, cmd: &Command, child: &mut Child, started: Instant) -> Result<Status, Error> {
        let mut pause = Duration::from_micros(200);
        loop {
            match child.try_wait() {
                Ok(Some(st)) => return Ok(status(st)),
                Ok(None) => {}
                Err(source) => {
                    return Err(Error::Spawn {
                        host: self.host.clone(),
                        argv: cmd.argv.clone(),
                        source,
                    });
                }
            }
            if let Some(limit) = cmd.timeout
                && started.elapsed() >= limit
            {
                self.kill(child);
                return Err(Error::Timeout {
                    host: self.host.clone(),
                    argv: cmd.argv.clone(),
                    after: limit,
                });
            }
            if cmd.cancellable && crate::cancel::requested() {
                self.kill(child);
                return Err(Error::Cancelled {
                    host: self.host.clone(),
                    argv: cmd.argv.clone(),
                });
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// End the command's process group (only the processes this call started) and reap it.
    fn kill(&self, child: &mut Child) {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn status(st: std::process::ExitStatus) -> Status {
    match (st.code(), st.signal()) {
        (Some(c), _) => Status::Code(c),
        (None, Some(s)) => Status::Signal(s),
        (None, None) => Status::Code(-1),
    }
}

fn read_all(r: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}

impl Exec for Local {
    fn host(&self) -> &str {
        &self.host
    }

    fn run(&self, cmd: &Command) -> Result<Output, Error> {
        let started = Instant::now();
        let mut child = self.spawn(cmd)?;
        let out = read_all(child.stdout.take());
        let err = read_all(child.stderr.take());
        let st = self.wait(cmd, &mut child, started)?;
        Ok(Output {
            status: st,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        })
    }

    fn run_streaming(
        &self,
        cmd: &Command,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<Status, Error> {
        let started = Instant::now();
        let mut child = self.spawn(cmd)?;
        let (tx, rx) = mpsc::channel::<(Stream, String)>();
        let pipe = |r: Option<Box<dyn Read + Send>>, which: Stream, tx: mpsc::Sender<_>| {
            thread::spawn(move || {
                let Some(r) = r else { return };
                let mut r = BufReader::new(r);
                let mut line = Vec::new();
                while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                    let text = String::from_utf8_lossy(&line);
                    let text = text.strip_suffix('\n').unwrap_or(&text);
                    if tx.send((which, text.to_string())).is_err() {
                        return;
                    }
                    line.clear();
                }
            })
        };
        let out = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let err = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let t1 = pipe(out, Stream::Stdout, tx.clone());
        let t2 = pipe(err, Stream::Stderr, tx);
        loop {
            let wait = match cmd.timeout {
                Some(limit) => match limit.checked_sub(started.elapsed()) {
                    Some(left) => left,
                    None => {
                        self.kill(&mut child);
                        return Err(Error::Timeout {
                            host: self.host.clone(),
                            argv: cmd.argv.clone(),
                            after: limit,
                        });
                    }
                },
                None => Duration::from_secs(3600),
            };
            if cmd.cancellable && crate::cancel::requested() {
                self.kill(&mut child);
                return Err(Error::Cancelled {
                    host: self.host.clone(),
                    argv: cmd.argv.clone(),
                });
            }
            let wait = if cmd.cancellable {
                wait.min(Duration::from_millis(50))
            } else {
                wait
            };
            match rx.recv_timeout(wait) {
                Ok((which, line)) => on_line(which, &line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let _ = (t1.join(), t2.join());
        self.wait(cmd, &mut child, started)
    }

    fn put_file(&self, path: &Path, contents: &[u8], mode: FileMode) -> Result<(), Error> {
        let file_err = |op, source| Error::File {
            host: self.host.clone(),
            op,
            path: path.to_path_buf(),
            source,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(".lab-")
            .tempfile_in(dir)
            .map_err(|e| file_err("create a temp file for", e))?;
        tmp.write_all(contents)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| file_err("write", e))?;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode.mode))
            .map_err(|e| file_err("set the mode of", e))?;
        if let Some((uid, gid)) = mode.owner {
            std::os::unix::fs::chown(tmp.path(), Some(uid), Some(gid))
                .map_err(|e| file_err("set the owner of", e))?;
        }
        tmp.persist(path)
            .map_err(|e| file_err("rename into place", e.error))?;
        Ok(())
    }

    fn get_file(&self, path: &Path) -> Result<Vec<u8>, Error> {
        std::fs::read(path).map_err(|source| Error::File {
            host: self.host.clone(),
            op: "read",
            path: path.to_path_buf(),
            source,
        })
    }

    fn interactive(&self, cmd: &Command) -> Result<Status, Error> {
        let Some((program, args)) = cmd.argv.split_first() else {
            return Err(Error::Spawn {
                host: self.host.clone(),
                argv: cmd.argv.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
            });
        };
        let st = std::process::Command::new(program)
            .args(args)
            .status()
            .map_err(|source| Error::Spawn {
                host: self.host.clone(),
                argv: cmd.argv.clone(),
                source,
            })?;
        Ok(status(st))
    }
}

/// A network namespace of this machine (`/run/netns/NAME`). Commands run through
/// `ip netns exec NAME`; files are this machine's (a namespace shares the filesystem).
#[derive(Debug, Clone)]
pub struct Netns {
    name: String,
    local: Local,
}

impl Netns {
    /// `host` names the lab host for messages; `name` is the namespace.
    pub fn new(host: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            local: Local::new(host),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn wrap(&self, cmd: &Command) -> Command {
        in_netns(&self.name, cmd)
    }
}

/// `cmd` run in namespace `ns` (`ip netns exec NS ...`), its other settings kept.
fn in_netns(ns: &str, cmd: &Command) -> Command {
    let mut argv = vec![
        "ip".to_string(),
        "netns".into(),
        "exec".into(),
        ns.to_string(),
    ];
    argv.extend(cmd.argv.iter().cloned());
    Command {
        argv,
        timeout: cmd.timeout,
        stdin: cmd.stdin.clone(),
        retry_safe: cmd.retry_safe,
        cancellable: cmd.cancellable,
    }
}

/// What a shell answers for a program it cannot run, with its words: 127 when it is not
/// found (on PATH, or at the path given), 126 when it is there but not executable. A
/// namespace shares this machine's files, so this is checked here before `ip netns exec`,
/// which would say "exec of ... failed" and exit 1.
pub fn unrunnable(program: &str) -> Option<(i32, String)> {
    use std::os::unix::fs::PermissionsExt as _;
    let runnable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = Path::new(program);
        return if !p.exists() {
            Some((127, format!("{program}: No such file or directory")))
        } else if runnable(p) {
            None
        } else {
            Some((126, format!("{program}: Permission denied")))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found: Vec<std::path::PathBuf> = std::env::split_paths(&path)
        .map(|d| d.join(program))
        .filter(|p| p.exists())
        .collect();
    if found.iter().any(|p| runnable(p)) {
        None
    } else if found.is_empty() {
        Some((127, format!("{program}: command not found")))
    } else {
        Some((126, format!("{program}: Permission denied")))
    }
}

impl Exec for Netns {
    fn host(&self) -> &str {
        self.local.host()
    }

    fn run(&self, cmd: &Command) -> Result<Output, Error> {
        if let Some((code, why)) = cmd.argv.first().and_then(|p| unrunnable(p)) {
            return Ok(Output {
                status: Status::Code(code),
                stdout: Vec::new(),
                stderr: format!("{why}\n").into_bytes(),
            });
        }
        self.local.run(&self.wrap(cmd))
    }

    fn run_streaming(
        &self,
        cmd: &Command,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<Status, Error> {
        if let Some((code, why)) = cmd.argv.first().and_then(|p| unrunnable(p)) {
            on_line(Stream::Stderr, &why);
            return Ok(Status::Code(code));
        }
        self.local.run_streaming(&self.wrap(cmd), on_line)
    }

    fn put_file(&self, path: &Path, contents: &[u8], mode: FileMode) -> Result<(), Error> {
        self.local.put_file(path, contents, mode)
    }

    fn get_file(&self, path: &Path) -> Result<Vec<u8>, Error> {
        self.local.get_file(path)
    }
}

/// Replace this process with `argv` (an interactive `ssh`, as `vagrant ssh` does). Returns
/// only on failure.
pub fn replace_process(argv: &[String]) -> std::io::Error {
    use std::os::unix::process::CommandExt as _;
    let Some((program, args)) = argv.split_first() else {
        return std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command");
    };
    std::process::Command::new(program).args(args).exec()
}

/// A network namespace on a machine reached through another command seam (`ip netns exec NS`
/// before every command, run by `inner`; files are the machine's, shared by its namespaces).
#[derive(Debug)]
pub struct InNetns<E> {
    inner: E,
    ns: String,
    host: String,
}

impl<E: Exec> InNetns<E> {
    /// `host` names the lab host for messages; `ns` is the namespace on `inner`'s machine.
    pub fn new(host: impl Into<String>, inner: E, ns: impl Into<String>) -> Self {
        Self {
            inner,
            ns: ns.into(),
            host: host.into(),
        }
    }

    fn wrap(&self, cmd: &Command) -> Command {
        in_netns(&self.ns, cmd)
    }
}

impl<E: Exec> Exec for InNetns<E> {
    fn host(&self) -> &str {
        &self.host
    }

    fn run(&self, cmd: &Command) -> Result<Output, Error> {
        self.inner.run(&self.wrap(cmd))
    }

    fn run_streaming(
        &self,
        cmd: &Command,
        on_line: &mut dyn FnMut(crate::Stream, &str),
    ) -> Result<crate::Status, Error> {
        self.inner.run_streaming(&self.wrap(cmd), on_line)
    }

    fn run_bytes(
        &self,
        cmd: &Command,
        sink: &mut dyn FnMut(crate::Stream, &[u8]),
    ) -> Result<crate::Status, Error> {
        self.inner.run_bytes(&self.wrap(cmd), sink)
    }

    fn put_file(&self, path: &Path, contents: &[u8], mode: FileMode) -> Result<(), Error> {
        self.inner.put_file(path, contents, mode)
    }

    fn get_file(&self, path: &Path) -> Result<Vec<u8>, Error> {
        self.inner.get_file(path)
    }
}
