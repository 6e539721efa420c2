//! What a resource type implements for the manifest and the compiler ([`Attributes`],
//! [`ResourceType`]), and [`resource_types!`], which `resource/mod.rs` invokes once with
//! the list of types: from one line per type it declares the type's module, re-exports
//! its spec, and generates the kind enum, the spec enum and every dispatch over them.

use super::service::ServiceCommands;
use super::spec::{Content, Mode, NameProblem, Presence};
use super::Operations;
use crate::path::RemotePath;

/// What a type's [`ResourceType::build`] reads its manifest attributes through. The
/// catalog compiler implements it: values are rendered from their templates, secrets are
/// refused outside file content, paths are validated, and every error names the file,
/// line and key.
pub trait Attributes {
    type Error;
    /// A string attribute, rendered.
    fn text(&self, key: &'static str) -> Result<Option<String>, Self::Error>;
    fn required(&self, key: &'static str) -> Result<String, Self::Error>;
    /// An absolute remote path (normalized, no `..`, no control characters).
    fn path(&self, key: &'static str) -> Result<Option<RemotePath>, Self::Error>;
    fn required_path(&self, key: &'static str) -> Result<RemotePath, Self::Error>;
    /// A list of strings, each rendered.
    fn list(&self, key: &'static str) -> Result<Vec<String>, Self::Error>;
    fn flag(&self, key: &'static str) -> Option<bool>;
    fn number(&self, key: &'static str) -> Option<u32>;
    /// `mode`, as octal.
    fn mode(&self) -> Result<Option<Mode>, Self::Error>;
    /// `ensure`: `present` (the default) or `absent`.
    fn presence(&self) -> Result<Presence, Self::Error>;
    /// File content from `content`, `template` or `source`.
    fn content(&self) -> Result<Option<Content>, Self::Error>;
    /// The `[commands]` table of a service without systemd.
    fn commands(&self) -> Result<Option<ServiceCommands>, Self::Error>;
    /// An error about `key`'s value.
    fn invalid(&self, key: &'static str, message: String) -> Self::Error;
}

/// A resource type, as the manifest and the catalog compiler see it.
pub trait ResourceType: Operations + Sized {
    /// The keys its manifest table may hold, besides `type` and the relations.
    const KEYS: &'static [&'static str];
    /// The keys it must hold.
    const REQUIRED: &'static [&'static str];
    /// Its spec, from one declaration's attributes.
    fn build<A: Attributes>(a: &A) -> Result<Self, A::Error>;
    /// Its name within the type: the `NAME` of `TYPE:NAME`.
    fn name<A: Attributes>(&self, a: &A) -> Result<String, A::Error>;
    /// Values the node would refuse or misread (user, group, unit names), refused at
    /// compile time so that `check` names the file, line and key.
    fn check_names(&self) -> Result<(), NameProblem> {
        Ok(())
    }
}

macro_rules! resource_types {
    ($($module:ident :: $spec:ident as $variant:ident = $text:literal,)+) => {
        $(pub mod $module;)+
        $(pub use $module::*;)+

        /// The resource types of SPEC section 3.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum ResourceKind {
            $($variant,)+
        }

        impl ResourceKind {
            pub const ALL: &'static [ResourceKind] = &[$(ResourceKind::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ResourceKind::$variant => $text,)+
                }
            }

            /// The keys a declaration of this type may hold (`ResourceType::KEYS`).
            pub fn keys(self) -> &'static [&'static str] {
                match self {
                    $(ResourceKind::$variant => <$spec as $crate::resource::ResourceType>::KEYS,)+
                }
            }

            pub fn required_keys(self) -> &'static [&'static str] {
                match self {
                    $(ResourceKind::$variant => <$spec as $crate::resource::ResourceType>::REQUIRED,)+
                }
            }
        }

        /// The typed desired state, one variant per [`ResourceKind`].
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        #[serde(tag = "type", rename_all = "lowercase")]
        pub enum Spec {
            $($variant($spec),)+
        }

        impl Spec {
            pub fn kind(&self) -> ResourceKind {
                match self {
                    $(Spec::$variant(_) => ResourceKind::$variant,)+
                }
            }

            /// The spec a declaration of `kind` describes.
            pub fn build<A: $crate::resource::Attributes>(
                kind: ResourceKind,
                a: &A,
            ) -> Result<Spec, A::Error> {
                use $crate::resource::ResourceType as _;
                match kind {
                    $(ResourceKind::$variant => $spec::build(a).map(Spec::$variant),)+
                }
            }

            pub fn name<A: $crate::resource::Attributes>(&self, a: &A) -> Result<String, A::Error> {
                use $crate::resource::ResourceType as _;
                match self {
                    $(Spec::$variant(s) => s.name(a),)+
                }
            }

            pub fn check_names(&self) -> Result<(), $crate::resource::NameProblem> {
                use $crate::resource::ResourceType as _;
                match self {
                    $(Spec::$variant(s) => s.check_names(),)+
                }
            }
        }

        /// The implementation for a spec's type.
        pub fn operations(spec: &Spec) -> &dyn $crate::resource::Operations {
            match spec {
                $(Spec::$variant(s) => s,)+
            }
        }
    };
}

pub(crate) use resource_types;

#[cfg(test)]
mod tests {
    use crate::resource::ResourceKind;

    #[test]
    fn every_registered_type_names_itself_and_requires_only_keys_it_allows() {
        assert_eq!(ResourceKind::ALL.len(), 8);
        for kind in ResourceKind::ALL {
            assert_eq!(kind.as_str().parse::<ResourceKind>(), Ok(*kind));
            for key in kind.required_keys() {
                assert!(kind.keys().contains(key), "{kind}: `{key}`");
            }
        }
    }
}
