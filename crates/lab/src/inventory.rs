//! An Ansible inventory of the lab's SSH-reachable hosts (`lab inventory`), for people who
//! configure their testbeds with Ansible: each host's address, port, user, key, the lab's
//! known_hosts (strict, as `lab ssh-config`), `become` where lab itself uses sudo, and the
//! host's role and provider as variables. Pure renderings of [`Inventory`]: INI and YAML.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

/// One host Ansible can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryHost {
    /// The host's name in Lab.toml.
    pub name: String,
    /// `server` or `client`.
    pub role: String,
    /// The provider that made it.
    pub provider: String,
    /// Where SSH connects.
    pub address: String,
    /// SSH's port.
    pub port: u16,
    /// The login user.
    pub user: String,
    /// The private key (`None`: the user's ssh-agent).
    pub key: Option<PathBuf>,
    /// The lab's known_hosts file, checked strictly.
    pub known_hosts: PathBuf,
    /// lab runs commands through `sudo -n` on it (a user other than root).
    pub sudo: bool,
    /// More OpenSSH options it needs (`HostKeyAlias`, and a jump's `ProxyCommand`).
    pub options: Vec<(String, String)>,
}

/// The lab's hosts as Ansible sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inventory {
    /// The lab's name.
    pub lab: String,
    /// The SSH-reachable hosts, in Lab.toml order.
    pub hosts: Vec<InventoryHost>,
    /// Hosts left out, with why (namespaces have no SSH server).
    pub skipped: Vec<(String, String)>,
}

impl Inventory {
    /// The group every host is in: `lab_<name>`, with what Ansible does not allow in a group
    /// name (`-`) as `_`.
    ///
    /// ```
    /// let i = lab::inventory::Inventory { lab: "my-lab".into(), hosts: vec![], skipped: vec![] };
    /// assert_eq!(i.group(), "lab_my_lab");
    /// ```
    pub fn group(&self) -> String {
        let body: String = self
            .lab
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("lab_{body}")
    }

    /// Each host's variables, in a fixed order.
    fn vars(h: &InventoryHost) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("ansible_host", h.address.clone()),
            ("ansible_port", h.port.to_string()),
            ("ansible_user", h.user.clone()),
        ];
        if let Some(k) = &h.key {
            v.push(("ansible_ssh_private_key_file", k.display().to_string()));
        }
        let mut args = format!(
            "-o {} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
            net::shell::quote(&format!("UserKnownHostsFile={}", h.known_hosts.display()))
        );
        for (k, val) in &h.options {
            args.push_str(&format!(" -o {}", net::shell::quote(&format!("{k}={val}"))));
        }
        v.push(("ansible_ssh_common_args", args));
        if h.sudo {
            v.push(("ansible_become", "true".into()));
        }
        v.push(("lab_role", h.role.clone()));
        v.push(("lab_provider", h.provider.clone()));
        v
    }

    /// Ansible's INI format: one group, a line per host with its variables (values quoted as
    /// Ansible's shlex-based parser reads them).
    pub fn ini(&self) -> String {
        let mut out = format!(
            "# lab `{}`: `ansible -i THIS_FILE {} -m ping`\n[{}]\n",
            self.lab,
            self.group(),
            self.group()
        );
        for h in &self.hosts {
            out.push_str(&h.name);
            for (k, v) in Self::vars(h) {
                out.push(' ');
                out.push_str(k);
                out.push('=');
                out.push_str(&net::shell::quote(&v));
            }
            out.push('\n');
        }
        for (host, why) in &self.skipped {
            out.push_str(&format!("# {host}: left out: {why}\n"));
        }
        out
    }

    /// Ansible's YAML format: `all: children: lab_NAME: hosts: ...`.
    pub fn yaml(&self) -> String {
        let hosts: BTreeMap<String, BTreeMap<&'static str, serde_yaml_value::Value>> = self
            .hosts
            .iter()
            .map(|h| {
                let vars = Self::vars(h)
                    .into_iter()
                    .map(|(k, v)| {
                        let value = match k {
                            "ansible_port" => serde_yaml_value::Value::Int(u64::from(h.port)),
                            "ansible_become" => serde_yaml_value::Value::Bool(true),
                            _ => serde_yaml_value::Value::Str(v),
                        };
                        (k, value)
                    })
                    .collect();
                (h.name.clone(), vars)
            })
            .collect();
        let doc = BTreeMap::from([(
            "all",
            BTreeMap::from([(
                "children",
                BTreeMap::from([(self.group(), BTreeMap::from([("hosts", hosts)]))]),
            )]),
        )]);
        let mut out = format!("# lab `{}`\n", self.lab);
        out.push_str(&serde_saphyr::to_string(&doc).unwrap_or_default());
        for (host, why) in &self.skipped {
            out.push_str(&format!("# {host}: left out: {why}\n"));
        }
        out
    }
}

/// A YAML scalar of one of the kinds an inventory holds.
mod serde_yaml_value {
    use serde::Serialize;

    /// A YAML scalar of one of the kinds an inventory holds.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
    #[serde(untagged)]
    pub enum Value {
        /// A string.
        Str(String),
        /// A port.
        Int(u64),
        /// A flag.
        Bool(bool),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Inventory {
        Inventory {
            lab: "mptcp".into(),
            hosts: vec![InventoryHost {
                name: "ue1".into(),
                role: "server".into(),
                provider: "qemu".into(),
                address: "127.0.0.1".into(),
                port: 42301,
                user: "student".into(),
                key: Some("/home/s/my lab/.lab/id_ed25519".into()),
                known_hosts: "/home/s/my lab/.lab/known_hosts".into(),
                sudo: true,
                options: vec![],
            }, InventoryHost {
                name: "ue3".into(),
                role: "client".into(),
                provider: "libvirt".into(),
                address: "127.0.0.1".into(),
                port: 42401,
                user: "root".into(),
                key: Some("/home/s/lab/.lab/id_ed25519".into()),
                known_hosts: "/home/s/lab/.lab/known_hosts".into(),
                sudo: false,
                options: vec![
                    ("HostKeyAlias".into(), "lab-mptcp-ue3".into()),
                    ("ProxyCommand".into(), "ssh -o Port=22 -o 'IdentityFile=/home/s/lab/.lab/id_ed25519' -W %h:%p m1.example".into()),
                ],
            }],
            skipped: vec![("ue2".into(), "a network namespace".into())],
        }
    }

    #[test]
    fn ini_and_yaml() {
        insta::assert_snapshot!("inventory.ini", inv().ini());
        insta::assert_snapshot!("inventory.yaml", inv().yaml());
    }
}
