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

    /// Parse the preset. The presets are tested to load; the error type is the parser's.
    pub fn load(self) -> Result<Lab, LoadError> {
        parse(&format!("<preset {}>", self.name()), self.source())
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
