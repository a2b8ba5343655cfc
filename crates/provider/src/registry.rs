//! Providers by name.

use std::collections::BTreeMap;

use crate::{Error, Provider};

/// The providers a session knows, by name. Lab's own register themselves through the `lab`
/// crate's default registry; a program adds its own with [`Registry::register`].
///
/// ```
/// let r = provider::Registry::new();
/// assert!(r.names().is_empty() && r.get("netns").is_none());
/// ```
#[derive(Debug, Default)]
pub struct Registry {
    providers: BTreeMap<String, Box<dyn Provider>>,
}

impl Registry {
    /// An empty registry.
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, _: &Ctx<'_>) -> Result<Vec<HostState>, Error> { Ok(Vec::new()) }
    /// # }
    /// let mut r = provider::Registry::new();
    /// r.register(Box::new(Rack));
    /// assert_eq!(r.names(), ["rack"]);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a provider; one of the same name is replaced (and returned).
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, _: &Ctx<'_>) -> Result<Vec<HostState>, Error> { Ok(Vec::new()) }
    /// # }
    /// let mut r = provider::Registry::new();
    /// r.register(Box::new(Rack));
    /// assert!(r.register(Box::new(Rack)).is_some(), "the one it replaced");
    /// ```
    pub fn register(&mut self, p: Box<dyn Provider>) -> Option<Box<dyn Provider>> {
        self.providers.insert(p.name().to_string(), p)
    }

    /// A provider by name.
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, _: &Ctx<'_>) -> Result<Vec<HostState>, Error> { Ok(Vec::new()) }
    /// # }
    /// let mut r = provider::Registry::new();
    /// r.register(Box::new(Rack));
    /// assert_eq!(r.get("rack").map(|p| p.name()), Some("rack"));
    /// ```
    pub fn get(&self, name: &str) -> Option<&dyn Provider> {
        self.providers.get(name).map(AsRef::as_ref)
    }

    /// The names, sorted.
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, _: &Ctx<'_>) -> Result<Vec<HostState>, Error> { Ok(Vec::new()) }
    /// # }
    /// let mut r = provider::Registry::new();
    /// r.register(Box::new(Rack));
    /// assert_eq!(r.names(), ["rack"]);
    /// ```
    pub fn names(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }

    /// The provider `host` names, or an error listing the known ones.
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, _: &Ctx<'_>) -> Result<Vec<HostState>, Error> { Ok(Vec::new()) }
    /// # }
    /// let mut r = provider::Registry::new();
    /// r.register(Box::new(Rack));
    /// let lab = model::Preset::Builtin.load().unwrap(); // its hosts are on netns
    /// let e = r.for_host(&lab.hosts[0]).unwrap_err();
    /// assert!(e.to_string().contains("provider \"netns\", which is not registered (known: rack)"));
    /// ```
    pub fn for_host(&self, host: &model::Host) -> Result<&dyn Provider, Error> {
        self.get(host.provider.as_str())
            .ok_or_else(|| Error::UnknownProvider {
                host: host.name.clone(),
                provider: host.provider.to_string(),
                known: self.names().join(", "),
            })
    }

    /// Every provider, by name.
    ///
    /// ```
    /// # use provider::{Ctx, Error, HostState, Provider};
    /// # #[derive(Debug)]
    /// # struct Rack;
    /// # impl Provider for Rack {
    /// #     fn name(&self) -> &str { "rack" }
    /// #     fn status(&self, _: &Ctx<'_>) -> Result<Vec<HostState>, Error> { Ok(Vec::new()) }
    /// # }
    /// let mut r = provider::Registry::new();
    /// r.register(Box::new(Rack));
    /// assert_eq!(r.iter().count(), 1);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = &dyn Provider> {
        self.providers.values().map(AsRef::as_ref)
    }
}
