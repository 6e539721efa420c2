//! Accounts: the probe's `passwd` and `group` sections, read once into maps that the
//! `user` and `group` resources look their names up in. The probe asks for every account
//! of the catalog with ONE `getent passwd` and ONE keyed `getent group` (see
//! `ProbeBuilder::finish`): a user's supplementary groups and primary group name, which
//! `id -Gn` used to give per user, come from the member lists and gids of that group read.
//! `getent` prints nothing for a name that does not exist, so a name missing from a map
//! is an account the node does not have.

use std::collections::HashMap;

use crate::fact::{FactError, Section};

/// One `passwd` entry (`name:password:uid:gid:gecos:home:shell`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// The whole line, as `getent` printed it.
    pub line: String,
    pub uid: String,
    pub gid: String,
    pub home: String,
    pub shell: String,
}

/// One `group` entry (`name:password:gid:member,member`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// The whole line, as `getent` printed it.
    pub line: String,
    pub gid: String,
    pub members: Vec<String>,
}

/// The accounts one probe read: only those the catalog names (and users' primary groups).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    users: HashMap<String, PasswdEntry>,
    groups: HashMap<String, GroupEntry>,
    /// Group name by gid, from the first entry printed with that gid: the probe asks for
    /// gids before names, so that is what `getgrgid` (and so `id`) answers for it.
    by_gid: HashMap<String, String>,
}

impl Accounts {
    pub fn user(&self, name: &str) -> Option<&PasswdEntry> {
        self.users.get(name)
    }

    pub fn group(&self, name: &str) -> Option<&GroupEntry> {
        self.groups.get(name)
    }

    /// The name of `user`'s primary group; its gid when no group has it (as `id -Gn`
    /// prints it then).
    pub fn primary_group(&self, user: &PasswdEntry) -> String {
        self.by_gid
            .get(&user.gid)
            .cloned()
            .unwrap_or_else(|| user.gid.clone())
    }

    /// The groups `name` is in among those read, as `id -Gn` lists them: the primary
    /// group first, then every read group naming the user as a member (sorted). `None`
    /// when the user does not exist.
    pub fn groups_of(&self, name: &str) -> Option<Vec<String>> {
        let user = self.users.get(name)?;
        let primary = self.primary_group(user);
        let mut supplementary: Vec<&str> = self
            .groups
            .iter()
            .filter(|(group, entry)| **group != primary && entry.members.iter().any(|m| m == name))
            .map(|(group, _)| group.as_str())
            .collect();
        supplementary.sort_unstable();
        let mut all = vec![primary.clone()];
        all.extend(supplementary.into_iter().map(str::to_string));
        Some(all)
    }

    /// The `passwd` section: `getent passwd` lines. The first four fields are fixed and
    /// home and shell are the last two, so a GECOS field an NSS backend let a `:` into
    /// does not shift them.
    pub(crate) fn parse_passwd(&mut self, body: &[u8]) -> Result<(), FactError> {
        for line in String::from_utf8_lossy(body).lines() {
            if line.is_empty() {
                continue;
            }
            let head: Vec<&str> = line.splitn(5, ':').collect();
            let [name, _, uid, gid, rest] = head[..] else {
                return Err(malformed(Section::Passwd, line, 7));
            };
            let mut tail = rest.rsplitn(3, ':');
            let (Some(shell), Some(home), Some(_gecos)) = (tail.next(), tail.next(), tail.next())
            else {
                return Err(malformed(Section::Passwd, line, 7));
            };
            self.users.insert(
                name.to_string(),
                PasswdEntry {
                    line: line.to_string(),
                    uid: uid.to_string(),
                    gid: gid.to_string(),
                    home: home.to_string(),
                    shell: shell.to_string(),
                },
            );
        }
        Ok(())
    }

    /// The `group` section: `getent group` lines, gid queries first (see `by_gid`).
    pub(crate) fn parse_group(&mut self, body: &[u8]) -> Result<(), FactError> {
        for line in String::from_utf8_lossy(body).lines() {
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.splitn(4, ':').collect();
            let [name, _, gid, members] = fields[..] else {
                return Err(malformed(Section::Group, line, 4));
            };
            self.by_gid
                .entry(gid.to_string())
                .or_insert_with(|| name.to_string());
            self.groups.insert(
                name.to_string(),
                GroupEntry {
                    line: line.to_string(),
                    gid: gid.to_string(),
                    members: members
                        .split(',')
                        .filter(|m| !m.is_empty())
                        .map(str::to_string)
                        .collect(),
                },
            );
        }
        Ok(())
    }
}

fn malformed(section: Section, line: &str, fields: usize) -> FactError {
    FactError::Malformed {
        section: section.to_string(),
        reason: format!(
            "line `{}` does not have {fields} `:`-separated fields",
            line.escape_debug()
        ),
    }
}

#[cfg(test)]
#[path = "accounts_tests.rs"]
mod tests;
