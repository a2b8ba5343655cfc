//! Labs that ship with lab: the built-in lab (the guide's testbed, done right) and the guide's
//! settings verbatim.

use crate::load::{LoadError, parse};
use crate::model::Lab;

/// A lab that ships with lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preset {
    /// The guide's topology with correct MPTCP settings derived by lab. `lab init` writes it.
    #[default]
    Builtin,
    /// The same topology with the guide's path-manager settings verbatim.
    Guide,
}

impl Preset {
    pub const ALL: [Preset; 2] = [Preset::Builtin, Preset::Guide];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Builtin => "builtin",
            Preset::Guide => "guide",
        }
    }

    /// The preset's Lab.toml text.
    pub fn source(self) -> &'static str {
        match self {
            Preset::Builtin => include_str!("../presets/builtin.toml"),
            Preset::Guide => include_str!("../presets/guide.toml"),
        }
    }

    /// The preset's Lab.toml text with `[lab] name` set to `name` (comments kept), as
    /// `lab init` writes it: each directory's lab gets its own name, so two labs made by
    /// `lab init` in two directories run side by side. `name` must be a valid lab name.
    ///
    /// ```
    /// let text = model::Preset::Builtin.source_named("exp-1");
    /// assert_eq!(model::load::parse("Lab.toml", &text).unwrap().name, "exp-1");
    /// ```
    pub fn source_named(self, name: &str) -> String {
        let mut in_lab = false;
        let mut done = false;
        let mut out = String::with_capacity(self.source().len() + name.len());
        for line in self.source().split_inclusive('\n') {
            let t = line.trim_start();
            if t.starts_with('[') {
                in_lab = t.starts_with("[lab]");
            }
            if in_lab && !done && t.starts_with("name") && t.contains('=') {
                out.push_str(&format!("name = \"{name}\"\n"));
                done = true;
            } else {
                out.push_str(line);
            }
        }
        out
    }

    /// Parse the preset. The presets are tested to load; the error type is the parser's.
    pub fn load(self) -> Result<Lab, LoadError> {
        parse(&format!("<preset {}>", self.name()), self.source())
    }
}

/// A valid lab name made from a directory's name: characters outside `[A-Za-z0-9_-]` become
/// `-`, leading ones that are not a letter or digit are dropped, at most 32 are kept; `lab`
/// when nothing is left.
///
/// ```
/// assert_eq!(model::presets::lab_name_for("My Lab (2)"), "My-Lab--2-");
/// assert_eq!(model::presets::lab_name_for("..."), "lab");
/// ```
pub fn lab_name_for(dir_name: &str) -> String {
    let name: String = dir_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(32)
        .collect();
    if name.is_empty() {
        "lab".to_string()
    } else {
        name
    }
}

impl std::str::FromStr for Preset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown preset `{s}` (known: builtin, guide)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_named_preset_differs_only_in_its_name() {
        for p in Preset::ALL {
            let text = p.source_named("exp_2");
            let lab = parse("Lab.toml", &text).unwrap();
            assert_eq!(lab.name, "exp_2");
            let mut want = p.load().unwrap();
            want.name = "exp_2".into();
            assert_eq!(format!("{lab:?}"), format!("{want:?}"));
            let changed: Vec<_> = p
                .source()
                .lines()
                .zip(text.lines())
                .filter(|(a, b)| a != b)
                .collect();
            assert_eq!(changed.len(), 1, "{changed:?}");
            assert_eq!(p.source().lines().count(), text.lines().count());
        }
    }

    proptest! {
        #[test]
        fn any_directory_name_gives_a_valid_lab_name(dir in "\\PC{0,60}") {
            let name = lab_name_for(&dir);
            let text = Preset::Builtin.source_named(&name);
            prop_assert_eq!(parse("Lab.toml", &text).map(|l| l.name).ok(), Some(name));
        }
    }
}
