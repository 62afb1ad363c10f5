//! Function targets as a whole: the functions crate they name, and one operation per function.

use std::collections::HashMap;

use super::targets::effective_target;
use super::{CheckedOperation, check_crate_name};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::model::Target;
use crate::parse::ParsedSpec;

pub(super) fn check_functions(spec: &ParsedSpec, operations: &[CheckedOperation<'_>], diags: &mut Diagnostics) {
    let mut seen: HashMap<&str, String> = HashMap::new();
    for op in operations {
        let Some(Target::Function(function)) = &op.target else {
            continue;
        };
        let at = effective_target(spec, op.parsed).map_or_else(|| op.parsed.pointer.clone(), |(at, _)| at);
        let at = format!("{at}/function");
        if let Some(first) = seen.insert(&function.path, at.clone()) {
            diags.push(
                Diagnostic::error(
                    &at,
                    format!("function `{}` is the target of two operations", function.path),
                )
                .related(first, "first named here")
                .help("each operation gets its own typed request and response, so each needs its own function: give this one another name (a shared helper can do the work)"),
            );
        }
    }
    let Some(functions) = &spec.root.functions else {
        return;
    };
    check_crate_name(&functions.krate, "/x-gateway/functions/crate", "functions crate", diags);
    let path = std::path::Path::new(&functions.path);
    let escapes = path
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
    if functions.path.is_empty() || escapes {
        diags.push(
            Diagnostic::error(
                "/x-gateway/functions/path",
                format!("`{}` is not a directory inside the workspace", functions.path),
            )
            .help("write a relative path below the workspace root, without `..`, e.g. `functions/petstore`"),
        );
    }
    if seen.is_empty() {
        diags.push(
            Diagnostic::warning("/x-gateway/functions", "`functions` is declared, but no operation has a function target")
                .help("name one with `x-gateway: { target: { function: module::name } }` on an operation, or remove `functions`"),
        );
    }
}
