//! Command-line overrides in a gateway of several APIs, whose upstreams and schemes are named per spec:
//! `API/NAME` addresses one API's (`--upstream pets-v2/pets=URL`), a plain `NAME` every API that declares one.
//!
//! A gateway of one API takes plain names exactly as before (an unknown one is reported by the API's own check);
//! `API/NAME` works there too.

use crate::policies::auth::{AuthOverrides, AuthSetupError};
use crate::spec::ApiSpec;
use crate::store::{StoreError, StoreOverride};
use crate::targets::proxy::{UpstreamError, UpstreamOverride};

/// Where an override applies: the indexes of `apis` it names, with the name inside each API; `None` when it names
/// nothing (with one API, a plain name always goes to it, for its own check to report).
fn targets<'n>(
    apis: &[&ApiSpec],
    name: &'n str,
    declares: impl Fn(&ApiSpec, &str) -> bool,
) -> Option<(Vec<usize>, &'n str)> {
    if let Some((api, inner)) = name.split_once('/') {
        let index = apis.iter().position(|a| a.name == api)?;
        return declares(apis[index], inner).then(|| (vec![index], inner));
    }
    if apis.len() == 1 {
        return Some((vec![0], name));
    }
    let indexes: Vec<usize> = (0..apis.len()).filter(|&i| declares(apis[i], name)).collect();
    (!indexes.is_empty()).then_some((indexes, name))
}

/// Every `API/NAME` there is, for messages; `none` without any.
fn qualified<'a>(apis: &[&'a ApiSpec], names: impl Fn(&'a ApiSpec) -> Vec<&'a str>) -> String {
    let all: Vec<String> = apis
        .iter()
        .flat_map(|api| names(api).into_iter().map(move |name| format!("{}/{name}", api.name)))
        .collect();
    if all.is_empty() {
        "none".to_owned()
    } else {
        all.join(", ")
    }
}

/// `--upstream` overrides, split per API (in the order of `apis`), with names made local to each.
pub(crate) fn upstreams(
    apis: &[&'static ApiSpec],
    overrides: &[UpstreamOverride],
) -> Result<Vec<Vec<UpstreamOverride>>, UpstreamError> {
    let declares = |api: &ApiSpec, name: &str| api.upstreams.iter().any(|u| u.name == name);
    let mut per_api = vec![Vec::new(); apis.len()];
    for o in overrides {
        let Some((indexes, name)) = targets(apis, &o.name, declares) else {
            return Err(UpstreamError::UnknownUpstream {
                name: o.name.clone(),
                known: qualified(apis, |api| api.upstreams.iter().map(|u| u.name).collect()),
            });
        };
        for i in indexes {
            per_api[i].push(UpstreamOverride {
                name: name.to_owned(),
                url: o.url.clone(),
            });
        }
    }
    Ok(per_api)
}

/// `--store` overrides, split per API like [`upstreams`].
pub(crate) fn stores(
    apis: &[&'static ApiSpec],
    overrides: &[StoreOverride],
) -> Result<Vec<Vec<StoreOverride>>, StoreError> {
    let declares = |api: &ApiSpec, name: &str| api.stores.iter().any(|s| s.name == name);
    let mut per_api = vec![Vec::new(); apis.len()];
    for o in overrides {
        let Some((indexes, name)) = targets(apis, &o.name, declares) else {
            return Err(StoreError::UnknownStore {
                name: o.name.clone(),
                known: qualified(apis, |api| api.stores.iter().map(|s| s.name).collect()),
            });
        };
        for i in indexes {
            per_api[i].push(StoreOverride {
                name: name.to_owned(),
                location: o.location.clone(),
            });
        }
    }
    Ok(per_api)
}

/// `--jwks-url` and `--oidc-url` overrides, split per API like [`upstreams`].
pub(crate) fn auth(apis: &[&'static ApiSpec], overrides: &AuthOverrides) -> Result<Vec<AuthOverrides>, AuthSetupError> {
    let declares = |api: &ApiSpec, name: &str| api.schemes.iter().any(|s| s.name == name);
    let mut per_api: Vec<AuthOverrides> = (0..apis.len())
        .map(|_| AuthOverrides {
            jwks_urls: Vec::new(),
            oidc_urls: Vec::new(),
            token_cache: overrides.token_cache,
        })
        .collect();
    for (flag, kind, list) in [
        ("--jwks-url", "jwks_url", &overrides.jwks_urls),
        ("--oidc-url", "openIdConnect", &overrides.oidc_urls),
    ] {
        for (scheme, url) in list {
            let Some((indexes, name)) = targets(apis, scheme, declares) else {
                return Err(AuthSetupError::UnknownScheme {
                    flag,
                    scheme: scheme.clone(),
                    kind,
                });
            };
            for i in indexes {
                let entry = (name.to_owned(), url.clone());
                if flag == "--jwks-url" {
                    per_api[i].jwks_urls.push(entry);
                } else {
                    per_api[i].oidc_urls.push(entry);
                }
            }
        }
    }
    Ok(per_api)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ApiSpec, UpstreamSpec};
    use std::time::Duration;

    const PETS: UpstreamSpec = UpstreamSpec {
        name: "pets",
        urls: &["http://127.0.0.1:1"],
        timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        ..UpstreamSpec::DEFAULT
    };
    static V1: ApiSpec = ApiSpec {
        name: "v1",
        upstreams: &[PETS],
        ..ApiSpec::EMPTY
    };
    static V2: ApiSpec = ApiSpec {
        name: "v2",
        upstreams: &[PETS, UpstreamSpec { name: "toys", ..PETS }],
        ..ApiSpec::EMPTY
    };

    fn set(name: &str) -> UpstreamOverride {
        UpstreamOverride {
            name: name.to_owned(),
            url: "http://127.0.0.1:2".to_owned(),
        }
    }

    fn names(per_api: &[Vec<UpstreamOverride>]) -> Vec<Vec<&str>> {
        per_api
            .iter()
            .map(|l| l.iter().map(|o| o.name.as_str()).collect())
            .collect()
    }

    #[test]
    fn a_plain_name_goes_to_every_api_declaring_it_and_a_qualified_one_to_one() {
        let per_api = upstreams(&[&V1, &V2], &[set("pets"), set("v2/toys"), set("toys")]).expect("known");
        assert_eq!(names(&per_api), [vec!["pets"], vec!["pets", "toys", "toys"]]);
        let per_api = upstreams(&[&V1, &V2], &[set("v1/pets")]).expect("known");
        assert_eq!(names(&per_api), [vec!["pets"], vec![]]);
    }

    #[test]
    fn a_name_no_api_declares_is_refused_with_every_qualified_name() {
        for unknown in ["cats", "v1/toys", "v3/pets"] {
            let err = upstreams(&[&V1, &V2], &[set(unknown)]).expect_err(unknown);
            assert_eq!(
                err.to_string(),
                format!("unknown upstream `{unknown}` (this gateway has: v1/pets, v2/pets, v2/toys)")
            );
        }
    }

    #[test]
    fn one_api_passes_plain_names_through_for_its_own_check() {
        let per_api = upstreams(&[&V1], &[set("cats"), set("v1/pets")]).expect("passed through");
        assert_eq!(names(&per_api), [vec!["cats", "pets"]]);
    }
}
