//! One declaration plus one node's variables becomes one resource: string attributes
//! are rendered (when they hold a template), checked for secrets (refused anywhere but
//! file content), paths parsed as absolute remote paths, file content rendered from
//! its template, and relations parsed as resource ids.

use std::path::Path;

use serde_json::Value;

use super::graph::Pending;
use super::{template_error, CompileError, Compiler};
use crate::manifest::raw::RawCommands;
use crate::manifest::{Module, ResourceDecl};
use crate::path::RemotePath;
use crate::resource::*;

/// The shortest secret value recognized when it appears literally in an attribute.
const MIN_LITERAL_SECRET: usize = 8;

/// The variables one module instance renders with, and the key that identifies them
/// for the render cache.
pub(crate) struct Context<'a> {
    pub value: &'a Value,
    /// The scope (role, datacenter) and the module instance; node variables and the
    /// node's name are added per source by `Compiler::render`.
    pub key: String,
    pub node_vars: &'a std::collections::BTreeMap<String, Value>,
    pub node: &'a str,
}

/// One instance of a module: the node's context, or for an `each` module the node's
/// context plus the list element bound to the module's `as` name.
pub(crate) struct Instance {
    value: Option<Value>,
    key: String,
}

impl Instance {
    pub fn context<'a>(&'a self, base: &Context<'a>) -> Context<'a> {
        Context {
            value: self.value.as_ref().unwrap_or(base.value),
            key: self.key.clone(),
            node_vars: base.node_vars,
            node: base.node,
        }
    }
}

pub(crate) fn instances(
    module: &Module,
    base: &Context<'_>,
) -> Result<Vec<Instance>, CompileError> {
    let Some(each) = &module.each else {
        return Ok(vec![Instance {
            value: None,
            key: base.key.clone(),
        }]);
    };
    let attribute = |message: String| CompileError::Attribute {
        file: module.file.clone(),
        line: each.line,
        key: "each".to_string(),
        message,
    };
    let items = match base.value.get(&each.var) {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(attribute(format!("variable `{}` is not a list", each.var))),
        None => return Err(attribute(format!("variable `{}` is not set", each.var))),
    };
    items
        .iter()
        .map(|item| {
            let mut value = base.value.clone();
            if let Value::Object(map) = &mut value {
                map.insert(each.bind.clone(), item.clone());
            }
            Ok(Instance {
                value: Some(value),
                key: format!("{}\u{0}{}", base.key, item),
            })
        })
        .collect()
}

struct Attrs<'c, 'a> {
    compiler: &'c Compiler<'a>,
    module: &'c Module,
    decl: &'c ResourceDecl,
    ctx: &'c Context<'c>,
}

impl Attrs<'_, '_> {
    fn attribute(&self, key: &str, message: String) -> CompileError {
        CompileError::Attribute {
            file: self.decl.file.clone(),
            line: self.decl.line_of(key),
            key: key.to_string(),
            message,
        }
    }

    /// A string attribute, rendered when it holds a template; refused when it holds
    /// a secret, since attributes are printed.
    fn text(&self, key: &str, raw: Option<&String>) -> Result<Option<String>, CompileError> {
        let Some(raw) = raw else { return Ok(None) };
        if let Some(secret) = secret_helper(raw) {
            return Err(CompileError::SecretInAttribute {
                file: self.decl.file.clone(),
                line: self.decl.line_of(key),
                key: key.to_string(),
                secret,
            });
        }
        let text = if raw.contains("{{") {
            let id = format!("{}:{}:{key}", self.decl.file.display(), self.decl.line);
            let line = self.decl.line_of(key);
            self.compiler
                .render(&id, raw, &self.decl.file, line.saturating_sub(1), self.ctx)
                .map_err(|source| template_error(&self.decl.file, line, key, source))?
                .text
        } else {
            raw.clone()
        };
        // A secret value pasted literally is caught too; values this short would match
        // ordinary text by accident, so they are only caught through the helper.
        if let Some(secret) = self
            .compiler
            .secrets()
            .found_in(&text)
            .into_iter()
            .find(|s| s.expose().len() >= MIN_LITERAL_SECRET)
        {
            return Err(CompileError::SecretInAttribute {
                file: self.decl.file.clone(),
                line: self.decl.line_of(key),
                key: key.to_string(),
                secret: secret.name().to_string(),
            });
        }
        Ok(Some(text))
    }

    fn required(&self, key: &str, raw: Option<&String>) -> Result<String, CompileError> {
        self.text(key, raw)?
            .ok_or_else(|| self.attribute(key, "is required".to_string()))
    }

    fn path(&self, key: &str, raw: Option<&String>) -> Result<Option<RemotePath>, CompileError> {
        self.text(key, raw)?
            .map(|text| {
                RemotePath::parse(&text).map_err(|err| self.attribute(key, err.to_string()))
            })
            .transpose()
    }

    fn required_path(&self, key: &str, raw: Option<&String>) -> Result<RemotePath, CompileError> {
        self.path(key, raw)?
            .ok_or_else(|| self.attribute(key, "is required".to_string()))
    }

    fn mode(&self) -> Result<Option<Mode>, CompileError> {
        self.text("mode", self.decl.raw.mode.as_ref())?
            .map(|m| m.parse().map_err(|err| self.attribute("mode", err)))
            .transpose()
    }

    fn presence(&self) -> Result<Presence, CompileError> {
        match self
            .text("ensure", self.decl.raw.ensure.as_ref())?
            .as_deref()
        {
            None | Some("present") => Ok(Presence::Present),
            Some("absent") => Ok(Presence::Absent),
            Some(other) => Err(self.attribute(
                "ensure",
                format!("`{other}` is neither `present` nor `absent`"),
            )),
        }
    }

    fn list(&self, key: &str, raw: Option<&Vec<String>>) -> Result<Vec<String>, CompileError> {
        raw.into_iter()
            .flatten()
            .map(|item| self.required(key, Some(item)))
            .collect()
    }

    fn relations(
        &self,
        key: &'static str,
        raw: Option<&Vec<String>>,
    ) -> Result<Vec<ResourceId>, CompileError> {
        self.list(key, raw)?
            .into_iter()
            .map(|r| r.parse().map_err(|err| self.attribute(key, err)))
            .collect()
    }

    fn content(&self) -> Result<Option<Content>, CompileError> {
        let raw = &self.decl.raw;
        let rendered = if let Some(inline) = &raw.content {
            let line = self.decl.line_of("content");
            let id = format!("{}:{}:content", self.decl.file.display(), self.decl.line);
            self.compiler
                .render(
                    &id,
                    inline,
                    &self.decl.file,
                    line.saturating_sub(1),
                    self.ctx,
                )
                .map_err(|source| template_error(&self.decl.file, line, "content", source))?
        } else if raw.template.is_some() {
            let path = self.module_file("template", "templates", raw.template.as_ref())?;
            let line = self.decl.line_of("template");
            let source = self
                .compiler
                .source(&path)
                .map_err(|source| template_error(&self.decl.file, line, "template", source))?;
            let id = path.display().to_string();
            self.compiler
                .render(&id, &source, &path, 0, self.ctx)
                .map_err(|source| template_error(&self.decl.file, line, "template", source))?
        } else if raw.source.is_some() {
            let path = self.module_file("source", "files", raw.source.as_ref())?;
            let line = self.decl.line_of("source");
            // Verbatim files are bytes: a certificate or keystore need not be UTF-8.
            let bytes = self
                .compiler
                .verbatim(&path)
                .map_err(|source| template_error(&self.decl.file, line, "source", source))?;
            let secrets = self
                .compiler
                .secrets()
                .found_in(&String::from_utf8_lossy(&bytes))
                .into_iter()
                .map(|s| s.fingerprint().clone())
                .collect::<Vec<_>>();
            let keyed_digest =
                (!secrets.is_empty()).then(|| self.compiler.secrets().content_digest(&bytes));
            return Ok(Some(Content {
                bytes: bytes.to_vec(),
                secrets,
                keyed_digest,
            }));
        } else {
            return Ok(None);
        };
        let bytes = rendered.text.into_bytes();
        let keyed_digest =
            (!rendered.secrets.is_empty()).then(|| self.compiler.secrets().content_digest(&bytes));
        Ok(Some(Content {
            bytes,
            secrets: rendered.secrets,
            keyed_digest,
        }))
    }

    /// A file of the module named by `key`, relative to the module's `sub` folder.
    fn module_file(
        &self,
        key: &str,
        sub: &str,
        raw: Option<&String>,
    ) -> Result<std::path::PathBuf, CompileError> {
        let name = self.required(key, raw)?;
        let relative = Path::new(&name);
        if relative.is_absolute()
            || relative
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(self.attribute(
                key,
                format!("`{name}` must be a path inside the module's `{sub}/` folder"),
            ));
        }
        Ok(self.module.dir.join(sub).join(relative))
    }

    fn commands(&self, raw: Option<&RawCommands>) -> Result<Option<ServiceCommands>, CompileError> {
        let Some(raw) = raw else { return Ok(None) };
        Ok(Some(ServiceCommands {
            start: self.required("commands", Some(&raw.start))?,
            stop: self.required("commands", Some(&raw.stop))?,
            reload: self.text("commands", raw.reload.as_ref())?,
            status: self.required("commands", Some(&raw.status))?,
        }))
    }
}

/// The raw manifest values by key, for the resource types' `build`.
impl Attrs<'_, '_> {
    fn raw_text(&self, key: &str) -> Option<&String> {
        let raw = &self.decl.raw;
        match key {
            "name" => raw.name.as_ref(),
            "path" => raw.path.as_ref(),
            "ensure" => raw.ensure.as_ref(),
            "content" => raw.content.as_ref(),
            "template" => raw.template.as_ref(),
            "source" => raw.source.as_ref(),
            "owner" => raw.owner.as_ref(),
            "group" => raw.group.as_ref(),
            "mode" => raw.mode.as_ref(),
            "validate" => raw.validate.as_ref(),
            "validate_tree" => raw.validate_tree.as_ref(),
            "target" => raw.target.as_ref(),
            "version" => raw.version.as_ref(),
            "home" => raw.home.as_ref(),
            "shell" => raw.shell.as_ref(),
            "command" => raw.command.as_ref(),
            "creates" => raw.creates.as_ref(),
            "unless" => raw.unless.as_ref(),
            "onlyif" => raw.onlyif.as_ref(),
            "user" => raw.user.as_ref(),
            "cwd" => raw.cwd.as_ref(),
            _ => None,
        }
    }
}

impl Attributes for Attrs<'_, '_> {
    type Error = CompileError;

    fn text(&self, key: &'static str) -> Result<Option<String>, CompileError> {
        Attrs::text(self, key, self.raw_text(key))
    }

    fn required(&self, key: &'static str) -> Result<String, CompileError> {
        Attrs::required(self, key, self.raw_text(key))
    }

    fn path(&self, key: &'static str) -> Result<Option<RemotePath>, CompileError> {
        Attrs::path(self, key, self.raw_text(key))
    }

    fn required_path(&self, key: &'static str) -> Result<RemotePath, CompileError> {
        Attrs::required_path(self, key, self.raw_text(key))
    }

    fn list(&self, key: &'static str) -> Result<Vec<String>, CompileError> {
        let raw = &self.decl.raw;
        let list = match key {
            "groups" => raw.groups.as_ref(),
            _ => None,
        };
        Attrs::list(self, key, list)
    }

    fn flag(&self, key: &'static str) -> Option<bool> {
        let raw = &self.decl.raw;
        match key {
            "backup" => raw.backup,
            "running" => raw.running,
            "enabled" => raw.enabled,
            "reload" => raw.reload,
            "system" => raw.system,
            "refresh_only" => raw.refresh_only,
            _ => None,
        }
    }

    fn number(&self, key: &'static str) -> Option<u32> {
        let raw = &self.decl.raw;
        match key {
            "uid" => raw.uid,
            "gid" => raw.gid,
            _ => None,
        }
    }

    fn mode(&self) -> Result<Option<Mode>, CompileError> {
        Attrs::mode(self)
    }

    fn presence(&self) -> Result<Presence, CompileError> {
        Attrs::presence(self)
    }

    fn content(&self) -> Result<Option<Content>, CompileError> {
        Attrs::content(self)
    }

    fn commands(&self) -> Result<Option<ServiceCommands>, CompileError> {
        Attrs::commands(self, self.decl.raw.commands.as_ref())
    }

    fn invalid(&self, key: &'static str, message: String) -> CompileError {
        self.attribute(key, message)
    }
}

/// Builds the resource `decl` declares, in `ctx`.
pub(crate) fn resource(
    compiler: &Compiler<'_>,
    module: &Module,
    decl: &ResourceDecl,
    ctx: &Context<'_>,
) -> Result<Pending, CompileError> {
    let a = Attrs {
        compiler,
        module,
        decl,
        ctx,
    };
    let raw = &decl.raw;
    let mut spec = Spec::build(decl.kind, &a)?;
    if let Spec::File(file) = &mut spec {
        secret_bearing(compiler, file);
    }
    spec.check_names()
        .map_err(|problem| a.attribute(problem.key, problem.error.to_string()))?;
    let name = spec.name(&a)?;
    Ok(Pending {
        resource: Resource {
            id: ResourceId::new(decl.kind, name),
            spec,
            origin: Origin {
                file: decl.file.clone(),
                line: decl.line,
            },
            after: Vec::new(),
            notify: Vec::new(),
        },
        require: a.relations("require", raw.require.as_ref())?,
        before: a.relations("before", raw.before.as_ref())?,
        notify: a.relations("notify", raw.notify.as_ref())?,
        subscribe: a.relations("subscribe", raw.subscribe.as_ref())?,
        implicit: Vec::new(),
    })
}

/// Defaults and records for a file whose content carries a secret: mode 0600 unless
/// the site declares one (the node would otherwise get 0644, readable by every local
/// user), and an entry in the secret-bearing ledger so that the node's copy is never
/// diffed in clear later, after the site stops putting the secret there.
fn secret_bearing(compiler: &Compiler<'_>, file: &mut FileSpec) {
    if let Some(content) = file.content.as_ref().filter(|c| c.is_sensitive()) {
        if file.mode.is_none() {
            file.mode = Some(Mode(0o600));
        }
        if compiler.records_secret_bearing() {
            compiler
                .secrets()
                .record_secret_bearing(file.path.as_str(), &content.sha256());
        }
    }
}

/// The name of the secret an attribute template asks for with the `secret` helper
/// (`{{secret "name"}}`, also as a subexpression), whether or not it is loaded.
fn secret_helper(raw: &str) -> Option<String> {
    let mut rest = raw;
    while let Some(at) = rest.find("secret") {
        let before = rest[..at].trim_end();
        let after = &rest[at + "secret".len()..];
        if (before.ends_with("{{") || before.ends_with('('))
            && after.starts_with(char::is_whitespace)
        {
            let name = after.trim_start();
            let name = name.strip_prefix('"').unwrap_or(name);
            let end = name.find(|c: char| c == '"' || c == '}' || c == ')' || c.is_whitespace());
            return Some(name[..end.unwrap_or(name.len())].to_string());
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::secret_helper;

    #[test]
    fn finds_the_secret_helper_in_attribute_templates() {
        assert_eq!(
            secret_helper(r#"x {{secret "db_pw"}} y"#).as_deref(),
            Some("db_pw")
        );
        assert_eq!(secret_helper(r#"{{ secret "a" }}"#).as_deref(), Some("a"));
        assert_eq!(
            secret_helper(r#"{{join (secret "b") ","}}"#).as_deref(),
            Some("b")
        );
        assert_eq!(secret_helper("/etc/secrets/app.conf"), None);
        assert_eq!(secret_helper("{{secretary}}"), None);
    }
}
