//! Stages: `x-gateway.stages` (their variables, base paths and overrides) and `default_stage`, and the check that
//! every `{stage.NAME}` the spec uses is defined in every stage, so that whichever stage is picked at start-up,
//! nothing is left unfilled.

use super::limits::check_throttle;
use super::plain_name;
use super::upstreams::{Upstreams, check_url};
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::locate::escape_segment;
use crate::model::{Stage, StageUpstream};
use crate::parse::ext::{RootExt, StageExt};

/// The stages, checked, and the default's index. Stage upstream overrides name `upstreams`' named ones.
pub(super) fn check_stages(
    root: &RootExt,
    upstreams: &Upstreams,
    diags: &mut Diagnostics,
) -> (Vec<Stage>, Option<usize>) {
    let mut stages = Vec::new();
    for (name, stage) in &root.stages {
        let at = format!("/x-gateway/stages/{}", escape_segment(name));
        if !plain_name(name) {
            diags.push(
                Diagnostic::error(&at, format!("stage name `{name}` is not a plain name"))
                    .help("use letters, digits, `-`, `_` and `.` (it is what `--stage NAME` takes)"),
            );
        }
        let mut variables = Vec::new();
        for (var, value) in &stage.variables {
            if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                diags.push(
                    Diagnostic::error(
                        format!("{at}/variables/{}", escape_segment(var)),
                        format!("stage variable `{var}` is not a plain name"),
                    )
                    .help("use letters, digits and `_`: it is also part of `GATEWAY_STAGE_VAR_<NAME>`"),
                );
            }
            variables.push((var.clone(), value.clone()));
        }
        let base_path = stage.base_path.clone().unwrap_or_default();
        if !base_path.is_empty() {
            let valid = base_path.starts_with('/')
                && !base_path.ends_with('/')
                && !base_path.contains(['{', '}', '?', '#', ' '])
                && base_path != "/_gateway"
                && !base_path.starts_with("/_gateway/");
            if !valid {
                diags.push(
                    Diagnostic::error(format!("{at}/base_path"), format!("`{base_path}` is not a base path"))
                        .help("write a path prefix such as `/prod`: a leading `/`, no trailing `/`, no placeholders, not under `/_gateway`"),
                );
            }
        }
        let throttle = stage
            .throttle
            .as_ref()
            .and_then(|t| check_throttle(t, &format!("{at}/throttle"), true, diags));
        let cors_origins = stage.cors.as_ref().map(|cors| {
            let at = format!("{at}/cors/allow_origins");
            if cors.allow_origins.is_empty() {
                diags.push(
                    Diagnostic::error(&at, "`allow_origins` is empty")
                        .help("list at least one origin, or leave `cors` out of the stage to keep the policies' own"),
                );
            }
            cors.allow_origins
                .iter()
                .enumerate()
                .filter_map(|(i, origin)| super::cors::check_origin(origin, &format!("{at}/{i}"), diags))
                .collect()
        });
        stages.push(Stage {
            name: name.clone(),
            variables,
            base_path,
            cache_enabled: stage.cache.as_ref().is_none_or(|c| c.enabled),
            throttle,
            cors_origins,
            upstreams: stage_upstreams(stage, &at, upstreams, diags),
        });
    }
    let default = root.default_stage.as_ref().and_then(|name| {
        let found = stages.iter().position(|s| s.name == *name);
        if found.is_none() {
            let d = Diagnostic::error("/x-gateway/default_stage", format!("stage `{name}` is not defined"));
            diags.push(match did_you_mean(name, stages.iter().map(|s| s.name.as_str())) {
                Some(best) => d.help(format!("did you mean `{best}`?")),
                None if stages.is_empty() => d.help("define it under `x-gateway.stages`"),
                None => d.help(format!(
                    "the stages are: {}",
                    stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                )),
            });
        }
        found
    });
    (stages, default)
}

/// A stage's upstream overrides: each names a named upstream; a URL (with this stage's variables filled) must be
/// one an upstream can have.
fn stage_upstreams(stage: &StageExt, at: &str, upstreams: &Upstreams, diags: &mut Diagnostics) -> Vec<StageUpstream> {
    let mut out = Vec::new();
    for (name, over) in &stage.upstreams {
        let at = format!("{at}/upstreams/{}", escape_segment(name));
        let Some(upstream) = upstreams.named(name) else {
            let d = Diagnostic::error(&at, format!("no upstream is named `{name}`"));
            diags.push(match did_you_mean(name, upstreams.names()) {
                Some(best) => d.help(format!("did you mean `{best}`?")),
                None => d.help("a stage overrides the settings of an upstream declared under `x-gateway.upstreams`"),
            });
            continue;
        };
        let urls: Vec<(String, String)> = match (&over.url, &over.urls) {
            (Some(_), Some(_)) => {
                diags.push(
                    Diagnostic::error(&at, "a stage's upstream has `url` or `urls`, not both")
                        .help("keep `urls: [...]` for several servers, or `url:` for one"),
                );
                Vec::new()
            }
            (Some(url), None) => vec![(url.clone(), format!("{at}/url"))],
            (None, Some(urls)) => urls
                .iter()
                .enumerate()
                .map(|(i, url)| (url.clone(), format!("{at}/urls/{i}")))
                .collect(),
            (None, None) => Vec::new(),
        };
        for (url, url_at) in &urls {
            let mut filled = Some(url.clone());
            for variable in stage_names_in(url) {
                match stage.variables.get(&variable) {
                    Some(value) => {
                        filled = filled.map(|url| url.replace(&format!("{{stage.{variable}}}"), value));
                    }
                    None => {
                        diags.push(
                            Diagnostic::error(
                                url_at,
                                format!("`{{stage.{variable}}}` is not a variable of this stage"),
                            )
                            .help("define it under this stage's `variables`"),
                        );
                        filled = None;
                    }
                }
            }
            if let Some(filled) = filled {
                check_url(&filled, url_at, diags);
            }
        }
        out.push(StageUpstream {
            upstream,
            urls: urls.into_iter().map(|(url, _)| url).collect(),
            timeout: over.timeout.map(|d| d.0),
            connect_timeout: over.connect_timeout.map(|d| d.0),
        });
    }
    out
}

/// A stage's origins that admit any origin, with where they are written: `*` cannot be combined with a policy
/// that allows credentials.
pub(super) fn any_origin_stages(root: &RootExt) -> Vec<String> {
    root.stages
        .iter()
        .filter_map(|(name, stage)| {
            let i = stage.cors.as_ref()?.allow_origins.iter().position(|o| o == "*")?;
            Some(format!(
                "/x-gateway/stages/{}/cors/allow_origins/{i}",
                escape_segment(name)
            ))
        })
        .collect()
}

/// Whether `{stage.NAME}` (written at `at`) can be filled whichever stage runs: it must be defined in every
/// stage. Reports it when not.
pub(super) fn check_variable(root: &RootExt, name: &str, at: &str, diags: &mut Diagnostics) -> bool {
    if root.stages.is_empty() {
        diags.push(
            Diagnostic::error(at, format!("`{{stage.{name}}}`: this gateway declares no stages"))
                .help("declare them under `x-gateway.stages: { NAME: { variables: { ... } } }`"),
        );
        return false;
    }
    let lacking: Vec<&str> = root
        .stages
        .iter()
        .filter(|(_, s)| !s.variables.contains_key(name))
        .map(|(n, _)| n.as_str())
        .collect();
    if lacking.is_empty() {
        return true;
    }
    let known: Vec<&str> = root
        .stages
        .values()
        .flat_map(|s| s.variables.keys().map(String::as_str))
        .collect();
    let mut d = Diagnostic::error(
        at,
        format!(
            "`{{stage.{name}}}` is not defined in every stage: {} lack it",
            lacking.join(", ")
        ),
    );
    d = match did_you_mean(name, known.iter().copied()) {
        Some(best) if best != name => d.help(format!("did you mean `{{stage.{best}}}`?")),
        _ => d.help(format!("define `{name}` under `variables` in every stage")),
    };
    diags.push(d);
    false
}

/// Every value `url` takes, one per stage (the URL itself without stages): `{stage.NAME}` substituted. `None`
/// (reported) when a variable is not defined everywhere.
pub(super) fn expand_url(root: &RootExt, url: &str, at: &str, diags: &mut Diagnostics) -> Option<Vec<String>> {
    let names = stage_names_in(url);
    if names.is_empty() {
        return Some(vec![url.to_owned()]);
    }
    let mut ok = true;
    for name in &names {
        ok &= check_variable(root, name, at, diags);
    }
    if !ok {
        return None;
    }
    Some(
        root.stages
            .values()
            .map(|stage| {
                let mut out = url.to_owned();
                for name in &names {
                    let value = stage.variables.get(name.as_str()).map_or("", String::as_str);
                    out = out.replace(&format!("{{stage.{name}}}"), value);
                }
                out
            })
            .collect(),
    )
}

/// The `NAME`s of `{stage.NAME}` in `text`.
pub(super) fn stage_names_in(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{stage.") {
        let after = &rest[start + "{stage.".len()..];
        let Some(end) = after.find('}') else { break };
        let name = after[..end].to_owned();
        if !names.contains(&name) {
            names.push(name);
        }
        rest = &after[end..];
    }
    names
}
