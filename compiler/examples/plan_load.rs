//! How long a fresh process takes to load a plan file, the way `serve`
//! does at start: `plan_load write FILE` compiles the generated
//! 10,000-route spec of the `check` bench into FILE, and `plan_load FILE`
//! reads it and times one `Plan::from_bytes`, the first in the process.
//! Build it with `--release`; `hyperfine` over several runs of the second
//! form gives the whole process's time too.

use std::time::Instant;

use sluice_compiler::{check, Plan, SourceFile};

#[path = "../benches/support/mod.rs"]
mod support;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1..).unwrap_or_default() {
        [write, file] if write == "write" => {
            let start = Instant::now();
            let checked = check(SourceFile::new("generated.yaml", support::generated_spec()));
            let plan = checked.plan.ok_or("the generated spec did not compile")?;
            let bytes = plan.to_bytes();
            let compile = start.elapsed();
            std::fs::write(file, &bytes).map_err(|e| format!("cannot write {file}: {e}"))?;
            println!("compiled in {compile:.1?}, {} bytes", bytes.len());
        }
        [file] => {
            let bytes = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
            let start = Instant::now();
            let plan = Plan::from_bytes(&bytes).map_err(|e| format!("{file}: {e}"))?;
            let load = start.elapsed();
            println!("loaded {} routes in {load:.2?}", plan.routes.len());
        }
        _ => {
            eprintln!("usage: plan_load write FILE | plan_load FILE");
            std::process::exit(2);
        }
    }
    Ok(())
}
