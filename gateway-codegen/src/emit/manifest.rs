//! The generated crate's `Cargo.toml`, from a serde struct (never text pasted together).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{EmitError, EmitOptions, package_name};

#[derive(Serialize)]
struct Manifest {
    package: Package,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bin: Vec<Bin>,
    dependencies: BTreeMap<String, Dependency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workspace: Option<Workspace>,
}

/// `[workspace]` of a crate generated outside the project's workspace: its root, with the crates it owns.
#[derive(Serialize)]
struct Workspace {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    members: Vec<String>,
}

#[derive(Serialize)]
struct Package {
    name: String,
    version: &'static str,
    edition: &'static str,
    publish: bool,
    description: String,
}

#[derive(Serialize)]
struct Bin {
    name: String,
    path: &'static str,
}

#[derive(Serialize)]
struct Dependency {
    path: String,
}

/// The manifest of gateway `gateway`'s crate; `crates` are its other dependencies (the types crate and the
/// functions crates, by package name and path), beside the runtime.
pub(super) fn manifest(
    gateway: &str,
    description: String,
    options: &EmitOptions,
    crates: &[(String, String)],
) -> Result<String, EmitError> {
    let name = package_name(gateway);
    let mut dependencies = BTreeMap::from([(
        String::from("gateway-runtime"),
        Dependency {
            path: options.runtime_path.clone(),
        },
    )]);
    for (package, path) in crates {
        dependencies.insert(package.clone(), Dependency { path: path.clone() });
    }
    let manifest = Manifest {
        package: Package {
            name: name.clone(),
            version: "0.1.0",
            edition: "2024",
            publish: false,
            description,
        },
        bin: vec![Bin {
            name,
            path: "src/main.rs",
        }],
        dependencies,
        // Standalone, the types crate (and the functions crates, which name this root) are its members.
        workspace: options.standalone.then(|| Workspace {
            members: crates.iter().map(|(_, path)| path.clone()).collect(),
        }),
    };
    Ok(toml::to_string(&manifest)?)
}

/// The manifest of a library crate (the types crate, a functions crate) that depends on `crates`; `workspace_root`:
/// the path of the workspace root it belongs to, when that is not a directory above it.
pub(super) fn library_manifest(
    package: &str,
    description: String,
    crates: &[(String, String)],
    workspace_root: Option<&str>,
) -> Result<String, EmitError> {
    let manifest = Manifest {
        package: Package {
            name: package.to_owned(),
            version: "0.1.0",
            edition: "2024",
            publish: false,
            description,
        },
        bin: Vec::new(),
        dependencies: crates
            .iter()
            .map(|(package, path)| (package.clone(), Dependency { path: path.clone() }))
            .collect(),
        workspace: None,
    };
    let mut text = toml::to_string(&manifest)?;
    if let Some(root) = workspace_root {
        // `package.workspace`: a member outside its workspace root's directory says where the root is.
        text = text.replacen(
            "publish = false\n",
            &format!(
                "publish = false\nworkspace = {}\n",
                toml::Value::String(root.to_owned())
            ),
            1,
        );
    }
    Ok(text)
}
