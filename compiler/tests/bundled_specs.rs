//! The specs shipped in `specs/` stay valid, and the committed schema stays
//! the one the code derives.

use sluice_compiler::{check, SourceFile};

fn read(rel: &str) -> String {
    let path = format!("{}/../{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

#[test]
fn platform_spec_is_clean_and_compiles() {
    let checked = check(SourceFile::new("specs/platform.yaml", read("specs/platform.yaml")));
    let found: Vec<String> = checked.diagnostics.iter().map(|d| d.one_line()).collect();
    assert!(found.is_empty(), "{found:#?}");
    let plan = checked.plan.expect("a clean spec compiles");
    assert!(plan.routes.len() >= 15 && plan.pools.len() >= 5);
}

#[test]
fn committed_spec_schema_matches_the_code() {
    let committed = read("schemas/spec.schema.json");
    let derived = sluice_compiler::schema::spec_schema_text();
    assert!(
        committed == derived,
        "schemas/spec.schema.json is stale; regenerate it with `cargo run -- schema spec > schemas/spec.schema.json`"
    );
}
