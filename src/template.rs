//! Handlebars rendering for config files: strict mode (a missing variable is an error
//! naming template, line and variable), no HTML escaping, and the helpers config files
//! need.
//!
//! SKELETON: strict rendering only; helpers and module partials come next.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use handlebars::Handlebars;

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
}

/// Rendered text and the fingerprints of the secrets it contains.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub text: String,
    pub secrets: Vec<Fingerprint>,
}

pub struct Templates {
    registry: Handlebars<'static>,
    secrets: Arc<SecretStore>,
}

impl Templates {
    /// A registry whose `{{secret "name"}}` helper reads from `secrets`.
    pub fn new(secrets: Arc<SecretStore>) -> Self {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        let store = Arc::clone(&secrets);
        registry.register_helper(
            "secret",
            Box::new(
                move |h: &handlebars::Helper<'_>,
                      _: &Handlebars<'_>,
                      _: &handlebars::Context,
                      _: &mut handlebars::RenderContext<'_, '_>,
                      out: &mut dyn handlebars::Output|
                      -> handlebars::HelperResult {
                    let name = h.param(0).and_then(|p| p.value().as_str()).unwrap_or("");
                    let secret = store.get(name).ok_or_else(|| {
                        handlebars::RenderErrorReason::Other(format!("unknown secret `{name}`"))
                    })?;
                    out.write(secret.expose())?;
                    Ok(())
                },
            ),
        );
        Templates { registry, secrets }
    }

    /// Registers every `*.hbs` file below `dir` as a partial named by its path relative
    /// to `dir` without the extension, prefixed by `namespace/` when given (a module's
    /// own partials: `nginx/location`).
    pub fn register_partials(
        &mut self,
        _dir: &Path,
        _namespace: Option<&str>,
    ) -> Result<(), TemplateError> {
        Ok(())
    }

    /// Renders the template file at `path` with `vars`.
    pub fn render_file(
        &self,
        path: &Path,
        vars: &serde_json::Value,
    ) -> Result<Rendered, TemplateError> {
        let source = std::fs::read_to_string(path).map_err(|err| TemplateError::Read {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })?;
        self.render_str(&source, path, 0, vars)
    }

    /// Renders inline template text from a manifest (`content = "..."`); errors name
    /// `origin` and the line, counted from `first_line`.
    pub fn render_str(
        &self,
        source: &str,
        origin: &Path,
        first_line: usize,
        vars: &serde_json::Value,
    ) -> Result<Rendered, TemplateError> {
        let path = origin;
        let text = self
            .registry
            .render_template(&source, vars)
            .map_err(|err| TemplateError::Render {
                path: path.to_path_buf(),
                line: first_line + err.line_no.unwrap_or(1),
                message: err.reason().to_string(),
            })?;
        let secrets = self
            .secrets
            .found_in(&text)
            .into_iter()
            .map(|s| s.fingerprint().clone())
            .collect();
        Ok(Rendered { text, secrets })
    }
}
