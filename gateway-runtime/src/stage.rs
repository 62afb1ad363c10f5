//! Deployment stages (`x-gateway.stages`): one is picked at start-up and fixes the stage variables and the settings
//! the stage overrides.
//!
//! The stage is chosen once ([`select`]: `--stage NAME`, else the spec's `default_stage`), and its variables are
//! resolved once ([`ResolvedStage::resolve`]): each is the spec's value unless the environment variable
//! `GATEWAY_STAGE_VAR_<NAME upper-cased>` is set (`petsUrl` → `GATEWAY_STAGE_VAR_PETSURL`). The environment is
//! read through a function the caller passes in (only the command line passes the real one), so tests can inject
//! values without touching the process environment.
//!
//! What a stage changes, all fixed at start-up, nothing looked up per request beyond a pointer:
//! - `{stage.X}` in upstream URLs ([`crate::targets::proxy::Upstreams::resolve`]), in rewrite paths
//!   ([`PathPart::Stage`], inserted as it is, so a value with `?`, `#`, whitespace or control characters is
//!   refused here) and in templates ([`crate::template::Placeholder::Stage`], read through
//!   [`RequestCtx::stage`](crate::pipeline::RequestCtx::stage));
//! - [`StageSpec::base_path`](crate::spec::StageSpec::base_path): a prefix of every operation route (the admin endpoints stay at the root);
//! - [`StageSpec::cache_enabled`](crate::spec::StageSpec::cache_enabled): `false` serves every operation uncached;
//! - [`StageSpec::throttle`](crate::spec::StageSpec::throttle): replaces the API-wide token bucket.
//!
//! Variable values may hold secrets: they are never logged, and never part of an error message (names are).

use std::ffi::OsString;

use crate::spec::{ApiSpec, OriginSpec, PathPart, StageUpstreamSpec, TargetSpec, ThrottleSpec};

/// The prefix of the environment variables that override stage variables.
pub const ENV_PREFIX: &str = "GATEWAY_STAGE_VAR_";

/// Why no stage could be picked or resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageError {
    /// `--stage` names a stage the spec does not declare.
    #[error("unknown stage `{name}` (this gateway has: {known})")]
    Unknown {
        /// The name given.
        name: String,
        /// The declared names, comma-separated.
        known: String,
    },
    /// The spec declares stages, none has been picked and there is no default.
    #[error("this gateway declares stages and has no default_stage: pick one with --stage ({known})")]
    NoneChosen {
        /// The declared names, comma-separated.
        known: String,
    },
    /// `--stage` for an API without stages.
    #[error("--stage `{name}` given, but this gateway declares no stages")]
    NoStages {
        /// The name given.
        name: String,
    },
    /// A stage index out of range (a bad `default_stage` or an inconsistent configuration).
    #[error("stage #{index} does not exist: this gateway declares {count} stage(s)")]
    OutOfRange {
        /// The index.
        index: usize,
        /// How many stages there are.
        count: usize,
    },
    /// The override of a variable is not UTF-8.
    #[error("{env} is not valid UTF-8")]
    NotUnicode {
        /// The environment variable.
        env: String,
    },
    /// A rewrite path uses a variable the stage does not define.
    #[error(
        "operation `{operation}`: its upstream path uses {{stage.{variable}}}, which stage `{stage}` does not define"
    )]
    UndefinedInPath {
        /// The operation.
        operation: &'static str,
        /// The variable.
        variable: &'static str,
        /// The stage.
        stage: &'static str,
    },
    /// A variable used in a rewrite path holds what cannot be inserted in a path as it is.
    #[error(
        "stage variable `{variable}` (used in the upstream path of operation `{operation}`) contains {what}, \
         which is not allowed in a path"
    )]
    BadPathValue {
        /// The variable.
        variable: &'static str,
        /// The operation.
        operation: &'static str,
        /// What it contains (`?`, `#`, whitespace, a control character).
        what: &'static str,
    },
    /// The stage's base path is not `/…` (or empty).
    #[error("stage `{stage}`: base_path `{base_path}` must start with `/` and contain no `?`, `#`, `{{` or whitespace")]
    BadBasePath {
        /// The stage.
        stage: &'static str,
        /// The base path.
        base_path: &'static str,
    },
}

/// The declared stage names, comma-separated (`none` without stages).
pub fn known_names(api: &ApiSpec) -> String {
    if api.stages.is_empty() {
        return "none".to_owned();
    }
    api.stages.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// The stage to serve: `requested` (from `--stage`) by name, else the spec's default; `None` for an API without
/// stages and no request.
pub fn select(api: &ApiSpec, requested: Option<&str>) -> Result<Option<usize>, StageError> {
    match requested {
        Some(name) if api.stages.is_empty() => Err(StageError::NoStages { name: name.to_owned() }),
        Some(name) => api
            .stages
            .iter()
            .position(|s| s.name == name)
            .map(Some)
            .ok_or_else(|| StageError::Unknown {
                name: name.to_owned(),
                known: known_names(api),
            }),
        None if api.stages.is_empty() => Ok(None),
        None => match api.default_stage {
            Some(index) if index < api.stages.len() => Ok(Some(index)),
            Some(index) => Err(StageError::OutOfRange {
                index,
                count: api.stages.len(),
            }),
            None => Err(StageError::NoneChosen {
                known: known_names(api),
            }),
        },
    }
}

/// The environment variable that overrides stage variable `name`: `GATEWAY_STAGE_VAR_<NAME upper-cased>`.
pub fn env_name(name: &str) -> String {
    format!("{ENV_PREFIX}{}", name.to_uppercase())
}

/// Where a stage variable's value came from (for the start-up log, which never shows values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariableSource {
    /// The spec.
    Spec,
    /// Its `GATEWAY_STAGE_VAR_…` environment variable.
    Environment,
}

/// The stage being served, with its variables resolved: built once at start-up, read by every worker.
///
/// Only [`ResolvedStage::resolve`] makes one, so its values have passed the start-up checks.
#[derive(Clone, PartialEq, Eq)]
pub struct ResolvedStage {
    index: usize,
    name: &'static str,
    variables: Vec<(&'static str, String, VariableSource)>,
    base_path: &'static str,
    cache_enabled: bool,
    throttle: Option<ThrottleSpec>,
    cors_origins: Option<&'static [OriginSpec]>,
    upstreams: &'static [StageUpstreamSpec],
}

/// Shows names and sources, never values.
impl std::fmt::Debug for ResolvedStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedStage")
            .field("name", &self.name)
            .field(
                "variables",
                &self.variables.iter().map(|(n, _, s)| (n, s)).collect::<Vec<_>>(),
            )
            .field("base_path", &self.base_path)
            .field("cache_enabled", &self.cache_enabled)
            .field("throttle", &self.throttle)
            .finish()
    }
}

impl ResolvedStage {
    /// Stage `index` of `api`, each variable taken from `env(GATEWAY_STAGE_VAR_<NAME>)` when that returns a value,
    /// else from the spec. Checks what the stage's values are used for: variables in rewrite paths must be defined
    /// and insertable in a path as they are, and the base path must be a path.
    pub fn resolve(
        api: &'static ApiSpec,
        index: usize,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Self, StageError> {
        let spec = api.stages.get(index).ok_or(StageError::OutOfRange {
            index,
            count: api.stages.len(),
        })?;
        let mut variables = Vec::with_capacity(spec.variables.len());
        for &(name, value) in spec.variables {
            let env_var = env_name(name);
            let resolved = match env(&env_var) {
                Some(raw) => (
                    raw.into_string()
                        .map_err(|_| StageError::NotUnicode { env: env_var.clone() })?,
                    VariableSource::Environment,
                ),
                None => (value.to_owned(), VariableSource::Spec),
            };
            variables.push((name, resolved.0, resolved.1));
        }
        let base_path = spec.base_path.trim_end_matches('/');
        if !base_path.is_empty()
            && (!base_path.starts_with('/')
                || base_path
                    .chars()
                    .any(|c| matches!(c, '?' | '#' | '{' | '}') || c.is_whitespace() || c.is_control()))
        {
            return Err(StageError::BadBasePath {
                stage: spec.name,
                base_path: spec.base_path,
            });
        }
        let stage = Self {
            index,
            name: spec.name,
            variables,
            base_path,
            cache_enabled: spec.cache_enabled,
            throttle: spec.throttle,
            cors_origins: spec.cors_origins,
            upstreams: spec.upstreams,
        };
        stage.check(api)?;
        Ok(stage)
    }

    /// Whether the stage is one of `api`'s, and every `{stage.X}` of a rewrite path is defined, with a value that
    /// can go into a path as it is.
    pub fn check(&self, api: &ApiSpec) -> Result<(), StageError> {
        if api.stages.get(self.index).is_none_or(|s| s.name != self.name) {
            return Err(StageError::Unknown {
                name: self.name.to_owned(),
                known: known_names(api),
            });
        }
        for op in api.operations {
            let TargetSpec::Upstream(target) = &op.target else {
                continue;
            };
            for part in target.path {
                let PathPart::Stage(variable) = *part else {
                    continue;
                };
                let value = self.variable(variable).ok_or(StageError::UndefinedInPath {
                    operation: op.id,
                    variable,
                    stage: self.name,
                })?;
                let what = value.chars().find_map(|c| match c {
                    '?' => Some("`?`"),
                    '#' => Some("`#`"),
                    c if c.is_control() => Some("a control character"),
                    c if c.is_whitespace() => Some("whitespace"),
                    _ => None,
                });
                if let Some(what) = what {
                    return Err(StageError::BadPathValue {
                        variable,
                        operation: op.id,
                        what,
                    });
                }
            }
        }
        Ok(())
    }

    /// The stage's position in [`ApiSpec::stages`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// The stage's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The value of variable `name`, if the stage defines it.
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, value, _)| value.as_str())
    }

    /// Every variable's name and where its value came from, in spec order (for logs: no values).
    pub fn sources(&self) -> impl Iterator<Item = (&'static str, VariableSource)> + '_ {
        self.variables.iter().map(|(name, _, source)| (*name, *source))
    }

    /// The prefix of every operation route, without a trailing `/` (empty: none).
    pub fn base_path(&self) -> &'static str {
        self.base_path
    }

    /// Whether responses are cached in this stage.
    pub fn cache_enabled(&self) -> bool {
        self.cache_enabled
    }

    /// The origins every CORS policy admits in this stage, when the stage replaces them.
    pub fn cors_origins(&self) -> Option<&'static [OriginSpec]> {
        self.cors_origins
    }

    /// What this stage changes of upstream `index`, if anything.
    pub fn upstream(&self, index: usize) -> Option<&'static StageUpstreamSpec> {
        self.upstreams.iter().find(|u| u.upstream == index)
    }

    /// The API-wide token bucket in this stage: the stage's, else the API's.
    pub fn throttle_or<'a>(&'a self, api: &'a ApiSpec) -> Option<&'a ThrottleSpec> {
        self.throttle.as_ref().or(api.throttle.as_ref())
    }

    /// `text` with every `{stage.NAME}` replaced by the variable's value; the first undefined name is the error.
    pub fn substitute(&self, text: &str) -> Result<String, String> {
        substitute(text, |name| self.variable(name))
    }
}

/// `text` with every `{stage.NAME}` replaced by `value(NAME)`; a name without a value is the error. Other braces
/// are left as they are.
pub(crate) fn substitute<'v>(text: &str, value: impl Fn(&str) -> Option<&'v str>) -> Result<String, String> {
    const OPEN: &str = "{stage.";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else {
            break;
        };
        let name = &after[..end];
        out.push_str(&rest[..start]);
        out.push_str(value(name).ok_or_else(|| name.to_owned())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `text` has a `{stage.NAME}` placeholder.
pub(crate) fn has_placeholder(text: &str) -> bool {
    text.contains("{stage.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ApiSpec, StageSpec, ThrottleScope};

    static STAGED: ApiSpec = ApiSpec {
        stages: &[
            StageSpec {
                name: "dev",
                variables: &[("petsUrl", "http://127.0.0.1:9001"), ("greeting", "hello")],
                base_path: "",
                cache_enabled: false,
                throttle: None,
                cors_origins: None,
                upstreams: &[],
            },
            StageSpec {
                name: "prod",
                variables: &[("petsUrl", "https://pets.internal:8443"), ("greeting", "hi")],
                base_path: "/prod/",
                cache_enabled: true,
                throttle: Some(ThrottleSpec {
                    rate: 5000,
                    burst: 10000,
                    per: ThrottleScope::All,
                }),
                cors_origins: None,
                upstreams: &[],
            },
        ],
        default_stage: Some(0),
        spec_sha256: "",
        published: None,
        ..ApiSpec::EMPTY
    };

    static NO_DEFAULT: ApiSpec = ApiSpec {
        default_stage: None,
        spec_sha256: "",
        published: None,
        ..STAGED
    };

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    #[test]
    fn a_stage_is_picked_by_name_or_by_default() {
        assert_eq!(select(&STAGED, Some("prod")), Ok(Some(1)));
        assert_eq!(select(&STAGED, None), Ok(Some(0)));
        assert_eq!(select(&ApiSpec::EMPTY, None), Ok(None));
        let unknown = select(&STAGED, Some("qa")).expect_err("unknown");
        assert_eq!(unknown.to_string(), "unknown stage `qa` (this gateway has: dev, prod)");
        let none = select(&NO_DEFAULT, None).expect_err("no default");
        assert!(none.to_string().contains("dev, prod"), "{none}");
        let no_stages = select(&ApiSpec::EMPTY, Some("dev")).expect_err("no stages");
        assert!(no_stages.to_string().contains("declares no stages"), "{no_stages}");
    }

    #[test]
    fn variables_come_from_the_spec_unless_the_environment_overrides_them() {
        assert_eq!(env_name("petsUrl"), "GATEWAY_STAGE_VAR_PETSURL");
        let env = |name: &str| (name == "GATEWAY_STAGE_VAR_GREETING").then(|| OsString::from("bonjour"));
        let stage = ResolvedStage::resolve(&STAGED, 1, &env).expect("resolves");
        assert_eq!(stage.name(), "prod");
        assert_eq!(stage.variable("petsUrl"), Some("https://pets.internal:8443"));
        assert_eq!(stage.variable("greeting"), Some("bonjour"));
        assert_eq!(stage.variable("missing"), None);
        assert_eq!(stage.base_path(), "/prod");
        assert_eq!(stage.throttle_or(&STAGED).map(|t| t.burst), Some(10000));
        let sources: Vec<_> = stage.sources().collect();
        assert_eq!(
            sources,
            [
                ("petsUrl", VariableSource::Spec),
                ("greeting", VariableSource::Environment)
            ]
        );
        // Debug output names variables but never shows their values.
        let debug = format!("{stage:?}");
        assert!(
            !debug.contains("bonjour") && !debug.contains("pets.internal"),
            "{debug}"
        );
        assert!(matches!(
            ResolvedStage::resolve(&STAGED, 7, &no_env),
            Err(StageError::OutOfRange { index: 7, count: 2 })
        ));
    }

    #[test]
    fn placeholders_are_substituted() {
        let stage = ResolvedStage::resolve(&STAGED, 0, &no_env).expect("resolves");
        assert_eq!(
            stage.substitute("{stage.petsUrl}/v1/{stage.greeting}"),
            Ok("http://127.0.0.1:9001/v1/hello".to_owned())
        );
        assert_eq!(stage.substitute("http://x/{other}"), Ok("http://x/{other}".to_owned()));
        assert_eq!(stage.substitute("{stage.nope}"), Err("nope".to_owned()));
        assert!(has_placeholder("{stage.petsUrl}") && !has_placeholder("http://x"));
    }
}
