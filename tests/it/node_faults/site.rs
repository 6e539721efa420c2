//! Output of a `validate` command run on a secret-bearing staged file never leaves the
//! node: the example site's MongoDB keyfile (a secret) gets a validate command that
//! prints the file and a transformation of it no redaction recognises (`rev`), then
//! fails. The apply fails that resource, and neither tandem's output, nor `runs show`,
//! nor the bytes of the run history file hold the secret or its reverse.

use crate::support::site::SiteFleet;

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn validate_output_of_a_secret_bearing_file_is_withheld() {
    let sf = SiteFleet::up("faults-secret", "azure-westus:store:1");
    let secret = sf.secret("mongodb_keyfile");
    let reversed: String = secret.chars().rev().collect();
    // Pieces too: a 16-byte window of either is a leak as well.
    let pieces: Vec<String> = [&secret, &reversed]
        .iter()
        .flat_map(|s| {
            let chars: Vec<char> = s.chars().collect();
            chars
                .windows(16.min(chars.len()))
                .step_by(8)
                .map(|w| w.iter().collect::<String>())
                .collect::<Vec<_>>()
        })
        .collect();
    sf.edit_site(
        "modules/mongodb/module.toml",
        "mode = \"0400\"\nnotify = [\"service:mongod\"]",
        "mode = \"0400\"\nvalidate = \"cat {staged}; rev {staged}; rev {staged} >&2; false\"\nnotify = [\"service:mongod\"]",
    );
    let apply = sf.tandem(&["apply"]);
    apply.expect_code(3);
    let output = apply.all_output();
    assert!(
        output.contains("its output is withheld: the file holds secrets"),
        "the failure should say why its output is missing\n{apply}"
    );
    let runs = sf.tandem(&["runs", "show", "1"]);
    runs.expect_code(0);
    let runs_json = sf.tandem(&["runs", "show", "1", "--format", "json"]);
    runs_json.expect_code(0);
    assert!(
        runs.stdout.contains("/etc/mongodb/keyfile") && runs.stdout.contains("withheld"),
        "`runs show` should list the failed keyfile\n{runs}"
    );
    let history = std::fs::read(sf.site().join(".tandem/history.sqlite")).unwrap();
    assert!(
        holds(&history, "its output is withheld"),
        "the history should record the withheld failure"
    );
    for piece in &pieces {
        assert!(
            !output.contains(piece.as_str()),
            "apply output leaks `{piece}`\n{apply}"
        );
        assert!(
            !runs.all_output().contains(piece.as_str()),
            "runs show leaks\n{runs}"
        );
        assert!(
            !runs_json.all_output().contains(piece.as_str()),
            "runs show leaks\n{runs_json}"
        );
        assert!(
            !holds(&history, piece),
            "the history file holds a piece of the secret"
        );
    }
    // The keyfile was never put in place.
    let host = "store-azure-1";
    assert!(!sf
        .fleet
        .exec(host, "test -e /etc/mongodb/keyfile")
        .status
        .success());
}
