//! Handlebars rendering for config files: strict mode (a missing variable is an error
//! naming template, line and variable), no HTML escaping, and the helpers config files
//! need (see [`helpers`]). Partials come from the site's `templates/` folder and from
//! each module's own folder, namespaced by module (`{{> nginx/location}}`).
//!
//! Every render reports the fingerprints of the secrets its output carries, whether
//! they came through `{{secret "name"}}` or any other way (a variable that happens to
//! hold a secret's value), so that whatever prints the content shows a marker instead.

mod helpers;
mod partials;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use handlebars::{
    Context, Handlebars, RenderContext, RenderError, RenderErrorReason, Renderable, StringOutput,
    Template,
};

use crate::secret::{Fingerprint, SecretStore};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read template `{path}`: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{message} in {path}:{line}")]
    Render {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("unknown variable `{variable}` in {path}:{line}")]
    UnknownVariable {
        path: PathBuf,
        line: usize,
        variable: String,
    },
    #[error("template syntax error in {path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("partials include each other in a cycle: {}", describe_cycle(.cycle))]
    PartialCycle {
        /// Each partial along the cycle with its file, the first repeated at the end.
        cycle: Vec<(String, PathBuf)>,
    },
    #[error(
        "partial `{name}` in {path} computes the name of a partial it includes; write the \
         name out (`{{{{> name}}}}`), so that partials including each other are found \
         before anything renders"
    )]
    ComputedPartial { name: String, path: PathBuf },
    #[error("partial `{name}` is defined twice: in `{first}` and in `{second}`")]
    DuplicatePartial {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// Rendered text and the fingerprints of the secrets it contains.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub text: String,
    pub secrets: Vec<Fingerprint>,
}

impl Rendered {
    /// Whether the text carries a secret and so must only be shown as a marker.
    pub fn is_sensitive(&self) -> bool {
        !self.secrets.is_empty()
    }
}

pub struct Templates {
    registry: Handlebars<'static>,
    secrets: Arc<SecretStore>,
    /// Partial name -> the file it was read from, to name it in errors.
    partials: HashMap<String, PathBuf>,
    /// Compiled templates by source text: a role's templates render once per node, and
    /// keying by content (not path) stays right when a long-lived process sees files
    /// change.
    compiled: RwLock<HashMap<String, Arc<Template>>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut partials: Vec<&String> = self.partials.keys().collect();
        partials.sort();
        f.debug_struct("Templates")
            .field("partials", &partials)
            .field("secrets", &self.secrets)
            .finish_non_exhaustive()
    }
}

impl Templates {
    /// A registry whose `{{secret "name"}}` helper reads from `secrets`.
    pub fn new(secrets: Arc<SecretStore>) -> Self {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        helpers::register(&mut registry, Arc::clone(&secrets));
        Templates {
            registry,
            secrets,
            partials: HashMap::new(),
            compiled: RwLock::default(),
        }
    }

    /// Registers every `*.hbs` file below `dir` as a partial named by its path relative
    /// to `dir` without the extension, prefixed by `namespace/` when given (a module's
    /// own partials: `nginx/location`). A missing `dir` registers nothing.
    pub fn register_partials(
        &mut self,
        dir: &Path,
        namespace: Option<&str>,
    ) -> Result<(), TemplateError> {
        if !dir.is_dir() {
            return Ok(());
        }
        let mut files = Vec::new();
        collect_hbs(dir, &mut files)?;
        files.sort();
        let mut added = Vec::new();
        let result = self.register_files(dir, namespace, files, &mut added);
        if result.is_err() {
            // Taken out again, so the registry never holds what was refused: no later
            // render can recurse into a cycle, and no later call reports it again.
            for name in &added {
                self.registry.unregister_template(name);
                self.partials.remove(name);
            }
        }
        result
    }

    fn register_files(
        &mut self,
        dir: &Path,
        namespace: Option<&str>,
        files: Vec<PathBuf>,
        added: &mut Vec<String>,
    ) -> Result<(), TemplateError> {
        for path in files {
            let relative = path.strip_prefix(dir).unwrap_or(&path).with_extension("");
            let mut name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            if let Some(namespace) = namespace {
                name = format!("{namespace}/{name}");
            }
            if let Some(first) = self.partials.get(&name) {
                return Err(TemplateError::DuplicatePartial {
                    name,
                    first: first.clone(),
                    second: path,
                });
            }
            let source = read(&path)?;
            self.registry
                .register_partial(&name, source)
                .map_err(|err| syntax_error(&err, &path, 0))?;
            added.push(name.clone());
            let computed = self
                .registry
                .get_template(&name)
                .is_some_and(|t| partials::references(t).computed);
            if computed {
                return Err(TemplateError::ComputedPartial { name, path });
            }
            self.partials.insert(name, path);
        }
        match self.partial_cycle() {
            Some(cycle) => Err(TemplateError::PartialCycle { cycle }),
            None => Ok(()),
        }
    }

    /// A cycle among the registered partials, each with its file.
    fn partial_cycle(&self) -> Option<Vec<(String, PathBuf)>> {
        let graph: BTreeMap<String, BTreeSet<String>> = self
            .partials
            .keys()
            .map(|name| {
                let refs = self
                    .registry
                    .get_template(name)
                    .map(|t| partials::references(t).names)
                    .unwrap_or_default();
                (name.clone(), refs)
            })
            .collect();
        let cycle = partials::find_cycle(&graph)?;
        Some(
            cycle
                .into_iter()
                .map(|name| {
                    let file = self.partials.get(&name).cloned().unwrap_or_default();
                    (name, file)
                })
                .collect(),
        )
    }

    /// Renders the template file at `path` with `vars`.
    pub fn render_file(
        &self,
        path: &Path,
        vars: &serde_json::Value,
    ) -> Result<Rendered, TemplateError> {
        let source = read(path)?;
        self.render_str(&source, path, 0, vars)
    }

    /// Renders inline template text from a manifest (`content = "..."`); errors name
    /// `origin` and the line, counted from `first_line`: the number of lines of
    /// `origin` before the template's first line (0 for a whole file; for TOML's
    /// `content = """` followed by a newline, the 1-based line of `content =`).
    pub fn render_str(
        &self,
        source: &str,
        origin: &Path,
        first_line: usize,
        vars: &serde_json::Value,
    ) -> Result<Rendered, TemplateError> {
        let template = self
            .compile(source)
            .map_err(|err| syntax_error(&err, origin, first_line))?;
        let used = helpers::SecretUse::start();
        let result = self.render_compiled(&template, vars);
        let mut secrets = used.finish();
        let text = result.map_err(|err| self.render_error(err, origin, first_line))?;
        secrets.extend(
            self.secrets
                .found_in(&text)
                .into_iter()
                .map(|s| s.fingerprint().clone()),
        );
        secrets.sort();
        secrets.dedup();
        Ok(Rendered { text, secrets })
    }

    fn compile(&self, source: &str) -> Result<Arc<Template>, handlebars::TemplateError> {
        // A poisoned lock only means another render panicked; the map itself is whole
        // (inserts are single calls).
        let cached = self
            .compiled
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(source)
            .cloned();
        if let Some(template) = cached {
            return Ok(template);
        }
        let template = Arc::new(Template::compile(source)?);
        self.compiled
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(source.to_string(), Arc::clone(&template));
        Ok(template)
    }

    /// What `Handlebars::render_template` does, minus the compilation.
    fn render_compiled(
        &self,
        template: &Template,
        vars: &serde_json::Value,
    ) -> Result<String, RenderError> {
        let context = Context::wraps(vars)?;
        let mut render_context = RenderContext::new(None);
        let mut out = StringOutput::new();
        template.render(&self.registry, &context, &mut render_context, &mut out)?;
        Ok(out.into_string()?)
    }

    /// Maps a handlebars error to ours, naming the file the error is in: a partial's
    /// own file, or `origin` shifted by `first_line`.
    fn render_error(&self, err: RenderError, origin: &Path, first_line: usize) -> TemplateError {
        let (path, offset) = match err
            .template_name
            .as_ref()
            .and_then(|name| self.partials.get(name))
        {
            Some(partial) => (partial.clone(), 0),
            None => (origin.to_path_buf(), first_line),
        };
        let line = offset + err.line_no.unwrap_or(1);
        let message = match err.reason() {
            RenderErrorReason::MissingVariable(Some(variable)) => {
                return TemplateError::UnknownVariable {
                    path,
                    line,
                    variable: variable.clone(),
                }
            }
            RenderErrorReason::TemplateError(syntax) => {
                return syntax_error(syntax, origin, first_line)
            }
            RenderErrorReason::MissingVariable(None) => "unknown variable".to_string(),
            RenderErrorReason::PartialNotFound(name) => format!("unknown partial `{name}`"),
            RenderErrorReason::HelperNotFound(name) => format!("unknown helper `{name}`"),
            RenderErrorReason::ParamNotFoundForIndex(helper, index) => {
                format!(
                    "helper `{helper}` needs a parameter at position {}",
                    index + 1
                )
            }
            RenderErrorReason::ParamNotFoundForName(helper, name) => {
                format!("helper `{helper}` needs parameter `{name}`")
            }
            RenderErrorReason::ParamTypeMismatchForName(helper, name, expected) => {
                format!("helper `{helper}` needs `{name}` to be {expected}")
            }
            RenderErrorReason::InvalidParamType(expected) => {
                format!("invalid parameter, {expected} expected")
            }
            RenderErrorReason::Other(message) => message.clone(),
            other => lowercase_first(&other.to_string()),
        };
        TemplateError::Render {
            path,
            line,
            message,
        }
    }
}

fn describe_cycle(cycle: &[(String, PathBuf)]) -> String {
    let names: Vec<String> = cycle.iter().map(|(name, _)| format!("`{name}`")).collect();
    let files: Vec<String> = cycle
        .iter()
        .take(cycle.len().saturating_sub(1))
        .map(|(_, file)| file.display().to_string())
        .collect();
    format!("{} (in {})", names.join(" -> "), files.join(", "))
}

fn read(path: &Path) -> Result<String, TemplateError> {
    std::fs::read_to_string(path).map_err(|err| TemplateError::Read {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })
}

fn collect_hbs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), TemplateError> {
    let read_err = |err: std::io::Error| TemplateError::Read {
        path: dir.to_path_buf(),
        reason: err.to_string(),
    };
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.is_dir() {
            collect_hbs(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "hbs") {
            out.push(path);
        }
    }
    Ok(())
}

fn syntax_error(err: &handlebars::TemplateError, path: &Path, offset: usize) -> TemplateError {
    TemplateError::Syntax {
        path: path.to_path_buf(),
        line: offset + err.pos().map_or(1, |(line, _)| line),
        message: syntax_message(err.reason()),
    }
}

/// pest lists every rule it expected after an unclosed block; that list helps nobody.
fn syntax_message(reason: &handlebars::TemplateErrorReason) -> String {
    match reason {
        handlebars::TemplateErrorReason::InvalidSyntax(detail)
            if detail.matches(", ").count() > 3 =>
        {
            "invalid handlebars syntax: unclosed block or malformed `{{...}}`".to_string()
        }
        other => lowercase_first(&other.to_string()),
    }
}

fn lowercase_first(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
