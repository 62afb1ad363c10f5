//! The checks across the specs of one gateway (`x-gateway.gateway`), once each has passed its own.
//!
//! Each spec keeps its own names, policies and upstreams, so what can go wrong between them is only what they
//! share: the gateway's route table and the names that tell the APIs apart (in key files, logs and admin answers).
//! Every diagnostic is recorded in the spec whose operation comes later in the gateway's order, with the place in
//! the other spec attached ([`Diagnostic::related_in`]), so both files are named with their lines.
//!
//! An API's routes are served under its stage's base path, then its own (`/prod` + `/v1` + `/pets`). The stage is
//! picked at start-up, once for every API (`--stage NAME`, or each API's default), so routes are checked in every
//! combination the gateway can start in: each API's default stage together, and for every stage name, that stage of
//! each API that declares stages (an API that lacks the name cannot start in it, so that combination is skipped).

use std::collections::HashSet;

use super::Checked;
use crate::diagnostics::{Diagnostic, Diagnostics};

/// One spec of the gateway, checked.
#[derive(Debug, Clone, Copy)]
pub struct Member<'c, 'a> {
    /// The spec file, as diagnostics name it.
    pub file: &'c str,
    /// What its own checks established.
    pub checked: &'c Checked<'a>,
}

/// Runs the checks across `members` (in the gateway's order) of gateway `gateway`; `diags[i]` collects what is
/// found in `members[i]`.
pub fn check_group(gateway: &str, members: &[Member<'_, '_>], diags: &mut [Diagnostics]) {
    check_names(gateway, members, diags);
    check_routes(members, diags);
}

/// Two APIs of one gateway must not share a name.
fn check_names(gateway: &str, members: &[Member<'_, '_>], diags: &mut [Diagnostics]) {
    for (j, later) in members.iter().enumerate() {
        let Some(first) = members[..j].iter().find(|m| m.checked.name == later.checked.name) else {
            continue;
        };
        diags[j].push(
            Diagnostic::error(
                "/x-gateway/name",
                format!(
                    "API `{}` is already in gateway `{gateway}`: {} has that name too",
                    later.checked.name, first.file
                ),
            )
            .related_in(first.file, "/x-gateway/name", "the other API of that name")
            .help("give each spec of the gateway its own `x-gateway.name`: key files (`api:`), logs and the admin endpoints tell the APIs apart by it"),
        );
    }
}

/// One way the gateway can start: a label for messages, and each member's stage prefix.
struct Combination {
    /// `None` for the default stages; the stage name otherwise.
    stage: Option<String>,
    prefixes: Vec<String>,
}

/// Every combination of stage prefixes the gateway can start in.
fn combinations(members: &[Member<'_, '_>]) -> Vec<Combination> {
    let mut out: Vec<Combination> = Vec::new();
    let mut push = |stage: Option<String>, prefixes: Option<Vec<String>>| {
        if let Some(prefixes) = prefixes
            && !out.iter().any(|c| c.prefixes == prefixes)
        {
            out.push(Combination { stage, prefixes });
        }
    };
    // Without `--stage`: each API's default (an API with stages and no default needs `--stage`).
    let defaults = members
        .iter()
        .map(|m| {
            let c = m.checked;
            if c.stages.is_empty() {
                Some(String::new())
            } else {
                c.default_stage
                    .and_then(|d| c.stages.get(d))
                    .map(|s| s.base_path.clone())
            }
        })
        .collect();
    push(None, defaults);
    let mut names: Vec<&str> = Vec::new();
    for m in members {
        for s in &m.checked.stages {
            if !names.contains(&s.name.as_str()) {
                names.push(&s.name);
            }
        }
    }
    for name in names {
        let prefixes = members
            .iter()
            .map(|m| {
                let c = m.checked;
                if c.stages.is_empty() {
                    Some(String::new())
                } else {
                    c.stages.iter().find(|s| s.name == name).map(|s| s.base_path.clone())
                }
            })
            .collect();
        push(Some(name.to_owned()), prefixes);
    }
    out
}

/// The path a route is served at under `prefix`: the root route is the prefix itself.
fn served(prefix: &str, route: &str) -> String {
    match (prefix, route) {
        ("", _) => route.to_owned(),
        (prefix, "/") => prefix.to_owned(),
        (prefix, route) => format!("{prefix}{route}"),
    }
}

/// Served routes of different specs must not overlap, in any combination the gateway can start in. The router
/// is matchit, as at run time (and as within one spec, `validate/routes.rs`).
fn check_routes(members: &[Member<'_, '_>], diags: &mut [Diagnostics]) {
    // (later member, its operation, earlier member, its operation), reported once.
    let mut reported: HashSet<(usize, usize, usize, usize)> = HashSet::new();
    for combination in combinations(members) {
        let mut router = matchit::Router::new();
        // Served path → (member, operation) of the first route inserted there.
        let mut owners: Vec<(String, usize, usize)> = Vec::new();
        let prefixes: Vec<String> = members
            .iter()
            .zip(&combination.prefixes)
            .map(|(member, stage)| format!("{stage}{}", member.checked.base_path))
            .collect();
        for (m, member) in members.iter().enumerate() {
            let prefix = &prefixes[m];
            let mut seen: HashSet<&str> = HashSet::new();
            for (o, op) in member.checked.operations.iter().enumerate() {
                // Methods of one route, and routes within the spec, were checked by the spec's own checks.
                if !seen.insert(op.route.as_str()) {
                    continue;
                }
                let path = served(prefix, &op.route);
                let with = match router.insert(path.as_str(), ()) {
                    Ok(()) => {
                        owners.push((path, m, o));
                        continue;
                    }
                    Err(matchit::InsertError::Conflict { with }) => with,
                    // Anything else the spec's own route check has reported already.
                    Err(_) => continue,
                };
                let Some((_, first_m, first_o)) = owners.iter().find(|(p, _, _)| *p == with).cloned() else {
                    continue;
                };
                if first_m == m || !reported.insert((m, o, first_m, first_o)) {
                    continue;
                }
                let first = &members[first_m];
                let first_op = &first.checked.operations[first_o];
                let stage = combination
                    .stage
                    .as_ref()
                    .map_or_else(String::new, |s| format!(" in stage `{s}`"));
                diags[m].push(
                    Diagnostic::error(
                        &op.parsed.path_pointer,
                        format!(
                            "path `{}`, served as `{}`{stage}, overlaps `{}` of {}, served as `{}`: the gateway's router cannot tell their requests apart",
                            op.parsed.template,
                            served(prefix, &op.parsed.template),
                            first_op.parsed.template,
                            first.file,
                            served(&prefixes[first_m], &first_op.parsed.template),
                        ),
                    )
                    .related_in(first.file, &first_op.parsed.path_pointer, "the overlapping path")
                    .help("give the specs distinct `x-gateway.base_path`s (`/v1`, `/v2`), or leave one path out with `x-gateway: { skip: true }`"),
                );
            }
        }
    }
}
