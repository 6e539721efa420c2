//! The site repository on disk: a serde mirror of the TOML (`raw`, unknown keys
//! refused), then one conversion into the validated model (`model`). Loading goes on
//! past the first bad file so that `tandem check` can list every error at once.
//!
//! Layout (the example site at the repository's top level documents each format):
//! `manifests/site.toml`, `manifests/roles/*.toml`, `manifests/overlays/*.toml`,
//! `manifests/nodes.toml`, `modules/<name>/module.toml` with `modules/<name>/templates/`,
//! and site-wide partials in `templates/`.

pub mod failover;
pub mod model;
pub mod nodes;
pub mod raw;
pub mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use model::{line_of, VarLayer as Layer};
pub use model::{Each, Module, Overlay, ResourceDecl, Role, VarLayer, VarSetting};

use crate::datacenter::{DatacenterSpec, ProviderConfig, ProviderKind};
use crate::node::{DatacenterName, Node, RoleName};
use crate::resource::ResourceId;
use crate::rollout::RolloutPolicy;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read `{path}`: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// Several independent errors, each on its own line.
    #[error("{}", ErrorList(.0))]
    Many(Vec<ManifestError>),
}

impl ManifestError {
    /// The individual errors, flattened.
    pub fn flatten(self) -> Vec<ManifestError> {
        match self {
            ManifestError::Many(errors) => errors.into_iter().flat_map(Self::flatten).collect(),
            other => vec![other],
        }
    }

    fn invalid(path: &Path, line: usize, message: impl Into<String>) -> Self {
        ManifestError::Invalid {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

struct ErrorList<'a>(&'a [ManifestError]);

impl fmt::Display for ErrorList<'_> {
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

/// A loaded site repository.
#[derive(Debug, Clone)]
pub struct Site {
    pub root: PathBuf,
    pub name: String,
    pub datacenters: Vec<DatacenterSpec>,
    /// Static nodes from `manifests/nodes.toml` (empty when the file is absent).
    pub nodes: Vec<Node>,
    /// `[rollout]` of `site.toml`.
    pub rollout: RolloutPolicy,
    /// `[failover] epoch` of `site.toml` (0 when absent): raised by every promote.
    pub epoch: u64,
    /// `[failover.route53]`: the Route53 failover records that follow the primary.
    pub route53: Option<failover::Route53Settings>,
    /// `[vars]` of `site.toml`.
    pub vars: VarLayer,
    /// `[datacenters.NAME.vars]`.
    pub datacenter_vars: BTreeMap<DatacenterName, VarLayer>,
    pub roles: BTreeMap<RoleName, Role>,
    pub modules: BTreeMap<String, Module>,
    /// `overlays/standby.toml`, applied to every datacenter that is not primary.
    pub standby: Option<Overlay>,
    /// `overlays/primary.toml`, applied to the primary datacenter.
    pub primary: Option<Overlay>,
}

impl Site {
    pub fn load(root: &Path) -> Result<Site, ManifestError> {
        let mut errors = Vec::new();
        let site_path = root.join("manifests/site.toml");
        let (text, raw) = parse::<raw::RawSite>(&site_path)?;

        let mut datacenters = Vec::new();
        let mut datacenter_vars = BTreeMap::new();
        for (name, dc) in raw.datacenters {
            let line = line_of(&text, dc.span().start);
            let dc = dc.into_inner();
            let provider = match (dc.provider, dc.aws, dc.azure) {
                (ProviderKind::Aws, Some(aws), None) => ProviderConfig::Aws(aws),
                (ProviderKind::Azure, None, Some(azure)) => ProviderConfig::Azure(azure),
                (ProviderKind::Static, None, None) => ProviderConfig::Static,
                (kind, _, _) => {
                    errors.push(ManifestError::invalid(
                        &site_path,
                        line,
                        format!(
                            "datacenter `{name}` with provider `{kind}` needs exactly the \
                             settings table of that provider (`[datacenters.{name}.{kind}]`, none for static)"
                        ),
                    ));
                    ProviderConfig::Static
                }
            };
            let name = match DatacenterName::new(name) {
                Ok(name) => name,
                Err(err) => {
                    errors.push(ManifestError::invalid(&site_path, line, err.to_string()));
                    continue;
                }
            };
            datacenter_vars.insert(name.clone(), Layer::from_raw(dc.vars, &site_path, &text));
            datacenters.push(DatacenterSpec {
                name,
                primary: dc.primary,
                provider,
            });
        }
        let primaries: Vec<&str> = datacenters
            .iter()
            .filter(|dc| dc.primary)
            .map(|dc| dc.name.as_str())
            .collect();
        if primaries.len() != 1 {
            errors.push(ManifestError::invalid(
                &site_path,
                1,
                format!(
                    "exactly one datacenter must be `primary = true`, found {} ({})",
                    primaries.len(),
                    primaries.join(", ")
                ),
            ));
        }

        let route53 = raw.failover.route53.map(|r53| {
            let line = line_of(&text, r53.span().start);
            let r53 = r53.into_inner();
            let names: Vec<&str> = datacenters.iter().map(|dc| dc.name.as_str()).collect();
            if let Err(message) = r53.check(&names) {
                errors.push(ManifestError::invalid(&site_path, line, message));
            }
            r53
        });

        let modules = collect(load_modules(root), &mut errors);
        let roles = collect(load_roles(root, &modules), &mut errors);
        let standby = collect(load_overlay(root, "standby"), &mut errors);
        let primary = collect(load_overlay(root, "primary"), &mut errors);

        let nodes_path = root.join("manifests/nodes.toml");
        let nodes = if nodes_path.exists() {
            collect(nodes::load(&nodes_path), &mut errors).unwrap_or_default()
        } else {
            Vec::new()
        };
        if !errors.is_empty() {
            return Err(if errors.len() == 1 {
                errors.remove(0)
            } else {
                ManifestError::Many(errors)
            });
        }
        Ok(Site {
            root: root.to_path_buf(),
            name: raw.site.name,
            datacenters,
            nodes,
            rollout: raw.rollout,
            epoch: raw.failover.epoch,
            route53,
            vars: Layer::from_raw(raw.vars, &site_path, &text),
            datacenter_vars,
            roles: roles.unwrap_or_default(),
            modules: modules.unwrap_or_default(),
            standby: standby.flatten(),
            primary: primary.flatten(),
        })
    }

    pub fn datacenter(&self, name: &DatacenterName) -> Option<&DatacenterSpec> {
        self.datacenters.iter().find(|dc| &dc.name == name)
    }

    /// The overlay that applies to a datacenter: `primary.toml` for the primary,
    /// `standby.toml` for every other one.
    pub fn overlay_for(&self, datacenter: &DatacenterName) -> Option<&Overlay> {
        match self.datacenter(datacenter) {
            Some(dc) if dc.primary => self.primary.as_ref(),
            Some(_) => self.standby.as_ref(),
            None => None,
        }
    }
}

fn collect<T>(result: Result<T, ManifestError>, errors: &mut Vec<ManifestError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            errors.extend(err.flatten());
            None
        }
    }
}

fn parse<T: DeserializeOwned>(path: &Path) -> Result<(String, T), ManifestError> {
    let text = read(path)?;
    let value = toml::from_str(&text).map_err(|err| toml_error(path, &text, &err))?;
    Ok((text, value))
}

/// `*.toml` files of a directory by stem, sorted; an absent directory has none.
fn toml_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, ManifestError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            return Err(ManifestError::Read {
                path: dir.to_path_buf(),
                reason: err.to_string(),
            })
        }
    };
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .filter_map(|path| {
            let stem = path.file_stem()?.to_str()?.to_string();
            Some((stem, path))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn load_modules(root: &Path) -> Result<BTreeMap<String, Module>, ManifestError> {
    let dir = root.join("modules");
    let mut errors = Vec::new();
    let mut modules = BTreeMap::new();
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("module.toml").is_file())
            .collect(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => {
            return Err(ManifestError::Read {
                path: dir,
                reason: err.to_string(),
            })
        }
    };
    dirs.sort();
    for module_dir in dirs {
        let Some(name) = module_dir.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        match load_module(name, &module_dir) {
            Ok(module) => {
                modules.insert(name.to_string(), module);
            }
            Err(err) => errors.extend(err.flatten()),
        }
    }
    // A module that requires one that does not exist is named with the line.
    for module in modules.values() {
        for (req, line) in module.requires.iter().zip(&module.requires_lines) {
            if !modules.contains_key(req) {
                errors.push(ManifestError::invalid(
                    &module.file,
                    *line,
                    format!("unknown module `{req}` in `requires`"),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(modules)
    } else {
        Err(ManifestError::Many(errors))
    }
}

fn load_module(name: &str, dir: &Path) -> Result<Module, ManifestError> {
    let file = dir.join("module.toml");
    let (text, raw) = parse::<raw::RawModule>(&file)?;
    let mut errors = Vec::new();
    let mut resources = Vec::new();
    for decl in raw.resource {
        let start = decl.span().start;
        match ResourceDecl::new(decl.into_inner(), &file, &text, start) {
            Ok(decl) => resources.push(decl),
            Err(err) => errors.push(err),
        }
    }
    if !errors.is_empty() {
        return Err(ManifestError::Many(errors));
    }
    let each = raw.each.map(|var| Each {
        line: line_of(&text, var.span().start),
        var: var.into_inner(),
        bind: raw.each_as.clone().unwrap_or_else(|| "item".to_string()),
    });
    Ok(Module {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        description: raw.description,
        requires_lines: raw
            .requires
            .iter()
            .map(|r| line_of(&text, r.span().start))
            .collect(),
        requires: raw.requires.into_iter().map(|r| r.into_inner()).collect(),
        each,
        vars: Layer::from_raw(raw.vars, &file, &text),
        resources,
        file,
    })
}

fn load_roles(
    root: &Path,
    modules: &Option<BTreeMap<String, Module>>,
) -> Result<BTreeMap<RoleName, Role>, ManifestError> {
    let mut errors = Vec::new();
    let mut roles = BTreeMap::new();
    for (stem, file) in toml_files(&root.join("manifests/roles"))? {
        let (text, raw) = match parse::<raw::RawRole>(&file) {
            Ok(parsed) => parsed,
            Err(err) => {
                errors.push(err);
                continue;
            }
        };
        let mut order = Vec::new();
        if let Some(modules) = modules {
            for module in &raw.modules {
                if !modules.contains_key(module.get_ref()) {
                    errors.push(ManifestError::invalid(
                        &file,
                        line_of(&text, module.span().start),
                        format!("unknown module `{}`", module.get_ref()),
                    ));
                    continue;
                }
                if let Err(cycle) = expand(module.get_ref(), modules, &mut order, &mut Vec::new()) {
                    errors.push(ManifestError::invalid(
                        &file,
                        line_of(&text, module.span().start),
                        format!(
                            "modules require each other in a cycle: {}",
                            cycle.join(" -> ")
                        ),
                    ));
                }
            }
        }
        let name = match RoleName::new(stem) {
            Ok(name) => name,
            Err(err) => {
                errors.push(ManifestError::invalid(&file, 1, err.to_string()));
                continue;
            }
        };
        roles.insert(
            name.clone(),
            Role {
                name,
                description: raw.description,
                modules: order,
                vars: Layer::from_raw(raw.vars, &file, &text),
                file,
            },
        );
    }
    if errors.is_empty() {
        Ok(roles)
    } else {
        Err(ManifestError::Many(errors))
    }
}

/// Appends `name` to `order` after everything it requires (depth first); `stack`
/// holds the modules being expanded, to name a cycle.
fn expand(
    name: &str,
    modules: &BTreeMap<String, Module>,
    order: &mut Vec<String>,
    stack: &mut Vec<String>,
) -> Result<(), Vec<String>> {
    if order.iter().any(|m| m == name) {
        return Ok(());
    }
    if let Some(pos) = stack.iter().position(|m| m == name) {
        let mut cycle = stack[pos..].to_vec();
        cycle.push(name.to_string());
        return Err(cycle);
    }
    stack.push(name.to_string());
    if let Some(module) = modules.get(name) {
        for req in &module.requires {
            if modules.contains_key(req) {
                expand(req, modules, order, stack)?;
            }
        }
    }
    stack.pop();
    order.push(name.to_string());
    Ok(())
}

fn load_overlay(root: &Path, which: &str) -> Result<Option<Overlay>, ManifestError> {
    let file = root.join(format!("manifests/overlays/{which}.toml"));
    if !file.exists() {
        return Ok(None);
    }
    let (text, raw) = parse::<raw::RawOverlay>(&file)?;
    let mut errors = Vec::new();
    let may_change_vars: BTreeSet<String> = raw
        .may_change
        .vars
        .iter()
        .map(|v| v.get_ref().clone())
        .collect();
    let mut may_change = BTreeMap::new();
    let mut may_change_lines = BTreeMap::new();
    for (id, attrs) in raw.may_change.resources {
        let line = line_of(&text, attrs.span().start);
        let attrs = attrs.into_inner();
        for attr in &attrs {
            if !model::ATTRIBUTES.contains(&attr.as_str()) {
                errors.push(ManifestError::invalid(
                    &file,
                    line,
                    format!(
                        "`{attr}` is not a resource attribute (one of {})",
                        model::ATTRIBUTES.join(", ")
                    ),
                ));
            }
        }
        match id.parse::<ResourceId>() {
            Ok(id) => {
                may_change_lines.insert(id.clone(), line);
                may_change.insert(id, attrs.into_iter().collect());
            }
            Err(err) => errors.push(ManifestError::invalid(&file, line, err)),
        }
    }
    let vars = Layer::from_raw(raw.vars, &file, &text);
    for (name, setting) in &vars.0 {
        if !may_change_vars.contains(name) {
            errors.push(ManifestError::invalid(
                &file,
                setting.line,
                format!("overlay sets `{name}` but does not declare it in `[may_change] vars`"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ManifestError::Many(errors));
    }
    Ok(Some(Overlay {
        file,
        description: raw.description,
        vars,
        may_change_vars,
        may_change,
        may_change_lines,
    }))
}

pub(crate) fn read(path: &Path) -> Result<String, ManifestError> {
    std::fs::read_to_string(path).map_err(|err| ManifestError::Read {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })
}

/// A TOML error as `file:line: message`, the line taken from the error's span.
pub(crate) fn toml_error(path: &Path, text: &str, err: &toml::de::Error) -> ManifestError {
    let line = err
        .span()
        .map(|span| line_of(text, span.start))
        .unwrap_or(1);
    ManifestError::Invalid {
        path: path.to_path_buf(),
        line,
        message: err
            .message()
            .trim_end()
            .lines()
            .collect::<Vec<_>>()
            .join("; "),
    }
}
