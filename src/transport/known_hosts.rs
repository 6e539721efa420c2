//! tandem's own known_hosts file, in OpenSSH format, and the host keys checked against
//! it. A node's key is verified before any authentication; a key that is unknown,
//! changed or revoked gets no command. Keys enter the file only through `tandem trust`.
//!
//! Supported: plain entries (`host`, `[host]:port`, comma-separated names), key types
//! ed25519, ecdsa and rsa, `@revoked` markers and comments. Hashed entries (`|1|...`)
//! and wildcard patterns are skipped, so a host listed only that way reads as unknown:
//! the safe failure, never a silent trust.
//!
//! Every line tandem writes is built by `pin_line` from checked parts (an address or
//! host name, a port, a supported key type with a blob of that type, a node name as the
//! comment), never by pasting raw strings: a name holding a newline could otherwise pin
//! an attacker's key for another host.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::node::{check_address, NodeName};

/// Key types tandem accepts, most preferred first (the order host keys are negotiated).
pub const KEY_TYPES: [&str; 5] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
];

#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    #[error("cannot read known hosts `{path}`: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot write known hosts `{path}`: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("refusing to write to known hosts `{path}`: {reason}")]
    Refused { path: PathBuf, reason: String },
}

/// A host's public key: its type (`ssh-ed25519`) and its wire-format blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    pub kind: String,
    pub blob: Vec<u8>,
}

impl HostKey {
    /// The fingerprint as `ssh-keygen -l` prints it: `SHA256:` and unpadded base64.
    pub fn fingerprint(&self) -> String {
        format!(
            "SHA256:{}",
            STANDARD_NO_PAD.encode(Sha256::digest(&self.blob))
        )
    }

    /// The key as a known_hosts line would carry it: `type base64`.
    pub fn to_openssh(&self) -> String {
        format!("{} {}", self.kind, STANDARD.encode(&self.blob))
    }
}

/// What the file says about the key a host presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key is pinned for this host.
    Trusted,
    /// Nothing is pinned for this host.
    Unknown,
    /// Other keys are pinned for this host: possibly an attack, possibly a rebuild.
    Changed { pinned: Vec<String> },
    /// The key is marked `@revoked`.
    Revoked,
}

#[derive(Debug, Clone)]
struct Entry {
    names: Vec<String>,
    key: HostKey,
    revoked: bool,
}

/// The parsed file; a missing file is an empty one.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
    entries: Vec<Entry>,
}

/// The name a host is filed under: `host` on port 22, `[host]:port` otherwise, as
/// OpenSSH does.
pub fn host_name(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_string()
    } else {
        format!("[{address}]:{port}")
    }
}

impl KnownHosts {
    pub fn load(path: &Path) -> Result<Self, KnownHostsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => {
                return Err(KnownHostsError::Read {
                    path: path.to_path_buf(),
                    reason: err.to_string(),
                })
            }
        };
        Self::parse(path, &text)
    }

    /// Parses `text` as the content of `path` (which only names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, KnownHostsError> {
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let invalid = |message: String| KnownHostsError::Invalid {
                path: path.to_path_buf(),
                line: index + 1,
                message,
            };
            let mut fields = line.split_whitespace();
            let Some(mut first) = fields.next() else {
                continue;
            };
            if first.starts_with('#') {
                continue;
            }
            let mut revoked = false;
            if let Some(marker) = first.strip_prefix('@') {
                match marker {
                    "revoked" => revoked = true,
                    // Certificate authorities are not used by tandem; skip the line.
                    "cert-authority" => continue,
                    other => return Err(invalid(format!("unknown marker `@{other}`"))),
                }
                first = fields
                    .next()
                    .ok_or_else(|| invalid("missing host names".into()))?;
            }
            let kind = fields
                .next()
                .ok_or_else(|| invalid("missing key type".into()))?;
            let encoded = fields.next().ok_or_else(|| invalid("missing key".into()))?;
            let blob = STANDARD
                .decode(encoded)
                .map_err(|err| invalid(format!("key is not base64: {err}")))?;
            if !blob_has_type(&blob, kind) {
                return Err(invalid(format!("key does not match its type `{kind}`")));
            }
            let names: Vec<String> = first
                .split(',')
                .filter(|name| !name.starts_with('|') && !name.contains(['*', '?', '!']))
                .map(str::to_string)
                .collect();
            if names.is_empty() {
                continue;
            }
            entries.push(Entry {
                names,
                key: HostKey {
                    kind: kind.to_string(),
                    blob,
                },
                revoked,
            });
        }
        Ok(KnownHosts {
            path: path.to_path_buf(),
            entries,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn for_host<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |entry| entry.names.iter().any(|n| n == name))
    }

    /// Checks the key `address:port` presented.
    pub fn check(&self, address: &str, port: u16, key: &HostKey) -> Verdict {
        let name = host_name(address, port);
        if self.for_host(&name).any(|e| e.revoked && e.key == *key) {
            return Verdict::Revoked;
        }
        let pinned: Vec<&Entry> = self.for_host(&name).filter(|e| !e.revoked).collect();
        if pinned.iter().any(|e| e.key == *key) {
            Verdict::Trusted
        } else if pinned.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Changed {
                pinned: pinned.iter().map(|e| e.key.fingerprint()).collect(),
            }
        }
    }

    /// The key types pinned for a host, in tandem's preference order; the key
    /// exchange asks for these first so that the server presents a key we can check.
    pub fn pinned_types(&self, address: &str, port: u16) -> Vec<&'static str> {
        let name = host_name(address, port);
        KEY_TYPES
            .into_iter()
            .filter(|kind| {
                self.for_host(&name)
                    .any(|e| !e.revoked && e.key.kind == *kind)
            })
            .collect()
    }

    /// Appends a pin for `address:port` to the file (created with its directory when
    /// missing) and to this in-memory copy. `comment` (the node name) helps a reader.
    pub fn append(
        &mut self,
        address: &str,
        port: u16,
        key: &HostKey,
        comment: &NodeName,
    ) -> Result<(), KnownHostsError> {
        let line = self.pin_line(address, port, key, comment)?;
        let write_error = |err: std::io::Error| KnownHostsError::Write {
            path: self.path.clone(),
            reason: err.to_string(),
        };
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(write_error)?;
        let name = host_name(address, port);
        file.write_all(line.as_bytes()).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        self.entries.push(Entry {
            names: vec![name],
            key: key.clone(),
            revoked: false,
        });
        Ok(())
    }
}

impl KnownHosts {
    /// Replaces every pin for `address:port` with `key` (`tandem trust --replace`, after
    /// a rebuild). Lines naming the host are dropped whole; `@revoked` lines and other
    /// hosts stay. The file is rewritten atomically (temporary file, fsync, rename).
    pub fn replace(
        &mut self,
        address: &str,
        port: u16,
        key: &HostKey,
        comment: &NodeName,
    ) -> Result<(), KnownHostsError> {
        let pin = self.pin_line(address, port, key, comment)?;
        let write_error = |err: std::io::Error| KnownHostsError::Write {
            path: self.path.clone(),
            reason: err.to_string(),
        };
        let name = host_name(address, port);
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => return Err(write_error(err)),
        };
        let mut kept = String::new();
        for line in text.lines() {
            let names = line.split_whitespace().next().unwrap_or("");
            let pins_host = !names.starts_with(['#', '@']) && names.split(',').any(|n| n == name);
            if !pins_host {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        kept.push_str(&pin);
        let mut staged = self.path.clone().into_os_string();
        staged.push(".tandem-new");
        let staged = PathBuf::from(staged);
        let mut file = std::fs::File::create(&staged).map_err(write_error)?;
        file.write_all(kept.as_bytes()).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        std::fs::rename(&staged, &self.path).map_err(write_error)?;
        *self = Self::parse(&self.path, &kept)?;
        Ok(())
    }
}

impl KnownHosts {
    /// The one line pinning `key` for `address:port`, newline included, built only
    /// from parts that passed their checks.
    fn pin_line(
        &self,
        address: &str,
        port: u16,
        key: &HostKey,
        comment: &NodeName,
    ) -> Result<String, KnownHostsError> {
        let refused = |reason: String| KnownHostsError::Refused {
            path: self.path.clone(),
            reason,
        };
        check_address(address).map_err(|err| refused(err.to_string()))?;
        if port == 0 {
            return Err(refused("port 0 is not a port".to_string()));
        }
        if !KEY_TYPES.contains(&key.kind.as_str()) {
            return Err(refused(format!(
                "key type `{}` is not one of {}",
                key.kind.escape_debug(),
                KEY_TYPES.join(", ")
            )));
        }
        if !blob_has_type(&key.blob, &key.kind) {
            return Err(refused(format!("the key is not a `{}` key blob", key.kind)));
        }
        // A node name is checked by its type; checked again here because the comment
        // must stay one field of one line whatever constructor made the name.
        if comment
            .as_str()
            .contains(|c: char| c.is_whitespace() || c.is_control())
        {
            return Err(refused(format!(
                "node name `{}` holds whitespace",
                comment.as_str().escape_debug()
            )));
        }
        let line = format!(
            "{} {} {comment}\n",
            host_name(address, port),
            key.to_openssh()
        );
        debug_assert_eq!(line.matches('\n').count(), 1);
        Ok(line)
    }
}

/// A key blob starts with its type as an SSH string (u32 length, then the bytes).
fn blob_has_type(blob: &[u8], kind: &str) -> bool {
    let Some((len, rest)) = blob.split_first_chunk::<4>() else {
        return false;
    };
    let len = u32::from_be_bytes(*len) as usize;
    rest.get(..len) == Some(kind.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: &str, tail: &[u8]) -> HostKey {
        let mut blob = (kind.len() as u32).to_be_bytes().to_vec();
        blob.extend_from_slice(kind.as_bytes());
        blob.extend_from_slice(tail);
        HostKey {
            kind: kind.into(),
            blob,
        }
    }

    fn file(lines: &[String]) -> KnownHosts {
        KnownHosts::parse(Path::new("kh"), &lines.join("\n")).unwrap()
    }

    #[test]
    fn plain_and_bracketed_names() {
        let a = key("ssh-ed25519", b"aaaa");
        let b = key("ssh-ed25519", b"bbbb");
        let kh = file(&[
            "# comment".into(),
            format!("10.0.0.1,fe-1 {} fe-1", a.to_openssh()),
            format!("[127.0.0.1]:2222 {}", b.to_openssh()),
        ]);
        assert_eq!(kh.check("10.0.0.1", 22, &a), Verdict::Trusted);
        assert_eq!(kh.check("fe-1", 22, &a), Verdict::Trusted);
        // A pin for port 22 says nothing about another port.
        assert_eq!(kh.check("10.0.0.1", 2222, &a), Verdict::Unknown);
        assert_eq!(kh.check("127.0.0.1", 2222, &b), Verdict::Trusted);
        assert_eq!(
            kh.check("127.0.0.1", 2222, &a),
            Verdict::Changed {
                pinned: vec![b.fingerprint()]
            }
        );
        assert_eq!(kh.pinned_types("127.0.0.1", 2222), vec!["ssh-ed25519"]);
    }

    #[test]
    fn revoked_hashed_and_broken_lines() {
        let a = key("ssh-rsa", b"rsa");
        let kh = file(&[
            format!("@revoked h {}", a.to_openssh()),
            format!("|1|c2FsdA==|aGFzaA== {}", a.to_openssh()),
        ]);
        assert_eq!(kh.check("h", 22, &a), Verdict::Revoked);
        assert_eq!(kh.check("other", 22, &a), Verdict::Unknown);

        let err = KnownHosts::parse(Path::new("kh"), "\nh ssh-ed25519 !!!").unwrap_err();
        assert!(
            err.to_string().starts_with("kh:2: key is not base64"),
            "{err}"
        );
        let mismatched = format!("h ssh-ed25519 {}", STANDARD.encode(&a.blob));
        let err = KnownHosts::parse(Path::new("kh"), &mismatched).unwrap_err();
        assert!(err.to_string().contains("does not match its type"), "{err}");
    }

    #[test]
    fn fingerprint_is_ssh_keygen_format() {
        // SHA-256 of the empty blob, as `ssh-keygen -l` would render it.
        let empty = HostKey {
            kind: "x".into(),
            blob: Vec::new(),
        };
        assert_eq!(
            empty.fingerprint(),
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[test]
    fn append_creates_and_pins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        let mut kh = KnownHosts::load(&path).unwrap();
        let a = key("ssh-ed25519", b"k");
        assert_eq!(kh.check("127.0.0.1", 2200, &a), Verdict::Unknown);
        let node = |name: &str| NodeName::new(name).unwrap();
        kh.append("127.0.0.1", 2200, &a, &node("node-1")).unwrap();
        let reread = KnownHosts::load(&path).unwrap();
        assert_eq!(reread.check("127.0.0.1", 2200, &a), Verdict::Trusted);

        let b = key("ssh-ed25519", b"new");
        kh.append("other", 22, &a, &node("node-2")).unwrap();
        kh.replace("127.0.0.1", 2200, &b, &node("node-1")).unwrap();
        let reread = KnownHosts::load(&path).unwrap();
        assert_eq!(reread.check("127.0.0.1", 2200, &b), Verdict::Trusted);
        assert_eq!(reread.check("other", 22, &a), Verdict::Trusted);
        assert_eq!(kh.check("127.0.0.1", 2200, &b), Verdict::Trusted);
    }

    #[test]
    fn writes_refuse_what_would_forge_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let mut kh = KnownHosts::load(&path).unwrap();
        let good = key("ssh-ed25519", b"k");
        let name = NodeName::new("n-1").unwrap();
        let refused = |result: Result<(), KnownHostsError>| match result {
            Err(KnownHostsError::Refused { reason, .. }) => reason,
            other => panic!("not refused: {other:?}"),
        };
        // Hostile addresses: a newline that would start a second pin, an option, spaces.
        for address in [
            "10.0.0.1\n10.0.0.2",
            "-oProxyCommand=sh",
            "a b",
            "h,other",
            "",
        ] {
            let reason = refused(kh.append(address, 22, &good, &name));
            assert!(reason.starts_with("address `"), "{reason}");
            assert!(!reason.contains('\n'), "{reason}");
        }
        let reason = refused(kh.append("10.0.0.1", 0, &good, &name));
        assert!(reason.contains("port 0"), "{reason}");
        // A key type outside the supported ones, one with a newline, and a blob of
        // another type.
        let mut odd = key("ssh-dss", b"k");
        assert!(refused(kh.append("h", 22, &odd, &name)).contains("`ssh-dss`"));
        odd.kind = "ssh-ed25519\nh ssh-ed25519".into();
        assert!(refused(kh.append("h", 22, &odd, &name)).contains("\\n"));
        let mismatched = HostKey {
            kind: "ssh-ed25519".into(),
            blob: key("ssh-rsa", b"k").blob,
        };
        assert!(refused(kh.append("h", 22, &mismatched, &name)).contains("key blob"));
        // A stand-in node name holds spaces: never a known_hosts comment.
        let stand_in = NodeName::stand_in(
            &crate::node::RoleName::new("r").unwrap(),
            &crate::node::DatacenterName::new("d").unwrap(),
        );
        assert!(refused(kh.append("h", 22, &good, &stand_in)).contains("whitespace"));
        assert!(refused(kh.replace("h\n", 22, &good, &name)).starts_with("address"));
        // Nothing was written by any of these.
        assert!(!path.exists());

        kh.append("h", 22, &good, &name).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("h {} n-1\n", good.to_openssh())
        );
    }
}
