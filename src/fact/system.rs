//! Facts no resource manages but identical nodes must share, read only by `tandem drift`
//! (in its one probe round trip): the OS release (`ID` and `VERSION_ID` of
//! `/etc/os-release`) and the kernel release (`uname -r`, read from
//! `/proc/sys/kernel/osrelease`). Shell builtins only: no process.

use serde::Serialize;

use crate::fact::protocol::Section;

/// What the `system` section held; `None` for what the node did not say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SystemFacts {
    pub os_id: Option<String>,
    pub os_version: Option<String>,
    pub kernel: Option<String>,
}

/// Probe shell printing the `system` section.
pub fn probe_shell() -> String {
    format!(
        "{}\nif [ -r /etc/os-release ]; then while IFS='=' read -r k v || [ -n \"$k\" ]; do \
         case $k in ID|VERSION_ID) printf '%s=%s\\n' \"$k\" \"$v\";; esac; done < /etc/os-release; fi\n\
         if [ -r /proc/sys/kernel/osrelease ]; then read -r K < /proc/sys/kernel/osrelease; \
         printf 'kernel=%s\\n' \"$K\"; fi\n",
        Section::System.emit()
    )
}

/// Parses the section's `KEY=value` lines (os-release values may be quoted).
pub fn parse(body: &[u8]) -> SystemFacts {
    let mut facts = SystemFacts::default();
    for line in String::from_utf8_lossy(body).lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value)
            .to_string();
        match key {
            "ID" => facts.os_id = Some(value),
            "VERSION_ID" => facts.os_version = Some(value),
            "kernel" => facts.kernel = Some(value),
            _ => {}
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fact::protocol::{preamble, split, Token};

    #[test]
    fn reads_os_release_and_kernel_through_a_real_shell() {
        let token = Token::fixed("TOK");
        let script = format!("{}{}", preamble(&token), probe_shell());
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        let sections = split(&out.stdout, &token);
        assert_eq!(sections[0].0, Section::System);
        let facts = parse(sections[0].1);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(facts.kernel.as_deref(), Some(kernel.trim()));
        assert!(facts.os_id.is_some(), "{facts:?}");
    }

    #[test]
    fn quotes_are_stripped() {
        let f = parse(b"ID=debian\nVERSION_ID=\"12\"\nkernel=6.1.0-1\nNAME=x\n");
        assert_eq!(f.os_id.as_deref(), Some("debian"));
        assert_eq!(f.os_version.as_deref(), Some("12"));
        assert_eq!(f.kernel.as_deref(), Some("6.1.0-1"));
    }
}
