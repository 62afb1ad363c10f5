//! The generated crate's `Cargo.toml`, from a serde struct (never text pasted together).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{EmitError, EmitOptions, package_name};
use crate::model::Api;

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

pub(super) fn manifest(api: &Api, options: &EmitOptions) -> Result<String, EmitError> {
    let name = package_name(api);
    let manifest = Manifest {
        package: Package {
            name: name.clone(),
            version: "0.1.0",
            edition: "2024",
            publish: false,
            description: format!(
                "API gateway for {} {}, generated from {}",
                api.title, api.version, api.spec_file
            ),
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
