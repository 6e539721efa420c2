use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::secret::Secret;

const KEYFILE: &str = "c2VjcmV0LWtleWZpbGUtbGluZS1vbmUtYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo=\n\
                       bGluZS10d28tb2YtdGhlLWtleWZpbGUtMDEyMzQ1Njc4OS1BQkNERUZHSElKS0xNTk9Q\n";

fn templates() -> Templates {
    let mut store = SecretStore::default();
    store.insert(Secret::new("mongodb_keyfile", KEYFILE));
    store.insert(Secret::new("db_password", "hunter2-very-secret"));
    Templates::new(Arc::new(store))
}

fn render(source: &str, vars: serde_json::Value) -> Result<Rendered, TemplateError> {
    templates().render_str(source, Path::new("inline.hbs"), 0, &vars)
}

fn text(source: &str, vars: serde_json::Value) -> String {
    render(source, vars).unwrap().text
}

#[test]
fn renders_without_html_escaping() {
    assert_eq!(
        text("{{a}} {{{a}}}", json!({"a": "<x & 'y'>"})),
        "<x & 'y'> <x & 'y'>"
    );
}

#[test]
fn missing_variable_names_file_line_and_variable() {
    let source = "net:\n  bindIp: {{bind}}\n  port: {{mongo_port}}\n";
    let err = templates()
        .render_str(
            source,
            Path::new("modules/mongodb/templates/mongod.conf.hbs"),
            0,
            &json!({"bind": "0.0.0.0"}),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown variable `mongo_port` in modules/mongodb/templates/mongod.conf.hbs:3"
    );
    // Nested paths, inside blocks, with an offset for inline content.
    let err = templates()
        .render_str(
            "a\n{{#each hosts}}\n{{this.nme}}\n{{/each}}",
            Path::new("manifests/roles/front.toml"),
            10,
            &json!({"hosts": [{"name": "x"}]}),
        )
        .unwrap_err();
    assert!(
        matches!(&err, TemplateError::UnknownVariable { line: 13, variable, .. } if variable.ends_with("nme")),
        "{err}"
    );
}

#[test]
fn missing_variable_in_helper_parameter_is_an_error_too() {
    for source in [
        "{{join missing \",\"}}",
        "{{json missing}}",
        "{{yaml missing}}",
        "{{indent 2 missing}}",
    ] {
        let err = render(source, json!({})).unwrap_err().to_string();
        assert_eq!(
            err, "unknown variable `missing` in inline.hbs:1",
            "{source}"
        );
    }
}

#[test]
fn syntax_errors_name_file_and_line() {
    let err = templates()
        .render_str(
            "line one\nline two {{#if x}}\nno close\n",
            Path::new("t.hbs"),
            0,
            &json!({"x": true}),
        )
        .unwrap_err();
    assert!(matches!(err, TemplateError::Syntax { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("template syntax error in t.hbs:"),
        "{message}"
    );

    let err = render("ok\n{{#if x}}\n{{/each}}\n", json!({"x": 1})).unwrap_err();
    assert!(
        matches!(&err, TemplateError::Syntax { line: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn default_works_for_missing_and_null_in_strict_mode() {
    assert_eq!(text("{{default port 27017}}", json!({})), "27017");
    assert_eq!(
        text("{{default port 27017}}", json!({"port": null})),
        "27017"
    );
    assert_eq!(
        text("{{default port 27017}}", json!({"port": 28000})),
        "28000"
    );
    assert_eq!(text("{{default a.b \"x\"}}", json!({"a": {}})), "x");
    assert_eq!(text("{{default a.b \"x\"}}", json!({})), "x");
    assert_eq!(
        text("{{default flag true}}", json!({"flag": false})),
        "false"
    );
    // The fallback itself must exist.
    let err = render("{{default a b}}", json!({}))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "unknown variable `b` in inline.hbs:1");
}

#[test]
fn join_renders_items_with_separator() {
    let vars = json!({"hosts": ["a:1", "b:2"], "ports": [1, 2, 3], "empty": []});
    assert_eq!(text("{{join hosts \",\"}}", vars.clone()), "a:1,b:2");
    assert_eq!(text("{{join ports \" \"}}", vars.clone()), "1 2 3");
    assert_eq!(text("[{{join empty \",\"}}]", vars.clone()), "[]");
    let err = render("{{join name \",\"}}", json!({"name": "x"})).unwrap_err();
    assert!(
        err.to_string().contains("`join` needs an array, `name`"),
        "{err}"
    );
}

#[test]
fn indent_inline_and_block() {
    let vars = json!({"body": "a\n\nb\n", "items": ["x", "y"]});
    assert_eq!(text("{{indent 2 body}}", vars.clone()), "  a\n\n  b\n");
    assert_eq!(
        text(
            "s {\n{{#indent 4}}\n{{#each items}}\nline {{this}};\n{{/each}}\n{{/indent}}\n}",
            vars.clone()
        ),
        "s {\n    line x;\n    line y;\n}"
    );
    assert_eq!(text("{{indent 2 (json items)}}", vars), "  [\"x\",\"y\"]");
}

#[test]
fn json_and_yaml_quote_values() {
    let vars = json!({
        "s": "a \"quoted\" \\ value\nwith: colon # and hash",
        "n": 5, "b": true, "z": null,
        "list": ["x", 1],
        "map": {"k": "v"},
        "weird": "\u{2028}\u{7}"
    });
    assert_eq!(
        text("{{json n}} {{json s}}", vars.clone()),
        "5 \"a \\\"quoted\\\" \\\\ value\\nwith: colon # and hash\""
    );
    assert_eq!(
        text("{{json map pretty=true}}", vars.clone()),
        "{\n  \"k\": \"v\"\n}"
    );
    assert_eq!(
        text("{{yaml s}}", vars.clone()),
        "\"a \\\"quoted\\\" \\\\ value\\nwith: colon # and hash\""
    );
    assert_eq!(
        text(
            "{{yaml n}} {{yaml b}} {{yaml z}} {{yaml list}} {{yaml map}} {{yaml weird}}",
            vars
        ),
        "5 true null [\"x\", 1] {\"k\": \"v\"} \"\\L\\x07\""
    );
    assert_eq!(text("{{yaml \"yes\"}}", json!({})), "\"yes\"");
}

#[test]
fn builtin_comparisons_are_there() {
    let vars = json!({"state": "standby", "n": 3});
    assert_eq!(
        text(
            "{{#if (eq state \"standby\")}}ro{{else}}rw{{/if}} {{#if (gt n 2)}}big{{/if}}",
            vars
        ),
        "ro big"
    );
    // `if` on a missing variable is simply false, as optional settings need.
    assert_eq!(text("{{#if missing}}x{{else}}y{{/if}}", json!({})), "y");
}

#[test]
fn secret_helper_output_is_tracked_even_when_transformed() {
    let fp = Fingerprint::of(KEYFILE.as_bytes());
    let plain = render("{{secret \"mongodb_keyfile\"}}", json!({})).unwrap();
    assert_eq!(plain.text, KEYFILE);
    assert_eq!(plain.secrets, vec![fp.clone()]);
    assert!(plain.is_sensitive());

    // JSON-escaped into one line: neither the value nor a line-wise match needed.
    let escaped = render("k: {{json (secret \"mongodb_keyfile\")}}", json!({})).unwrap();
    assert!(!escaped.text.contains(KEYFILE));
    assert_eq!(escaped.secrets, vec![fp]);

    let none = render("plain {{x}}", json!({"x": 1})).unwrap();
    assert!(none.secrets.is_empty() && !none.is_sensitive());
}

#[test]
fn secret_values_reaching_output_by_a_variable_are_tracked() {
    let out = render("pw={{pw}}", json!({"pw": "hunter2-very-secret"})).unwrap();
    assert_eq!(out.secrets, vec![Fingerprint::of(b"hunter2-very-secret")]);
}

#[test]
fn unknown_or_locked_secret_errors_name_it_not_a_value() {
    let err = render("\n{{secret \"nope\"}}", json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("unknown secret `nope`"), "{err}");
    assert!(err.ends_with("in inline.hbs:2"), "{err}");

    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("manifests")).unwrap();
    std::fs::write(root.path().join("manifests/secrets.age"), "not decrypted").unwrap();
    let locked = SecretStore::load_from(root.path(), &Default::default()).unwrap();
    let templates = Templates::new(Arc::new(locked));
    let err = templates
        .render_str(
            "{{secret \"mongodb_keyfile\"}}",
            Path::new("k.hbs"),
            0,
            &json!({}),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`mongodb_keyfile`") && err.contains("TANDEM_AGE_IDENTITY"),
        "{err}"
    );
    // A locked store does not bother templates that use no secret.
    assert_eq!(
        templates
            .render_str("x", Path::new("k.hbs"), 0, &json!({}))
            .unwrap()
            .text,
        "x"
    );
}

#[test]
fn no_error_or_debug_text_carries_a_secret() {
    let templates = templates();
    for source in [
        "{{secret \"db_password\"}}{{missing}}",
        "{{indent \"x\" (secret \"db_password\")}}",
        "{{join (secret \"db_password\") \",\"}}",
    ] {
        let err = templates
            .render_str(source, Path::new("t.hbs"), 0, &json!({}))
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    let rendered = templates
        .render_str(
            "{{secret \"db_password\"}}",
            Path::new("t.hbs"),
            0,
            &json!({}),
        )
        .unwrap();
    assert_eq!(rendered.text, "hunter2-very-secret");
}

#[test]
fn partials_are_namespaced_and_errors_point_into_them() {
    let site = tempfile::tempdir().unwrap();
    let shared = site.path().join("templates");
    let module = site.path().join("modules/nginx/templates");
    std::fs::create_dir_all(shared.join("common")).unwrap();
    std::fs::create_dir_all(&module).unwrap();
    std::fs::write(
        shared.join("common/header.hbs"),
        "# managed by tandem: {{site}}\n",
    )
    .unwrap();
    std::fs::write(
        module.join("location.hbs"),
        "location {{path}} {\n  proxy_pass {{upstream}};\n}\n",
    )
    .unwrap();

    let mut templates = templates();
    templates.register_partials(&shared, None).unwrap();
    templates.register_partials(&module, Some("nginx")).unwrap();
    templates
        .register_partials(&site.path().join("modules/none/templates"), Some("none"))
        .unwrap();

    let source = "{{> common/header}}\n{{#each locations}}\n{{> nginx/location}}\n{{/each}}";
    let vars =
        json!({"site": "demo", "locations": [{"path": "/", "upstream": "http://127.0.0.1:8080"}]});
    let out = templates
        .render_str(source, Path::new("nginx.conf.hbs"), 0, &vars)
        .unwrap();
    assert_eq!(
        out.text,
        "# managed by tandem: demo\nlocation / {\n  proxy_pass http://127.0.0.1:8080;\n}\n"
    );

    let vars = json!({"site": "demo", "locations": [{"path": "/"}]});
    let err = templates
        .render_str(source, Path::new("nginx.conf.hbs"), 0, &vars)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "unknown variable `upstream` in {}:2",
            module.join("location.hbs").display()
        )
    );

    let err = templates
        .render_str("{{> nginx/nope}}", Path::new("x.hbs"), 0, &vars)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "unknown partial `nginx/nope` in x.hbs:1");

    // The same name twice is refused, naming both files.
    let other = site.path().join("other/nginx");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("location.hbs"), "x").unwrap();
    let err = templates
        .register_partials(&site.path().join("other"), None)
        .unwrap_err();
    assert!(
        matches!(err, TemplateError::DuplicatePartial { .. }),
        "{err}"
    );
}

#[test]
fn partial_syntax_errors_name_the_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.hbs"), "ok\n{{#if x}}\n{{/each}}\n").unwrap();
    let err = templates()
        .register_partials(dir.path(), Some("m"))
        .unwrap_err();
    assert_eq!(
        err.to_string().split(": ").next().unwrap(),
        format!(
            "template syntax error in {}:3",
            dir.path().join("bad.hbs").display()
        )
    );
}

#[test]
fn render_file_reads_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.conf.hbs");
    std::fs::write(&path, "port {{port}}\n").unwrap();
    let t = templates();
    assert_eq!(
        t.render_file(&path, &json!({"port": 1})).unwrap().text,
        "port 1\n"
    );
    let err = t
        .render_file(&dir.path().join("nope.hbs"), &json!({}))
        .unwrap_err();
    assert!(matches!(err, TemplateError::Read { .. }), "{err}");
}

#[test]
fn log_helper_is_refused() {
    let err = render("{{log (secret \"db_password\")}}", json!({}))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "the `log` helper is disabled: it could print secrets in inline.hbs:1"
    );
}

#[test]
fn templates_can_be_shared_across_threads_and_debugged_safely() {
    fn shared<T: Send + Sync>() {}
    shared::<Templates>();
    let t = Arc::new(templates());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                let source = if i % 2 == 0 {
                    "{{secret \"db_password\"}}"
                } else {
                    "{{x}}"
                };
                t.render_str(source, Path::new("t"), 0, &json!({"x": i}))
                    .unwrap()
            })
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        // Each render sees only its own secret use.
        assert_eq!(handle.join().unwrap().is_sensitive(), i % 2 == 0);
    }
    let shown = format!("{t:?}");
    assert!(
        shown.contains("Templates") && !shown.contains("hunter2"),
        "{shown}"
    );
}

#[test]
fn partials_that_include_each_other_are_refused_naming_the_cycle() {
    let site = tempfile::tempdir().unwrap();
    let shared = site.path().join("templates");
    let module = site.path().join("modules/m/templates");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::create_dir_all(&module).unwrap();
    std::fs::write(shared.join("pa.hbs"), "a {{#if x}}{{> pb}}{{/if}}\n").unwrap();
    std::fs::write(shared.join("pb.hbs"), "b {{> pa}}\n").unwrap();
    std::fs::write(shared.join("ok.hbs"), "fine\n").unwrap();
    let mut fresh = templates();
    let err = fresh.register_partials(&shared, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "partials include each other in a cycle: `pa` -> `pb` -> `pa` (in {}, {})",
            shared.join("pa.hbs").display(),
            shared.join("pb.hbs").display()
        )
    );
    // Nothing of the refused folder stays registered, so no render can recurse.
    let err = fresh
        .render_str("{{> pa}}", Path::new("x.hbs"), 0, &json!({"x": true}))
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown partial `pa` in x.hbs:1");

    // Across two folders: `m/pc` includes `pa` which includes `m/pc`.
    std::fs::write(shared.join("pb.hbs"), "b {{> m/pc}}\n").unwrap();
    std::fs::write(module.join("pc.hbs"), "c {{> pa}}\n").unwrap();
    let mut two = templates();
    two.register_partials(&shared, None).unwrap();
    let err = two.register_partials(&module, Some("m")).unwrap_err();
    assert!(
        err.to_string().contains("`m/pc` -> `pa` -> `pb` -> `m/pc`"),
        "{err}"
    );
    // A chain that only looks alike is fine, and renders.
    std::fs::write(module.join("pc.hbs"), "c\n").unwrap();
    let mut fine = templates();
    fine.register_partials(&shared, None).unwrap();
    fine.register_partials(&module, Some("m")).unwrap();
    let out = fine
        .render_str("{{> pa}}", Path::new("x.hbs"), 0, &json!({"x": true}))
        .unwrap();
    assert_eq!(out.text, "a b c\n\n\n");
}

#[test]
fn a_partial_that_computes_what_it_includes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.hbs"), "ok\n").unwrap();
    std::fs::write(
        dir.path().join("pick.hbs"),
        "{{> (lookup this \"which\")}}\n",
    )
    .unwrap();
    let mut templates = templates();
    let err = templates.register_partials(dir.path(), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "partial `pick` in {} computes the name of a partial it includes; write the \
             name out (`{{{{> name}}}}`), so that partials including each other are found \
             before anything renders",
            dir.path().join("pick.hbs").display()
        )
    );
    // Nothing of the refused folder stays, `ok` included.
    let err = templates
        .render_str("{{> ok}}", Path::new("x.hbs"), 0, &json!({}))
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown partial `ok` in x.hbs:1");
    // A template that is not a partial may compute names: nothing includes it back.
    std::fs::remove_file(dir.path().join("pick.hbs")).unwrap();
    templates.register_partials(dir.path(), None).unwrap();
    let out = templates
        .render_str(
            "{{> (lookup this \"which\")}}",
            Path::new("x.hbs"),
            0,
            &json!({"which": "ok"}),
        )
        .unwrap();
    assert_eq!(out.text, "ok\n");
}

/// Runs `printf %s WORD` in a real shell, the way a node's shell reads the word.
fn through_sh(word: &str) -> Vec<u8> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf %s {word}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{word}: {out:?}");
    out.stdout
}

#[test]
fn shell_quote_makes_one_word_of_hostile_values() {
    let dir = tempfile::tempdir().unwrap();
    let canary = dir.path().join("pwned");
    let hostile = [
        "plain".to_string(),
        String::new(),
        "it's".to_string(),
        "'; touch CANARY; echo '".to_string(),
        "$(touch CANARY)".to_string(),
        "`touch CANARY`".to_string(),
        "a\nb\n".to_string(),
        "\"$HOME\" \\ * ? [a] ~ # & | ; < > ( ) { }".to_string(),
        "--option=-x".to_string(),
        "ünïcødé ✓".to_string(),
    ];
    for value in hostile {
        let value = value.replace("CANARY", &canary.display().to_string());
        let word = text("{{shell_quote v}}", json!({ "v": value }));
        assert_eq!(word, crate::transport::quote::quote_str(&value));
        assert_eq!(through_sh(&word), value.as_bytes(), "{word}");
    }
    assert!(!canary.exists(), "a quoted value ran as a command");

    // Non-strings are quoted as they render; an array is one word per item.
    assert_eq!(text("{{shell_quote n}}", json!({"n": 8080})), "'8080'");
    let words = text(
        "{{shell_quote list}}",
        json!({"list": ["a b", "it's", "$(x)"]}),
    );
    assert_eq!(words, r#"'a b' 'it'\''s' '$(x)'"#);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf '<%s>' {words}"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "<a b><it's><$(x)>");
    // As a subexpression, and with the usual strict-mode error for a missing value.
    assert_eq!(
        text("{{indent 2 (shell_quote v)}}", json!({"v": ["a"]})),
        "  'a'"
    );
    let err = render("{{shell_quote nope}}", json!({})).unwrap_err();
    assert_eq!(err.to_string(), "unknown variable `nope` in inline.hbs:1");
    let err = render("{{shell_quote v}}", json!({"v": "a\u{0}b"})).unwrap_err();
    assert!(err.to_string().contains("NUL byte"), "{err}");
}
