use super::*;
use crate::fact::{NodeFacts, Token};

/// What one probe prints for users `web` (primary gid 1001, in `adm` and `www`), `webapp`
/// (gid 1002, no group with it), `ops` (gid 27: `sudo`, which does not list it) and the
/// missing `gone`, asked with the groups `web`, `www`, `adm`, `empty`, `wwwdata`, `nope`.
const PROBE: &[u8] = b"\nTOK passwd\n\
web:x:1001:1001:Web,,,:/srv/web:/bin/sh\n\
webapp:x:1003:1002::/home/webapp:/usr/sbin/nologin\n\
ops:x:1004:27:Ops:/home/ops:/bin/bash\n\
\nTOK group\n\
web:x:1001:\n\
sudo:x:27:\n\
adm:x:4:syslog,web\n\
empty:x:1010:\n\
web:x:1001:\n\
www:x:33:webapp,web\n\
wwwdata:x:34:web2,ops\n\
\nTOK end\n";

fn accounts() -> Accounts {
    NodeFacts::parse(PROBE, &Token::fixed("TOK"))
        .unwrap()
        .accounts
}

#[test]
fn passwd_fields_and_missing_users() {
    let a = accounts();
    let web = a.user("web").unwrap();
    assert_eq!((web.uid.as_str(), web.gid.as_str()), ("1001", "1001"));
    assert_eq!(
        (web.home.as_str(), web.shell.as_str()),
        ("/srv/web", "/bin/sh")
    );
    assert_eq!(web.line, "web:x:1001:1001:Web,,,:/srv/web:/bin/sh");
    assert!(a.user("gone").is_none());
    assert!(a.groups_of("gone").is_none());
    // A prefix of an existing name is not that name.
    assert!(a.user("we").is_none());
    assert!(a.group("ww").is_none());
}

#[test]
fn groups_come_from_member_lists_with_the_primary_first() {
    let a = accounts();
    // In several groups; `www`'s member list holds `webapp` too, and `wwwdata` holds
    // `web2`, a name `web` is a prefix of: neither counts for `web`.
    assert_eq!(a.groups_of("web").unwrap(), ["web", "adm", "www"]);
    assert_eq!(a.groups_of("webapp").unwrap(), ["1002", "www"]);
    // The primary group does not list the user as a member: still its group.
    assert_eq!(a.groups_of("ops").unwrap(), ["sudo", "wwwdata"]);
    assert_eq!(a.primary_group(a.user("ops").unwrap()), "sudo");
    // No group has gid 1002: the number, as `id -Gn` prints it.
    assert_eq!(a.primary_group(a.user("webapp").unwrap()), "1002");
}

#[test]
fn groups_without_members_and_missing_groups() {
    let a = accounts();
    let empty = a.group("empty").unwrap();
    assert_eq!(empty.gid, "1010");
    assert!(empty.members.is_empty());
    assert_eq!(empty.line, "empty:x:1010:");
    assert_eq!(a.group("adm").unwrap().members, ["syslog", "web"]);
    assert!(a.group("nope").is_none());
}

#[test]
fn the_first_entry_for_a_gid_names_it() {
    // Gids are asked first: `getgrgid`'s answer comes before a later name query's group
    // sharing the gid.
    let mut a = Accounts::default();
    a.parse_passwd(b"u:x:5:100::/h:/bin/sh\n").unwrap();
    a.parse_group(b"users:x:100:\nalias:x:100:u\n").unwrap();
    assert_eq!(a.primary_group(a.user("u").unwrap()), "users");
    assert_eq!(a.groups_of("u").unwrap(), ["users", "alias"]);
}

#[test]
fn a_colon_in_gecos_does_not_shift_home_and_shell() {
    let mut a = Accounts::default();
    a.parse_passwd(b"u:x:5:100:a:b:/home/u:/bin/zsh\n").unwrap();
    let u = a.user("u").unwrap();
    assert_eq!((u.home.as_str(), u.shell.as_str()), ("/home/u", "/bin/zsh"));
}

#[test]
fn short_lines_are_malformed_not_guessed() {
    let token = Token::fixed("TOK");
    for (out, section) in [
        (&b"\nTOK passwd\nweb:x:1001\n\nTOK end\n"[..], "passwd"),
        (
            &b"\nTOK passwd\nweb:x:1:1:/h:/bin/sh\n\nTOK end\n"[..],
            "passwd",
        ),
        (&b"\nTOK group\nweb:x\n\nTOK end\n"[..], "group"),
    ] {
        match NodeFacts::parse(out, &token) {
            Err(FactError::Malformed { section: s, reason }) => {
                assert_eq!(s, section);
                assert!(reason.contains("`:`-separated fields"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
