//! A node's catalog: its resources with rendered content, in a checked dependency
//! graph. `Compiler` holds what every node shares (templates registered once, template
//! sources read once, merged variable scopes per role and datacenter, a cache of
//! rendered text); `compile` is the one-call form for a single node.
//!
//! Submodules: `vars` (layering and `explain`), `build` (declaration + context ->
//! resource), `graph` (relations, duplicates, order, cycles), `parity` (catalogs of
//! one role compared across datacenters).

mod build;
mod graph;
pub mod parity;
pub mod vars;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::manifest::{ManifestError, Site};
use crate::node::{DatacenterName, Node, NodeName, RoleName};
use crate::resource::{Origin, Resource, ResourceId};
use crate::secret::{SecretError, SecretStore};
use crate::template::{Rendered, TemplateError, Templates};

pub use vars::{explain, Explanation, LayerSetting};

/// Everything one node should have. `resources` is in a valid apply order: every
/// resource comes after all of its `after` entries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Catalog {
    pub node: Node,
    pub resources: Vec<Resource>,
}

impl Catalog {
    pub fn resource(&self, id: &ResourceId) -> Option<&Resource> {
        self.resources.iter().find(|r| &r.id == id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Secrets(#[from] SecretError),
    #[error("node `{node}` has role `{role}`, which no file in manifests/roles/ defines")]
    UnknownRole { node: NodeName, role: RoleName },
    #[error("node `{node}` is in datacenter `{datacenter}`, which site.toml does not declare")]
    UnknownDatacenter {
        node: NodeName,
        datacenter: DatacenterName,
    },
    #[error("cannot register partials: {0}")]
    Partials(Box<TemplateError>),
    #[error("{file}:{line}: `{key}`: {error}")]
    Template {
        file: PathBuf,
        line: usize,
        key: String,
        // Boxed: template errors are large and every compile step returns this type.
        error: Box<TemplateError>,
    },
    #[error("{file}:{line}: `{key}`: {message}")]
    Attribute {
        file: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{file}:{line}: `{key}` uses secret `{secret}`; secrets may only appear in file content, never where they would be printed")]
    SecretInAttribute {
        file: PathBuf,
        line: usize,
        key: String,
        secret: String,
    },
    #[error("resource `{id}` is declared twice with different `{attribute}`: at {first} and at {second}")]
    Duplicate {
        id: ResourceId,
        attribute: String,
        first: Origin,
        second: Origin,
    },
    #[error("{origin}: `{relation}` names `{reference}`, which is not in the catalog")]
    Dangling {
        origin: Origin,
        relation: &'static str,
        reference: String,
    },
    #[error("dependency cycle: {cycle}")]
    Cycle { cycle: String },
    #[error("{}", List(.0))]
    Many(Vec<CompileError>),
    #[error("node `{node}`: {error}")]
    Node {
        node: NodeName,
        error: Box<CompileError>,
    },
}

impl CompileError {
    /// The individual errors, without the node wrapper, flattened.
    pub fn flatten(self) -> Vec<CompileError> {
        match self {
            CompileError::Many(errors) => errors.into_iter().flat_map(Self::flatten).collect(),
            CompileError::Node { error, .. } => error.flatten(),
            CompileError::Manifest(err) => err
                .flatten()
                .into_iter()
                .map(CompileError::Manifest)
                .collect(),
            other => vec![other],
        }
    }

    fn many(mut errors: Vec<CompileError>) -> CompileError {
        if errors.len() == 1 {
            errors.remove(0)
        } else {
            CompileError::Many(errors)
        }
    }
}

struct List<'a>(&'a [CompileError]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

/// Compiles `node`'s catalog from the site. For many nodes, build one `Compiler`.
pub fn compile(site: &Site, node: &Node) -> Result<Catalog, CompileError> {
    Compiler::new(site)?.compile(node)
}

/// What identifies the rendering of one source for one node: equal keys render equal
/// text, so the text is rendered once and reused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RenderKey {
    source: String,
    context: String,
}

/// Compiles catalogs for many nodes of one site, sharing the work they have in common.
pub struct Compiler<'s> {
    site: &'s Site,
    secrets: Arc<SecretStore>,
    templates: Templates,
    scopes: HashMap<(RoleName, DatacenterName), (usize, Map<String, Value>)>,
    sources: Mutex<HashMap<PathBuf, Arc<str>>>,
    /// Verbatim `source` files: bytes, not text (a DER certificate, a keystore).
    verbatim: Mutex<HashMap<PathBuf, Arc<[u8]>>>,
    rendered: Mutex<HashMap<RenderKey, Rendered>>,
    /// Whether secret-bearing files go into the ledger (see `secret::ledger`): yes when
    /// the catalogs may be planned or applied, no for `check`, which writes nothing.
    record_secret_bearing: bool,
}

impl<'s> Compiler<'s> {
    /// A compiler with the secrets of this process's environment (see
    /// [`SecretStore::load`]), recording secret-bearing files in the site's ledger.
    pub fn new(site: &'s Site) -> Result<Compiler<'s>, CompileError> {
        let secrets = Arc::new(SecretStore::load(&site.root)?);
        Compiler::with_secrets(site, secrets, true)
    }

    /// A compiler with secrets already loaded (a run decrypts them once); `record` says
    /// whether secret-bearing files are written to the site's ledger.
    pub fn with_secrets(
        site: &'s Site,
        secrets: Arc<SecretStore>,
        record: bool,
    ) -> Result<Compiler<'s>, CompileError> {
        let mut templates = Templates::new(Arc::clone(&secrets));
        let mut errors = Vec::new();
        let site_templates = site.root.join("templates");
        if site_templates.is_dir() {
            if let Err(source) = templates.register_partials(&site_templates, None) {
                errors.push(CompileError::Partials(Box::new(source)));
            }
        }
        for module in site.modules.values() {
            let dir = module.dir.join("templates");
            if dir.is_dir() {
                if let Err(source) = templates.register_partials(&dir, Some(&module.name)) {
                    errors.push(CompileError::Partials(Box::new(source)));
                }
            }
        }
        if !errors.is_empty() {
            return Err(CompileError::many(errors));
        }
        let mut scopes = HashMap::new();
        for role in site.roles.keys() {
            for dc in &site.datacenters {
                let index = scopes.len();
                let scope = vars::merge_scope(site, role, &dc.name);
                scopes.insert((role.clone(), dc.name.clone()), (index, scope));
            }
        }
        Ok(Compiler {
            site,
            secrets,
            templates,
            scopes,
            sources: Mutex::new(HashMap::new()),
            verbatim: Mutex::new(HashMap::new()),
            rendered: Mutex::new(HashMap::new()),
            record_secret_bearing: record,
        })
    }

    pub(crate) fn records_secret_bearing(&self) -> bool {
        self.record_secret_bearing
    }

    pub fn site(&self) -> &Site {
        self.site
    }

    pub fn secrets(&self) -> &SecretStore {
        &self.secrets
    }

    /// Compiles `node`'s catalog; every error found in it, under the node's name.
    pub fn compile(&self, node: &Node) -> Result<Catalog, CompileError> {
        self.compile_inner(node)
            .map_err(|error| CompileError::Node {
                node: node.name.clone(),
                error: Box::new(error),
            })
    }

    fn compile_inner(&self, node: &Node) -> Result<Catalog, CompileError> {
        let role = self
            .site
            .roles
            .get(&node.role)
            .ok_or_else(|| CompileError::UnknownRole {
                node: node.name.clone(),
                role: node.role.clone(),
            })?;
        let (scope_index, scope) = self
            .scopes
            .get(&(node.role.clone(), node.datacenter.clone()))
            .ok_or_else(|| CompileError::UnknownDatacenter {
                node: node.name.clone(),
                datacenter: node.datacenter.clone(),
            })?;
        let context = vars::node_context(scope, node);
        let base = build::Context {
            value: &context,
            key: scope_index.to_string(),
            node_vars: &node.vars,
            node: node.name.as_str(),
        };
        let mut builder = graph::Builder::default();
        let mut errors = Vec::new();
        for module_name in &role.modules {
            let Some(module) = self.site.modules.get(module_name) else {
                continue;
            };
            match build::instances(module, &base) {
                Ok(instances) => {
                    for instance in &instances {
                        let ctx = instance.context(&base);
                        builder.begin_instance(module);
                        for decl in &module.resources {
                            match build::resource(self, module, decl, &ctx) {
                                Ok(pending) => {
                                    if let Err(err) = builder.add(pending) {
                                        errors.push(err);
                                    }
                                }
                                Err(err) => errors.extend(err.flatten()),
                            }
                        }
                        builder.end_instance(module);
                    }
                }
                Err(err) => errors.push(err),
            }
        }
        if !errors.is_empty() {
            return Err(CompileError::many(errors));
        }
        let resources = builder.finish()?;
        Ok(Catalog {
            node: node.clone(),
            resources,
        })
    }

    /// Renders `source` (identified by `id` for the cache) in `ctx`.
    fn render(
        &self,
        id: &str,
        source: &str,
        origin: &std::path::Path,
        first_line: usize,
        ctx: &build::Context<'_>,
    ) -> Result<Rendered, TemplateError> {
        // Text renders the same for every node of a (role, datacenter) scope and module
        // instance, except through what the template can reach: node variables whose
        // names it contains, and the node itself when it names `node`. A name a
        // template computes at render time is the one way around this; no helper of
        // ours does that.
        let everything =
            source.contains("this") || source.contains("@root") || source.contains("{{>");
        // Text that names the node, or could reach it (`this`, `@root`, partials), is
        // that node's own: no other node can use it and a run compiles each node once,
        // so it is rendered and not kept (10,000 nodes of 25 such files would otherwise
        // keep every one of their texts to the end of the run).
        if everything || source.contains("node") {
            return self
                .templates
                .render_str(source, origin, first_line, ctx.value);
        }
        let mut context = ctx.key.clone();
        for (name, value) in ctx.node_vars {
            if source.contains(name.as_str()) {
                context.push('\u{0}');
                context.push_str(name);
                context.push('=');
                context.push_str(&value.to_string());
            }
        }
        let key = RenderKey {
            source: id.to_string(),
            context,
        };
        if let Some(hit) = self.lock_rendered().get(&key) {
            return Ok(hit.clone());
        }
        let rendered = self
            .templates
            .render_str(source, origin, first_line, ctx.value)?;
        self.lock_rendered().insert(key, rendered.clone());
        Ok(rendered)
    }

    fn lock_rendered(&self) -> std::sync::MutexGuard<'_, HashMap<RenderKey, Rendered>> {
        // A poisoned cache only means another thread panicked mid-insert; the map
        // itself is still consistent, entries are whole values.
        self.rendered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The bytes of a verbatim `source` file, read once per compiler.
    fn verbatim(&self, path: &std::path::Path) -> Result<Arc<[u8]>, TemplateError> {
        let mut files = self
            .verbatim
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bytes) = files.get(path) {
            return Ok(Arc::clone(bytes));
        }
        let bytes: Arc<[u8]> = std::fs::read(path)
            .map_err(|err| TemplateError::Read {
                path: path.to_path_buf(),
                reason: err.to_string(),
            })?
            .into();
        files.insert(path.to_path_buf(), Arc::clone(&bytes));
        Ok(bytes)
    }

    /// The text of a template file, read once per compiler.
    fn source(&self, path: &std::path::Path) -> Result<Arc<str>, TemplateError> {
        let mut sources = self
            .sources
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(text) = sources.get(path) {
            return Ok(Arc::clone(text));
        }
        let text: Arc<str> = std::fs::read_to_string(path)
            .map_err(|err| TemplateError::Read {
                path: path.to_path_buf(),
                reason: err.to_string(),
            })?
            .into();
        sources.insert(path.to_path_buf(), Arc::clone(&text));
        Ok(text)
    }
}

fn template_error(
    file: &std::path::Path,
    line: usize,
    key: &str,
    source: TemplateError,
) -> CompileError {
    CompileError::Template {
        file: file.to_path_buf(),
        line,
        key: key.to_string(),
        error: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Planning may compile catalogs from several threads with one compiler.
    #[test]
    fn the_compiler_can_be_shared_between_threads() {
        fn shared<T: Sync>() {}
        shared::<Compiler<'_>>();
    }

    #[test]
    fn the_example_site_compiles_for_every_frontend() {
        let site = Site::load(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        let compiler = Compiler::new(&site).unwrap();
        let frontends: Vec<&Node> = site
            .nodes
            .iter()
            .filter(|n| n.role.as_str() == "frontend")
            .collect();
        assert!(frontends.len() >= 2);
        for node in frontends {
            let catalog = compiler.compile(node).unwrap();
            assert!(catalog
                .resource(&"service:nginx".parse().unwrap())
                .is_some());
        }
    }
}
