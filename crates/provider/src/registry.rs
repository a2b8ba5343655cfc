//! Providers by name.

use std::collections::BTreeMap;

use crate::{Error, Provider};

/// The providers a session knows, by name. Lab's own register themselves through the `lab`
/// crate's default registry; a program adds its own with [`Registry::register`].
#[derive(Debug, Default)]
pub struct Registry {
    providers: BTreeMap<String, Box<dyn Provider>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a provider; one of the same name is replaced (and returned).
    pub fn register(&mut self, p: Box<dyn Provider>) -> Option<Box<dyn Provider>> {
        self.providers.insert(p.name().to_string(), p)
    }

    /// A provider by name.
    pub fn get(&self, name: &str) -> Option<&dyn Provider> {
        self.providers.get(name).map(AsRef::as_ref)
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }

    /// The provider `host` names, or an error listing the known ones.
    pub fn for_host(&self, host: &model::Host) -> Result<&dyn Provider, Error> {
        self.get(host.provider.as_str())
            .ok_or_else(|| Error::UnknownProvider {
                host: host.name.clone(),
                provider: host.provider.to_string(),
                known: self.names().join(", "),
            })
    }

    /// Every provider, by name.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Provider> {
        self.providers.values().map(AsRef::as_ref)
    }
}
