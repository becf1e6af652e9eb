//! Print the spec JSON Schema (the same text as `sluice schema spec`).
fn main() {
    print!("{}", sluice_compiler::schema::spec_schema_text());
}
