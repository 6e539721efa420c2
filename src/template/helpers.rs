//! The helpers config files need, beyond handlebars' built-ins (`if`, `each`, `eq`,
//! `and`, `len`...): `join`, `default`, `indent`, `json`, `yaml`, `shell_quote` and
//! `secret`. Each
//! value helper also works as a subexpression: `{{indent 4 (yaml tags)}}`.
//!
//! Strict mode hands helpers a missing variable as a "missing" parameter rather than
//! failing, so every helper but `default` turns one into the same "unknown variable"
//! error a plain `{{name}}` gets.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::Arc;

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, JsonRender, Output, PathAndJson,
    RenderContext, RenderError, RenderErrorReason, Renderable, ScopedJson, StringOutput,
};
use serde_json::Value as Json;

use crate::secret::{Fingerprint, SecretStore};

pub(super) fn register(registry: &mut Handlebars<'static>, secrets: Arc<SecretStore>) {
    registry.register_helper("join", Box::new(Join));
    registry.register_helper("default", Box::new(DefaultHelper));
    registry.register_helper("indent", Box::new(Indent));
    registry.register_helper("json", Box::new(ToJson));
    registry.register_helper("yaml", Box::new(ToYaml));
    registry.register_helper("shell_quote", Box::new(ShellQuote));
    registry.register_helper("secret", Box::new(SecretHelper { store: secrets }));
    registry.register_helper("log", Box::new(NoLog));
}

/// The built-in `log` helper would hand its parameters (secrets included) to the
/// logger; handlebars' logging is compiled out (`no_logging`), and this says so
/// instead of silently doing nothing.
struct NoLog;

impl HelperDef for NoLog {
    fn call<'reg: 'rc, 'rc>(
        &self,
        _: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        _: &mut dyn Output,
    ) -> HelperResult {
        Err(other(
            "the `log` helper is disabled: it could print secrets".to_string(),
        ))
    }
}

thread_local! {
    /// Fingerprints of the secrets the `secret` helper handed out during the render in
    /// progress on this thread. Rendering is synchronous, so a render and its helper
    /// calls share the thread, and concurrent renders on other threads stay apart.
    static USED: RefCell<Option<Vec<Fingerprint>>> = const { RefCell::new(None) };
}

/// Records, for the duration of one render, which secrets the `secret` helper used.
pub(super) struct SecretUse {
    previous: Option<Vec<Fingerprint>>,
}

impl SecretUse {
    pub(super) fn start() -> Self {
        SecretUse {
            previous: USED.with(|used| used.borrow_mut().replace(Vec::new())),
        }
    }

    pub(super) fn finish(mut self) -> Vec<Fingerprint> {
        let previous = self.previous.take();
        USED.with(|used| std::mem::replace(&mut *used.borrow_mut(), previous))
            .unwrap_or_default()
    }
}

impl Drop for SecretUse {
    fn drop(&mut self) {
        // Reached with `previous` still set only when `finish` was skipped (a panic).
        if let Some(previous) = self.previous.take() {
            USED.with(|used| *used.borrow_mut() = Some(previous));
        }
    }
}

/// Parameter `idx` of `h`, failing on absence and on a missing variable.
fn param<'a, 'rc>(h: &'a Helper<'rc>, idx: usize) -> Result<&'a PathAndJson<'rc>, RenderError> {
    let p = h
        .param(idx)
        .ok_or_else(|| RenderErrorReason::ParamNotFoundForIndex(helper_name(h), idx))?;
    if p.is_value_missing() {
        return Err(RenderErrorReason::MissingVariable(p.relative_path().cloned()).into());
    }
    Ok(p)
}

/// `ParamNotFoundForIndex` wants a `&'static str`; our helpers' names are.
fn helper_name(h: &Helper<'_>) -> &'static str {
    match h.name() {
        "join" => "join",
        "default" => "default",
        "indent" => "indent",
        "json" => "json",
        "yaml" => "yaml",
        "shell_quote" => "shell_quote",
        "secret" => "secret",
        _ => "helper",
    }
}

fn other(message: String) -> RenderError {
    RenderErrorReason::Other(message).into()
}

/// A value as text: strings as they are, anything else as JSON.
fn text(value: &Json) -> String {
    value.render()
}

/// `{{join list ", "}}`: the items of an array, rendered and separated.
struct Join;

impl HelperDef for Join {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let list = param(h, 0)?;
        let separator = param(h, 1)?.value();
        let items = list.value().as_array().ok_or_else(|| {
            other(format!(
                "`join` needs an array, `{}` is not one",
                list.relative_path().map_or("its first parameter", |p| p)
            ))
        })?;
        let joined = items
            .iter()
            .map(text)
            .collect::<Vec<_>>()
            .join(&text(separator));
        Ok(ScopedJson::Derived(Json::String(joined)))
    }
}

/// `{{default port 27017}}`: the value, or the fallback when it is missing or null.
struct DefaultHelper;

impl HelperDef for DefaultHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let value = h
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("default", 0))?;
        if !value.is_value_missing() && !value.value().is_null() {
            return Ok(ScopedJson::Derived(value.value().clone()));
        }
        Ok(ScopedJson::Derived(param(h, 1)?.value().clone()))
    }
}

/// `{{indent 4 text}}` or `{{#indent 4}}...{{/indent}}`: every non-empty line prefixed
/// by that many spaces, to nest a block in YAML or an nginx `server`.
struct Indent;

impl Indent {
    fn width(h: &Helper<'_>) -> Result<usize, RenderError> {
        let width = param(h, 0)?.value();
        width
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| other(format!("`indent` needs a count of spaces, not `{width}`")))
    }
}

pub(super) fn indent(text: &str, width: usize) -> String {
    let pad = " ".repeat(width);
    let mut out = String::with_capacity(text.len() + width * 8);
    for line in text.split_inclusive('\n') {
        if !line.trim_end_matches(['\n', '\r']).is_empty() {
            out.push_str(&pad);
        }
        out.push_str(line);
    }
    out
}

impl HelperDef for Indent {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let width = Self::width(h)?;
        let value = text(param(h, 1)?.value());
        Ok(ScopedJson::Derived(Json::String(indent(&value, width))))
    }

    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let rendered = match h.template() {
            Some(block) => {
                let width = Self::width(h)?;
                let mut inner = StringOutput::new();
                block.render(r, ctx, rc, &mut inner)?;
                indent(&inner.into_string()?, width)
            }
            None => text(self.call_inner(h, r, ctx, rc)?.as_json()),
        };
        out.write(&rendered)?;
        Ok(())
    }
}

/// `{{json value}}` (or `pretty=true`): the value as JSON.
struct ToJson;

impl HelperDef for ToJson {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let value = param(h, 0)?.value();
        let pretty = h
            .hash_get("pretty")
            .is_some_and(|p| p.value().as_bool() == Some(true));
        let json = if pretty {
            serde_json::to_string_pretty(value)
        } else {
            serde_json::to_string(value)
        }
        .map_err(|e| other(format!("cannot write JSON: {e}")))?;
        Ok(ScopedJson::Derived(Json::String(json)))
    }
}

/// `{{yaml value}}`: the value as a YAML scalar (strings double-quoted) or flow
/// collection, safe to put after `key: ` whatever the string holds.
struct ToYaml;

impl HelperDef for ToYaml {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let mut out = String::new();
        yaml(param(h, 0)?.value(), &mut out);
        Ok(ScopedJson::Derived(Json::String(out)))
    }
}

pub(super) fn yaml(value: &Json, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(&n.to_string()),
        Json::String(s) => yaml_string(s, out),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                yaml(item, out);
            }
            out.push(']');
        }
        Json::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                yaml_string(key, out);
                out.push_str(": ");
                yaml(item, out);
            }
            out.push('}');
        }
    }
}

/// A YAML double-quoted scalar: escapes quotes, backslashes, and every character YAML
/// does not allow raw (controls, C1, line and paragraph separators, BOM).
fn yaml_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            '\u{85}' => out.push_str("\\N"),
            '\u{feff}' => out.push_str("\\uFEFF"),
            c if (c as u32) < 0x20 || ('\u{7f}'..='\u{9f}').contains(&c) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `{{shell_quote value}}`: the value as one POSIX shell word, by the same quoting
/// function that builds every remote command (single quotes, `'` as `'\''`), so a
/// template can put a variable into an `exec` command, `unless`/`onlyif` or a script
/// without the value being read as shell syntax. An array becomes its items, each
/// quoted, separated by spaces (one word per item). A NUL byte cannot be in a shell
/// word, so a value holding one is refused.
struct ShellQuote;

impl HelperDef for ShellQuote {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let value = param(h, 0)?.value();
        let items: Vec<&Json> = match value {
            Json::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        let mut words = Vec::with_capacity(items.len());
        for item in items {
            words.push(shell_quote(&text(item))?);
        }
        Ok(ScopedJson::Derived(Json::String(words.join(" "))))
    }
}

pub(super) fn shell_quote(value: &str) -> Result<String, RenderError> {
    if value.contains('\0') {
        return Err(other(
            "`shell_quote` cannot quote a value holding a NUL byte".to_string(),
        ));
    }
    Ok(crate::transport::quote::quote_str(value))
}

/// `{{secret "mongodb_keyfile"}}`: the clear value, recorded so the rendered content
/// is known to carry it.
struct SecretHelper {
    store: Arc<SecretStore>,
}

impl HelperDef for SecretHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let name = param(h, 0)?.value();
        let name = name
            .as_str()
            .ok_or_else(|| other(format!("`secret` needs a name, not `{name}`")))?;
        let secret = self.store.require(name).map_err(|e| other(e.to_string()))?;
        USED.with(|used| {
            if let Some(used) = used.borrow_mut().as_mut() {
                used.push(secret.fingerprint().clone());
            }
        });
        Ok(ScopedJson::Derived(Json::String(
            secret.expose().to_string(),
        )))
    }
}
