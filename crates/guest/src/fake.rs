//! A scripted host for unit tests: it answers the commands it was told to expect, in order, and
//! fails on anything else.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::{Command, Error, Exec, FileMode, Output, Status, Stream};

/// A scripted [`Exec`]. Expectations are consumed in order; a command that is not the next
/// expected one is [`Error::Unexpected`]. Files live in memory. Call [`Fake::finish`] at the end
/// of a test to fail on expectations that were never met.
#[derive(Debug)]
pub struct Fake {
    host: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    expected: VecDeque<(Vec<String>, Output)>,
    files: BTreeMap<PathBuf, (Vec<u8>, FileMode)>,
    ran: Vec<Vec<String>>,
}

impl Fake {
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Expect `argv` next, and answer it with `output`.
    pub fn expect<S: AsRef<str>>(self, argv: &[S], output: Output) -> Self {
        let argv = argv.iter().map(|s| s.as_ref().to_string()).collect();
        self.state().expected.push_back((argv, output));
        self
    }

    /// Seed a file that [`Exec::get_file`] will return.
    pub fn with_file(self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        self.state()
            .files
            .insert(path.into(), (contents.into(), FileMode::mode(0o644)));
        self
    }

    /// A file as written by [`Exec::put_file`], with its mode.
    pub fn file(&self, path: &Path) -> Option<(Vec<u8>, FileMode)> {
        self.state().files.get(path).cloned()
    }

    /// Every argv run so far, in order.
    pub fn ran(&self) -> Vec<Vec<String>> {
        self.state().ran.clone()
    }

    /// `Ok` when every expected command was run; otherwise the ones that were not.
    pub fn finish(&self) -> Result<(), Vec<Vec<String>>> {
        let left: Vec<Vec<String>> = self
            .state()
            .expected
            .iter()
            .map(|(a, _)| a.clone())
            .collect();
        if left.is_empty() { Ok(()) } else { Err(left) }
    }
}

impl Exec for Fake {
    fn host(&self) -> &str {
        &self.host
    }

    fn run(&self, cmd: &Command) -> Result<Output, Error> {
        let mut st = self.state();
        let unexpected = |expected: String| Error::Unexpected {
            host: self.host.clone(),
            argv: cmd.argv.clone(),
            expected,
        };
        match st.expected.front() {
            Some((argv, _)) if *argv == cmd.argv => {
                st.ran.push(cmd.argv.clone());
                Ok(st
                    .expected
                    .pop_front()
                    .map(|(_, o)| o)
                    .unwrap_or_else(|| Output::ok("")))
            }
            Some((argv, _)) => Err(unexpected(format!("expected `{}`", argv.join(" ")))),
            None => Err(unexpected("no more commands were expected".into())),
        }
    }

    fn run_streaming(
        &self,
        cmd: &Command,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<Status, Error> {
        let out = self.run(cmd)?;
        for line in out.stdout_lossy().lines() {
            on_line(Stream::Stdout, line);
        }
        for line in out.stderr_lossy().lines() {
            on_line(Stream::Stderr, line);
        }
        Ok(out.status)
    }

    fn put_file(&self, path: &Path, contents: &[u8], mode: FileMode) -> Result<(), Error> {
        self.state()
            .files
            .insert(path.to_path_buf(), (contents.to_vec(), mode));
        Ok(())
    }

    fn get_file(&self, path: &Path) -> Result<Vec<u8>, Error> {
        self.state()
            .files
            .get(path)
            .map(|(c, _)| c.clone())
            .ok_or_else(|| Error::File {
                host: self.host.clone(),
                op: "read",
                path: path.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })
    }
}
