//! The generated crate's `Cargo.toml`, from a serde struct (never text pasted together).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{EmitError, EmitOptions, package_name};

#[derive(Serialize)]
struct Manifest {
    package: Package,
    bin: Vec<Bin>,
    dependencies: BTreeMap<&'static str, Dependency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workspace: Option<BTreeMap<String, String>>,
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

/// The manifest of gateway `gateway`'s crate.
pub(super) fn manifest(gateway: &str, description: String, options: &EmitOptions) -> Result<String, EmitError> {
    let name = package_name(gateway);
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
        dependencies: BTreeMap::from([(
            "gateway-runtime",
            Dependency {
                path: options.runtime_path.clone(),
            },
        )]),
        workspace: options.standalone.then(BTreeMap::new),
    };
    Ok(toml::to_string(&manifest)?)
}
